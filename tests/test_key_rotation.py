"""Rotating keys on purpose (issue 14, item 5; decision note 0014).

The personal-data key: a rotation maps every person the trail knows from the old key to the new,
as a signed ledger event; nobody paid before it is paid again after it, the old key is refused
from then on, and `audit explain` follows a person across it. The signing key: a rotation names
both public keys, signed by the new and cosigned by the retiring one; an auditor trusting either
key verifies the whole chain, and a forged rotation is caught.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.audit import records as audit
from flows.audit import signing
from flows.audit.explain import explain_person
from flows.audit.verify import verify_trail
from flows.cli import app
from flows.errors import LedgerUntrusted, RunHalted, Unexpected, UsageError
from flows.run.rotate import RotateParams, rotate_key
from tests.conftest import TEST_KEY, TEST_SIGNING_KEY
from tests.support.flowrun import decisions, run_flow, run_in_month, runs

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend", "pii_key")]
PROGRAM = "paju-livelihood-2025"
NEW_KEY = "new-pii-key-fedcba9876543210"
NEW_SIGNING_KEY = "6e6577207369676e696e67206b6579206166746572207468652072656b65793a"
KIM_MINSU = "750312-1123458"  # in the story's registry_unjeong.csv, paid by the first run


@pytest.fixture
def trail(story: Path, tmp_path: Path) -> tuple[Path, Path]:
    """One committed run on the story that pays its eligible residents."""
    data = tmp_path / "data"
    shutil.copytree(story, data)
    out = tmp_path / "out"
    run_flow(data, out)
    return data, out


def rotate(out: Path, key: str = "pii", data: Path | None = None, **overrides: object) -> str:
    params = {
        "program": PROGRAM,
        "out": out,
        "key": key,
        "registry": data / "registry" if data else None,
        "enrollments": data / "enrollments" if data else None,
        "operator": "security officer",
        "reason": "yearly key rotation",
    } | overrides
    return rotate_key(RotateParams.model_validate(params)).run_id


def paid_people(out: Path) -> int:
    paid = decisions(out).filter(pl.col("outcome") == "PAID", pl.col("source_kind") == "registry")
    return paid.height


def use_new_pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIWON_PII_KEY_PREVIOUS", TEST_KEY)
    monkeypatch.setenv("JIWON_PII_KEY", NEW_KEY)


def test_after_a_pii_key_rotation_nobody_paid_before_is_paid_again(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = trail
    paid = paid_people(out)
    assert paid > 0
    use_new_pii_key(monkeypatch)
    rotation = rotate(out, data=data)
    after = run_flow(data, out, trigger="rerun", reason="first run under the new key")
    assert after.counts["PAID"] == 0 and after.total_paid_krw == 0
    assert paid_people(out) == paid
    assert verify_trail(out) == ([], 3)
    # Payment files are cross-checked under the program's key: those from before, not.
    verified = CliRunner().invoke(app, ["audit", "verify", "--out", str(out)])
    assert verified.exit_code == 0, verified.output
    assert "1 run(s) before its last personal-data key rotation" in verified.output
    record = runs(out).filter(pl.col("run_id") == rotation).row(0, named=True)
    assert record["trigger"] == "key_rotation" and record["status"] == "committed"
    assert record["total_paid_krw"] == 0 and record["signature"]
    detail = json.loads(record["parameters"])["rotation"]
    assert detail["kind"] == "pii_key" and detail["paid_persons"] == paid
    # The map holds the two keys per person and nothing else: no RRN, no name.
    mapping = pl.read_parquet(out / record["outputs"][0]["file"])
    assert mapping.columns == ["old_person_key", "new_person_key"]
    assert mapping.height == detail["persons"] >= paid
    hashes = mapping.select(pl.all().str.contains(r"^[0-9a-f]{64}$").all())
    assert hashes.row(0) == (True, True)  # keyed hashes only, never an RRN


def test_after_a_pii_key_rotation_the_old_key_is_refused(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = trail
    use_new_pii_key(monkeypatch)
    rotate(out, data=data)
    monkeypatch.setenv("JIWON_PII_KEY", TEST_KEY)
    with pytest.raises(RunHalted, match="different key"):
        run_flow(data, out, trigger="rerun", reason="with the retired key")
    with pytest.raises(UsageError, match="not the key"):
        explain_person(out, rrn=KIM_MINSU)


def test_a_rotation_that_would_lose_a_paid_person_is_refused_whole(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data, out = trail
    partial = tmp_path / "partial"
    (partial / "registry").mkdir(parents=True)
    shutil.copy(data / "registry/registry_unjeong.csv", partial / "registry")
    use_new_pii_key(monkeypatch)
    before = runs(out).height
    with pytest.raises(RunHalted, match=r"person\(s\) the ledger of .* paid are in none"):
        rotate(out, data=None, registry=partial / "registry")
    assert runs(out).height == before
    assert not list(out.glob(".staging/*"))  # nothing left for a recovery to roll back
    # The program's key is still the old one: a run with the new key is refused.
    with pytest.raises(RunHalted, match="different key"):
        run_flow(data, out, trigger="rerun", reason="new key without a rotation")


def test_explain_follows_a_person_across_the_rotation(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = trail
    use_new_pii_key(monkeypatch)
    rotate(out, data=data)
    run_flow(data, out, trigger="rerun", reason="after the rotation")
    account = explain_person(out, rrn=KIM_MINSU)
    assert "PAID 100,000 won" in account
    assert account.count("registry registry_unjeong.csv") == 2  # before and after the rotation
    payment = next(line for line in account.splitlines() if line.startswith("PAID"))
    payment_id = payment.split("payment ")[1].split()[0]
    assert explain_person(out, payment_id=payment_id).count("registry_unjeong.csv") == 2


def test_an_edited_rotation_map_is_caught_before_anyone_is_paid(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = trail
    use_new_pii_key(monkeypatch)
    rotation = rotate(out, data=data)
    path = out / f"audit/rotations/program={PROGRAM}/run_id={rotation}.parquet"
    mapping = pl.read_parquet(path)
    # Point a paid person's old key at a stranger's new key: they would look unpaid.
    shifted = pl.col("new_person_key").shift(1, fill_value="0" * 64)
    mapping.with_columns(new_person_key=shifted).write_parquet(path)
    problems, _ = verify_trail(out)
    assert any("audit/rotations" in p and "changed" in p for p in problems), problems
    with pytest.raises(LedgerUntrusted, match="audit/rotations"):
        run_flow(data, out, trigger="rerun", reason="after the edit")


def test_rotating_the_pii_key_from_the_command_line_and_its_mistakes(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = trail
    cli = CliRunner()
    base = ["keys", "rotate", "pii", "--program", PROGRAM, "--out", str(out)]
    monkeypatch.setenv("JIWON_PII_KEY", NEW_KEY)
    monkeypatch.delenv("JIWON_PII_KEY_PREVIOUS", raising=False)
    result = cli.invoke(app, [*base, "--registry", str(data / "registry")])
    assert result.exit_code == 2 and "JIWON_PII_KEY_PREVIOUS is not set" in result.output
    monkeypatch.setenv("JIWON_PII_KEY_PREVIOUS", "some-other-key-0000000000")
    result = cli.invoke(app, [*base, "--registry", str(data / "registry")])
    assert result.exit_code == 2 and "is not the key" in result.output
    monkeypatch.setenv("JIWON_PII_KEY_PREVIOUS", TEST_KEY)
    result = cli.invoke(app, base)
    assert result.exit_code == 2 and "needs --registry" in result.output
    full = [*base, "--registry", str(data / "registry"), "--enrollments", str(data / "enrollments")]
    result = cli.invoke(app, full)
    assert result.exit_code == 0, result.output
    assert "person key(s) mapped" in result.output
    result = cli.invoke(app, full)  # again: the old key is no longer the program's key
    assert result.exit_code == 2 and "is not the key" in result.output


def rotate_signing(monkeypatch: pytest.MonkeyPatch, out: Path) -> str:
    monkeypatch.setenv("JIWON_SIGNING_KEY_PREVIOUS", TEST_SIGNING_KEY)
    monkeypatch.setenv("JIWON_SIGNING_KEY", NEW_SIGNING_KEY)
    return rotate(out, key="signing")


def public(key: str) -> signing.Ed25519PublicKey:
    return signing.private_key(key).public_key()


def test_after_a_signing_key_rotation_either_trusted_key_verifies_the_whole_chain(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = trail
    rotation = rotate_signing(monkeypatch, out)
    run_flow(data, out, trigger="rerun", reason="signed with the new key")
    for trusted in ([public(TEST_SIGNING_KEY)], [public(NEW_SIGNING_KEY)], None):
        assert verify_trail(out, trusted) == ([], 3)
    newest = runs(out).row(-1, named=True)
    assert newest["signing_key"] == signing.key_id(public(NEW_SIGNING_KEY))
    record = runs(out).filter(pl.col("run_id") == rotation).row(0, named=True)
    assert record["cosignature"] and record["signing_key"] == newest["signing_key"]
    # A stranger's key verifies nothing.
    stranger = signing.private_key(signing.new_private_hex()).public_key()
    problems, _ = verify_trail(out, [stranger])
    assert problems and "none of which is a trusted key" in problems[0]


def test_after_a_signing_key_rotation_the_retired_key_cannot_sign(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = trail
    rotate_signing(monkeypatch, out)
    monkeypatch.setenv("JIWON_SIGNING_KEY", TEST_SIGNING_KEY)
    with pytest.raises(UsageError, match="was rotated"):
        run_flow(data, out, trigger="rerun", reason="with the retired signing key")


def test_a_forged_signing_key_rotation_is_caught(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attacker writes a rotation from the city's key to their own, without the city's key."""
    data, out = trail
    attacker = signing.new_private_hex()
    runs_before = runs(out)
    last = audit.record_from_row(runs_before.row(-1, named=True))
    detail = {
        "kind": "signing_key",
        "previous_key_id": signing.key_id(public(TEST_SIGNING_KEY)),
        "previous_public_key": signing.public_pem(public(TEST_SIGNING_KEY)).decode(),
        "new_key_id": signing.key_id(public(attacker)),
        "new_public_key": signing.public_pem(public(attacker)).decode(),
    }
    forged = audit.RunRecord(
        **{
            **{k: getattr(last, k) for k in audit.RunRecord.__dataclass_fields__},
            "run_id": "29990101T000000Z-0badc0de",
            "trigger": "key_rotation",
            "parameters": json.dumps({"rotation": detail}),
            "inputs": [],
            "outputs": [],
            "total_paid_krw": 0,
            "prev_run_sha256": last.run_sha256,
            "finished_at": last.finished_at.replace(year=2999),
        }
    ).sealed(signing.private_key(attacker))
    forged = audit.RunRecord(
        **{**forged.__dict__, "cosignature": signing.sign(signing.private_key(attacker), b"x")}
    )
    target = out / f"audit/runs/program={PROGRAM}/run_id={forged.run_id}.parquet"
    target.write_bytes(audit.run_record_parquet(forged))
    problems, _ = verify_trail(out, [public(attacker)])
    assert any("not cosigned by the retiring key" in p for p in problems), problems
    monkeypatch.setenv("JIWON_SIGNING_KEY", attacker)
    with pytest.raises(LedgerUntrusted, match="not cosigned"):
        run_flow(data, out, trigger="rerun", reason="signed by the attacker")


