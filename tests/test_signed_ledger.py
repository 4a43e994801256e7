"""A ledger nobody can quietly rewrite (issue 14): each attack of the hostile review, tried on a
real trail, is named by `audit verify` and refused by the next `jiwon run` (exit 4, nothing paid).

The attacker can write the output root but holds neither the city's signing key nor the anchor
folder (decision note 0013).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.audit import anchor, signing
from flows.audit import records as audit
from flows.audit.verify import verify_trail
from flows.cli import app
from flows.errors import LedgerUntrusted
from tests.conftest import TEST_KEY, TEST_SIGNING_KEY
from tests.support.flowrun import decisions, run_flow, runs

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend", "pii_key")]
PROGRAM = "paju-livelihood-2025"


def record_file(out: Path, run_id: str) -> Path:
    return out / "audit/runs" / f"program={PROGRAM}" / f"run_id={run_id}.parquet"


def record(out: Path, run_id: str) -> audit.RunRecord:
    return audit.record_from_row(pl.read_parquet(record_file(out, run_id)).row(0, named=True))


def write_record(out: Path, forged: audit.RunRecord, key: str | None = None) -> None:
    """Write a record resealed as a forger can: with their own key, or none."""
    signer = signing.private_key(key) if key else None
    record_file(out, forged.run_id).write_bytes(audit.run_record_parquet(forged.sealed(signer)))


@pytest.fixture
def trail(story: Path, tmp_path: Path) -> tuple[Path, Path, str, str]:
    """Two committed runs on the story: the first pays, the second (a rerun) pays nobody."""
    data = tmp_path / "data"
    shutil.copytree(story, data)
    out = tmp_path / "out"
    first = run_flow(data, out).run_id
    second = run_flow(data, out, trigger="rerun", reason="bank asked for a resend").run_id
    assert verify_trail(out) == ([], 2)
    return data, out, first, second


def refused(data: Path, out: Path, *words: str) -> str:
    """Assert the next run halts before paying anyone, naming the damage; return its message."""
    paid_before = paid(out)
    with pytest.raises(LedgerUntrusted) as halted:
        run_flow(data, out, trigger="rerun", reason="after the attack")
    message = str(halted.value)
    assert all(w in message for w in words), message
    assert paid(out) == paid_before
    return message


def paid(out: Path) -> int:
    """Return the won committed runs paid, as the trail now shows it."""
    if not any((out / "audit/runs").glob("**/*.parquet")):
        return 0
    return int(runs(out).filter(pl.col("status") == "committed")["total_paid_krw"].sum())


def named_by_verify(out: Path, *words: str) -> None:
    problems, _ = verify_trail(out)
    assert any(all(w in p for w in words) for p in problems), problems


def test_deleting_the_newest_run_is_caught_by_the_anchor_and_pays_nobody_again(
    trail: tuple[Path, Path, str, str],
) -> None:
    data, out, first, second = trail  # noqa: RUF059
    # The review's attack: remove a committed run's record, decisions, payments, reports and
    # quarantine, so the trail looks as if it never ran. Here: the first (paying) run's second.
    record_file(out, second).unlink()
    for folder in out.glob(f"**/run_id={second}"):
        shutil.rmtree(folder)
    for folder in out.glob(f"*/{PROGRAM}/{second}"):
        shutil.rmtree(folder)
    refused(data, out, "cut back or rewritten", second)
    named_by_verify(out, "cut back or rewritten")


def test_deleting_every_run_is_caught_by_the_anchor(trail: tuple[Path, Path, str, str]) -> None:
    data, out, first, second = trail  # noqa: RUF059
    shutil.rmtree(out / "audit")
    shutil.rmtree(out / "payments")
    refused(data, out, "cut back or rewritten")


def test_a_forged_run_record_that_consumed_the_applications_is_refused(
    trail: tuple[Path, Path, str, str],
) -> None:
    data, out, first, second = trail  # noqa: RUF059
    # A hand-made committed record after the real ones, linked and sealed, with no decisions:
    # it would make the next run skip files and starve people. Without the key: unsigned.
    last = record(out, second)
    forged = audit.RunRecord(
        **{
            **last.__dict__,
            "run_id": "20990101T000000Z-forged00",
            "outputs": [],
            "prev_run_sha256": last.run_sha256,
            "finished_at": last.finished_at.replace(year=2099),
        }
    )
    write_record(out, forged)
    refused(data, out, "20990101T000000Z-forged00", "is not signed")
    named_by_verify(out, "20990101T000000Z-forged00", "not signed")


def test_a_payment_redirected_to_another_card_with_every_hash_recomputed_is_refused(
    trail: tuple[Path, Path, str, str],
) -> None:
    data, out, first, second = trail  # noqa: RUF059
    folder = out / "payments" / PROGRAM / first
    credit = folder / "local_currency_0001.csv"
    text = credit.read_text(encoding="utf-8")
    card = text.splitlines()[1].split(",")[2]
    credit.write_text(text.replace(card, "9999999999999999", 1), encoding="utf-8")
    manifest = json.loads((folder / "manifest.json").read_text())
    digest = hashlib.sha256(credit.read_bytes()).hexdigest()
    for f in manifest["files"]:
        if f["file"] == credit.name:
            f["sha256"] = digest
    (folder / "manifest.json").write_text(json.dumps(manifest))
    old = record(out, first)
    outputs = [
        {
            **o,
            "sha256": hashlib.sha256((out / o["file"]).read_bytes()).hexdigest()
            if o["file"].startswith(f"payments/{PROGRAM}/")
            else o["sha256"],
        }
        for o in old.outputs
    ]
    write_record(out, audit.RunRecord(**{**old.__dict__, "outputs": outputs}))
    refused(data, out, first, "not signed")
    named_by_verify(out, first, "not signed")


@pytest.mark.parametrize(
    "field",
    ["operator", "status", "total_paid_krw", "counts", "inputs", "key_fingerprint", "message"],
)
def test_editing_any_field_of_a_run_record_and_resealing_it_is_refused(
    field: str, trail: tuple[Path, Path, str, str]
) -> None:
    data, out, first, second = trail  # noqa: RUF059
    old = record(out, first)
    value = getattr(old, field)
    changed: object = {
        "operator": "someone else",
        "status": "dry_run",
        "total_paid_krw": 0,
        "counts": {**old.counts, "PAID": 0},
        "inputs": old.inputs[:-1],
        "key_fingerprint": None,
        "message": "nothing happened",
    }[field]
    assert changed != value
    edited = audit.RunRecord(**{**old.__dict__, field: changed})
    # Kept its old signature but recomputed the seal: the signature no longer matches.
    resealed = edited.sealed(None)
    forged = audit.RunRecord(
        **{**resealed.__dict__, "signing_key": old.signing_key, "signature": old.signature}
    )
    forged = audit.RunRecord(
        **{**forged.__dict__, "run_sha256": hashlib.sha256(forged.canonical()).hexdigest()}
    )
    record_file(out, first).write_bytes(audit.run_record_parquet(forged))
    refused(data, out, first, "signature that does not match its content")
    named_by_verify(out, first, "signature that does not match")


def test_a_record_signed_with_another_key_is_refused_by_the_run(
    trail: tuple[Path, Path, str, str],
) -> None:
    data, out, first, second = trail  # noqa: RUF059
    other = signing.new_private_hex()
    write_record(out, audit.RunRecord(**{**record(out, first).__dict__, "operator": "x"}), other)
    refused(data, out, first, "signed with another signing key")


def test_swapped_or_replayed_records_are_refused(trail: tuple[Path, Path, str, str]) -> None:
    data, out, first, second = trail
    replay = record_file(out, "20990101T000000Z-replayed")
    shutil.copy(record_file(out, first), replay)  # an old event filed again as a new one
    refused(data, out, "copied or replayed")
    named_by_verify(out, "renamed or swapped")
    replay.unlink()
    a, b = record_file(out, first), record_file(out, second)
    swap = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(swap)
    refused(data, out, "copied or replayed")
    named_by_verify(out, "renamed or swapped")


def test_a_missing_anchor_is_refused_until_the_verified_trail_is_adopted(
    trail: tuple[Path, Path, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out, first, second = trail  # noqa: RUF059
    anchor.anchor_file(out, PROGRAM).unlink()
    refused(data, out, "no anchor")
    named_by_verify(out, "no anchor")
    public = tmp_path / "city.pem"
    public.write_bytes(signing.public_pem(signing.private_key(TEST_SIGNING_KEY)))
    monkeypatch.setenv("JIWON_PII_KEY", TEST_KEY)
    args = ["audit", "anchor", "--out", str(out), "--program", PROGRAM, "--public-key"]
    adopted = CliRunner().invoke(app, [*args, str(public)])
    assert adopted.exit_code == 0, adopted.output
    assert f"anchored {PROGRAM} at run {second} (record 2)" in adopted.output
    again = CliRunner().invoke(app, [*args, str(public)])
    assert again.exit_code == 2 and "never overwritten" in again.output
    assert run_flow(data, out, trigger="rerun", reason="anchor adopted").status == "committed"


def test_an_auditor_verifies_with_the_public_key_alone(
    trail: tuple[Path, Path, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out, first, second = trail  # noqa: RUF059
    public = tmp_path / "city.pem"
    public.write_bytes(signing.public_pem(signing.private_key(TEST_SIGNING_KEY)))
    for secret in ("JIWON_PII_KEY", "JIWON_SIGNING_KEY"):
        monkeypatch.delenv(secret, raising=False)
    verified = CliRunner().invoke(
        app, ["audit", "verify", "--out", str(out), "--public-key", str(public)]
    )
    assert verified.exit_code == 0, verified.output
    assert "2 run(s) checked" in verified.output and "given public key" in verified.output
    other = tmp_path / "other.pem"
    other.write_bytes(signing.public_pem(signing.private_key(signing.new_private_hex())))
    wrong = CliRunner().invoke(
        app, ["audit", "verify", "--out", str(out), "--public-key", str(other)]
    )
    assert wrong.exit_code == 1 and "signed with another signing key" in wrong.output


def test_a_run_without_the_signing_key_refuses_to_start(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JIWON_SIGNING_KEY")
    from flows.errors import UsageError

    with pytest.raises(UsageError, match="JIWON_SIGNING_KEY is not set"):
        run_flow(story, tmp_path / "out")
    monkeypatch.setenv("JIWON_SIGNING_KEY", "not a key")
    with pytest.raises(UsageError, match="neither 64 hex digits nor"):
        run_flow(story, tmp_path / "out")


def test_keys_new_prints_a_private_key_that_signs_for_the_public_key_it_wrote(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(app, ["keys", "new", "--public-key", str(tmp_path / "k.pem")])
    assert result.exit_code == 0
    private = signing.private_key(result.stdout.strip().splitlines()[-1])
    public = signing.public_key((tmp_path / "k.pem").read_bytes())
    assert signing.signed_by(public, b"x", signing.sign(private, b"x"))


def test_a_clean_trail_of_monthly_runs_with_reruns_and_a_crash_verifies(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.flowrun import run_in_month

    data = tmp_path / "data"
    shutil.copytree(story, data)
    out = tmp_path / "out"
    for month in ("2025-03", "2025-04", "2025-05"):
        run_in_month(monkeypatch, data, out, month)
        run_in_month(monkeypatch, data, out, month, trigger="rerun", reason="resend")
    before = len(runs(out))
    original = audit.run_record_parquet

    def dying(record: audit.RunRecord) -> bytes:
        raise RuntimeError("killed while writing the run record")

    monkeypatch.setattr(audit, "run_record_parquet", dying)
    with pytest.raises(RuntimeError, match="killed"):
        run_in_month(monkeypatch, data, out, "2025-06")
    monkeypatch.setattr(audit, "run_record_parquet", original)
    run_in_month(monkeypatch, data, out, "2025-06", trigger="rerun", reason="after a crash")
    assert verify_trail(out) == ([], before + 1)
    paid = decisions(out).filter(pl.col("outcome") == "PAID", pl.col("source_kind") == "registry")
    assert paid["person_key"].is_unique().all()


def test_rewinding_the_trail_and_the_anchor_folder_is_caught_by_the_anchor_on_the_server(
    trail: tuple[Path, Path, str, str],
) -> None:
    data, out, first, second = trail
    # An attacker who can write both --out and the anchor folder cuts the trail back to the first
    # run and rewrites the anchor file to match; the copy in the Prefect server's database stays.
    kept = anchor.anchor_file(out, PROGRAM)
    record_file(out, second).unlink()
    for folder in out.glob(f"**/run_id={second}"):
        shutil.rmtree(folder)
    for folder in out.glob(f"*/{PROGRAM}/{second}"):
        shutil.rmtree(folder)
    head = (1, first, record(out, first).run_sha256)
    anchor.write_anchor(out, PROGRAM, head, pending=None)
    assert kept.is_file()
    refused(data, out, "Prefect Variable jiwon-anchor-", "cut back or rewritten", second)


def test_the_signing_key_can_come_from_a_prefect_secret_block_and_a_missing_block_is_named(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.blocks.system import Secret

    from flows.errors import UsageError

    Secret(value=TEST_SIGNING_KEY).save("jiwon-test-signing-key", overwrite=True)
    monkeypatch.delenv("JIWON_SIGNING_KEY")
    monkeypatch.setenv("JIWON_SIGNING_KEY_BLOCK", "jiwon-test-signing-key")
    out = tmp_path / "out"
    assert run_flow(story, out).status == "committed"
    trusted = signing.private_key(TEST_SIGNING_KEY).public_key()
    assert record(out, runs(out)["run_id"][0]).signed_by(trusted)
    monkeypatch.setenv("JIWON_SIGNING_KEY_BLOCK", "no-such-block")
    with pytest.raises(UsageError, match="names the Prefect Secret block 'no-such-block'"):
        run_flow(story, tmp_path / "other")


def test_the_demo_starts_afresh_after_its_folder_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's promise: `rm -rf demo-output` and `jiwon demo` again, on the same Prefect
    server, whose database keeps the anchor's second copy of the removed trail."""
    for name in ("JIWON_PII_KEY", "JIWON_SIGNING_KEY", "JIWON_ANCHOR_DIR"):  # the demo sets them
        monkeypatch.setenv(name, os.environ.get(name, ""))
    demo = tmp_path / "demo-output"
    args = ["demo", "--rows", "300", "--out", str(demo)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    shutil.rmtree(demo)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    # the demo's cycle: the run, its approval, the card operator's answers, the re-issue run,
    # its approval, its answers
    assert verify_trail(demo / "out", anchors=demo / "anchors") == ([], 6)