def test_a_clean_trail_of_twelve_monthly_runs_with_reruns_a_crash_and_rotations_verifies(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    shutil.copytree(story, data)
    out = tmp_path / "out"
    months = [f"2025-{m:02d}" for m in range(3, 13)] + ["2026-01", "2026-02"]
    original = audit.run_record_parquet
    for month in months:
        run_in_month(monkeypatch, data, out, month)
        if month in ("2025-04", "2025-10"):
            run_in_month(monkeypatch, data, out, month, trigger="rerun", reason="bank resend")
        if month == "2025-06":  # killed while committing, then rerun
            monkeypatch.setattr(audit, "run_record_parquet", lambda record: 1 / 0)
            with pytest.raises(Unexpected, match="ZeroDivisionError"):
                run_in_month(monkeypatch, data, out, month, trigger="rerun", reason="crash")
            monkeypatch.setattr(audit, "run_record_parquet", original)
            run_in_month(monkeypatch, data, out, month, trigger="rerun", reason="after crash")
        if month == "2025-08":
            use_new_pii_key(monkeypatch)
            rotate(out, data=data)
        if month == "2025-11":
            rotate_signing(monkeypatch, out)
    problems, checked = verify_trail(out)
    assert problems == []
    assert checked == len(months) + 2 + 1 + 2  # monthly, reruns, the crash's rerun, rotations
    for trusted in ([public(TEST_SIGNING_KEY)], [public(NEW_SIGNING_KEY)]):
        assert verify_trail(out, trusted)[0] == []
    paid = decisions(out).filter(pl.col("outcome") == "PAID", pl.col("source_kind") == "registry")
    first = runs(out).filter(pl.col("status") == "committed")["run_id"][0]
    assert paid.filter(pl.col("run_id") == first).height == paid.height  # only the first paid


@pytest.mark.parametrize(
    ("unit", "rotated"), [("rotation map", False), ("run record", False), ("payments", True)]
)
def test_a_rotation_killed_while_publishing_is_whole_or_absent_and_pays_nobody_twice(
    unit: str, rotated: bool, trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed before its record is published: not rotated, the old key is still the program's;
    after it: rotated, and the next run (with the new key) finishes it."""
    from tests.test_crash import UNITS, Crash, crash_before_move

    data, out = trail
    paid = paid_people(out)
    use_new_pii_key(monkeypatch)
    with pytest.MonkeyPatch.context() as armed:
        crash_before_move(armed, UNITS.index(unit))
        with pytest.raises(Crash):
            rotate(out, data=data)
    if not rotated:
        monkeypatch.setenv("JIWON_PII_KEY", TEST_KEY)
    after = run_flow(data, out, trigger="rerun", reason="after the killed rotation")
    assert after.total_paid_krw == 0 and paid_people(out) == paid
    triggers = ["manual", "key_rotation", "rerun"] if rotated else ["manual", "rerun"]
    assert verify_trail(out) == ([], len(triggers))
    assert runs(out)["trigger"].to_list() == triggers


def test_a_what_if_after_a_rotation_compares_with_the_last_run(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = trail
    use_new_pii_key(monkeypatch)
    rotate(out, data=data)
    dry = run_flow(data, out, dry_run=True, trigger="rerun", reason="what if")
    assert dry.counts["PAID"] == 0
    assert any("PAID" in line for line in dry.changes), dry.changes


def test_a_retired_key_never_comes_back_by_a_second_rotation(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = trail
    use_new_pii_key(monkeypatch)
    rotate(out, data=data)
    monkeypatch.setenv("JIWON_PII_KEY_PREVIOUS", NEW_KEY)
    monkeypatch.setenv("JIWON_PII_KEY", TEST_KEY)
    with pytest.raises(UsageError, match="a retired key never comes back"):
        rotate(out, data=data)
    rotate_signing(monkeypatch, out)
    monkeypatch.setenv("JIWON_SIGNING_KEY_PREVIOUS", NEW_SIGNING_KEY)
    monkeypatch.setenv("JIWON_SIGNING_KEY", TEST_SIGNING_KEY)
    with pytest.raises(UsageError, match="a retired key never comes back"):
        rotate(out, key="signing")


def test_explain_refuses_an_edited_map_and_verify_names_a_planted_one(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = trail
    use_new_pii_key(monkeypatch)
    rotation = rotate(out, data=data)
    folder = out / f"audit/rotations/program={PROGRAM}"
    planted = folder / "run_id=20250101T000000Z-0badc0de.parquet"
    shutil.copy(folder / f"run_id={rotation}.parquet", planted)
    problems, _ = verify_trail(out)
    assert any("0badc0de" in p and "run record is missing" in p for p in problems), problems
    planted.unlink()
    path = folder / f"run_id={rotation}.parquet"
    pl.read_parquet(path).head(1).write_parquet(path)  # everyone but one forgotten
    with pytest.raises(LedgerUntrusted, match="audit/rotations"):
        explain_person(out, rrn=KIM_MINSU)


def redeliver_reordered(folder: Path) -> None:
    """Deliver every enrollment file again with its rows in another order: new bytes, new
    SHA-256, so no row of it counts as closed, and every application is decided again."""
    for path in sorted(folder.glob("*.csv")):
        header, *rows = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(header + b"".join(rows[1:] + rows[:1]))  # the first row moved last


def test_enrollments_delivered_again_with_new_bytes_pay_nobody_twice_across_a_rotation(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = trail
    paid = paid_people(out)
    redeliver_reordered(data / "enrollments")
    again = run_flow(data, out, trigger="rerun", reason="the office sent the files again")
    assert again.total_paid_krw == 0 and again.counts["ALREADY_PAID"] > 0
    use_new_pii_key(monkeypatch)
    rotate(out, data=data)
    redeliver_reordered(data / "enrollments")
    after = run_flow(data, out, trigger="rerun", reason="sent again after the rotation")
    assert after.total_paid_krw == 0
    assert after.counts["ALREADY_PAID"] == again.counts["ALREADY_PAID"]
    assert paid_people(out) == paid


def test_an_application_waiting_across_a_rotation_is_paid_once_after_the_registry_is_fixed(
    trail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody owed is lost across a rotation: A0016 waits on a quarantined registry row."""
    from tests.test_application_states import application, fix_registry

    data, out = trail
    first = runs(out)["run_id"][0]
    assert application(out, first, "A0016")["outcome"] == "UNMATCHED"
    use_new_pii_key(monkeypatch)
    rotate(out, data=data)
    fix_registry(data, "A0016")
    fixed = run_flow(data, out, trigger="rerun", reason="registry row fixed after the rotation")
    assert application(out, fixed.run_id, "A0016")["outcome"] == "PAID"
    assert fixed.total_paid_krw == 100_000
    again = run_flow(data, out, trigger="rerun", reason="and once more")
    assert again.total_paid_krw == 0
    assert verify_trail(out) == ([], 4)
