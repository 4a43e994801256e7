"""What a red team found with write access to the output root only (issue 14), each closed.

Every test failed on the code before its fix: a planted staging marker deleting the anchor, a
refused run releasing its payment files, a published run deleted behind a pending anchor, a
machine whose clock is behind breaking the chain, a lock file linked to the anchor, and verify
missing a program whose trail was deleted or payment folders of a program with no trail.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from flows.audit import anchor, signing
from flows.audit.verify import verify_trail
from flows.errors import InputRejected, LedgerUntrusted, RunHalted, UsageError
from flows.pay.bankfile import BankFileError
from tests.conftest import TEST_SIGNING_KEY
from tests.support.banktrail import bank_story
from tests.support.flowrun import run_flow, runs

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend", "pii_key")]
PROGRAM = "paju-livelihood-2025"
KEY = signing.private_key(TEST_SIGNING_KEY).public_key()


def wipe(out: Path) -> None:
    for name in ("audit", "payments", "reports", "quarantine"):
        shutil.rmtree(out / name, ignore_errors=True)


def killed_between_publishing_and_anchoring(
    story: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run once and die after publishing, before the anchor's second write names the new head."""
    real = anchor.write_anchor

    def killed_after_publishing(*args: Any, pending: Any) -> dict[str, Any]:
        if pending is None:  # the second write: the run was published, then the process died
            raise SystemExit("killed between publishing and writing the anchor")
        return real(*args, pending=pending)

    monkeypatch.setattr("flows.run.flow.write_anchor", killed_after_publishing)
    with pytest.raises(SystemExit):
        run_flow(story, out)
    monkeypatch.setattr("flows.run.flow.write_anchor", real)


def test_a_planted_staging_marker_cannot_delete_the_anchor_and_let_a_deleted_trail_pay_again(
    story: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_flow(story, out).total_paid_krw > 0
    anchor_path = anchor.anchor_file(out, PROGRAM)
    wipe(out)
    planted = out / ".staging" / "x"
    planted.mkdir(parents=True)
    (planted / "staged.json").write_text(
        json.dumps({"program": PROGRAM, "run_month": "2025-03", "run_id": str(anchor_path)})
    )
    with pytest.raises(LedgerUntrusted, match="cut back"):
        run_flow(story, out, trigger="rerun", reason="after the attack")
    assert anchor_path.is_file()


def test_a_lock_file_linked_to_the_anchor_halts_the_run_and_leaves_the_anchor_alone(
    story: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_flow(story, out)
    anchor_path = anchor.anchor_file(out, PROGRAM)
    kept = anchor_path.read_bytes()
    lock = out / ".locks" / f"{PROGRAM}.lock"
    lock.unlink()
    lock.symlink_to(anchor_path)
    with pytest.raises(RunHalted, match="is a symbolic link"):
        run_flow(story, out, trigger="rerun", reason="after the attack")
    assert anchor_path.read_bytes() == kept


def test_a_run_rejected_while_rendering_bank_files_releases_no_payment_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bank_story(tmp_path / "data")
    out = tmp_path / "out"

    def broken_settings() -> None:  # a rules/bank.yaml the operator left incomplete
        raise BankFileError("rules/bank.yaml: payer lacks account_no")

    monkeypatch.setattr("flows.pay.render.reference.bank_settings", broken_settings)
    with pytest.raises(UsageError):
        run_flow(data, out, programs_dir=data / "programs")
    record = runs(out).row(0, named=True)
    assert record["status"] == "rejected"
    released = sorted(p.name for p in (out / "payments").rglob("*") if p.is_file())
    assert released == []
    assert not [o for o in record["outputs"] if o["file"].startswith(("payments/", "audit/"))]


def test_a_run_published_before_a_crash_cannot_be_deleted_behind_its_pending_anchor(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    killed_between_publishing_and_anchoring(story, out, monkeypatch)
    body = anchor.read_anchor(anchor.anchor_file(out, PROGRAM))
    assert body is not None and body["pending"] is not None
    wipe(out)  # the attacker deletes the published run (31,400,000 won paid)
    with pytest.raises(LedgerUntrusted, match="published, then deleted"):
        run_flow(story, out, trigger="rerun", reason="after the crash")


def test_a_crash_between_publishing_and_anchoring_is_not_a_false_alarm(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    killed_between_publishing_and_anchoring(story, out, monkeypatch)
    rerun = run_flow(story, out, trigger="rerun", reason="after the crash")
    assert rerun.status == "committed" and rerun.total_paid_krw == 0
    assert verify_trail(out, [KEY]) == ([], 2)


def test_a_run_on_a_machine_whose_clock_is_behind_keeps_the_chain_in_order(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    t = dt.datetime(2025, 3, 20, 3, 0, tzinfo=dt.UTC)
    monkeypatch.setattr("flows.run.flow.now", lambda: t)
    run_flow(story, out)
    monkeypatch.setattr("flows.run.flow.now", lambda: t - dt.timedelta(minutes=1))
    run_flow(story, out, trigger="rerun", reason="second worker, clock a minute behind")
    monkeypatch.setattr("flows.run.flow.now", lambda: t + dt.timedelta(minutes=5))
    assert run_flow(story, out, trigger="rerun", reason="clocks agree").status == "committed"
    assert verify_trail(out, [KEY]) == ([], 3)


def test_verify_names_a_program_whose_whole_trail_was_deleted_while_its_anchor_remains(
    story: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_flow(story, out)
    with pytest.raises(InputRejected):  # another program's (rejected) record keeps audit/runs
        run_flow(story, out, program="paju-energy-2023", run_month="2023-04")
    shutil.rmtree(out / "audit/runs" / f"program={PROGRAM}")
    shutil.rmtree(out / "audit/decisions" / f"program={PROGRAM}")
    for kind in ("payments", "reports", "quarantine"):
        shutil.rmtree(out / kind / PROGRAM, ignore_errors=True)
    problems, _ = verify_trail(out, [KEY])
    assert any(PROGRAM in p and "whole trail was deleted" in p for p in problems), problems


def test_verify_names_payment_files_of_a_program_that_has_no_trail(
    story: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_flow(story, out)
    paid = next((out / "payments" / PROGRAM).iterdir())
    shutil.copytree(paid, out / "payments" / "paju-energy-2023" / paid.name)
    (out / "payments" / "loose.csv").write_text("payment_id\n")
    problems, _ = verify_trail(out, [KEY])
    assert any("payments/paju-energy-2023" in p for p in problems), problems
    assert any("payments/loose.csv" in p for p in problems), problems


def test_a_run_rolled_back_by_recovery_is_settled_and_not_taken_for_a_deleted_one_later(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after naming its head pending, before publishing; the next run recovers it and
    stops on bad usage; the run after that must not halt on the stale pending head."""
    from flows.run.publish import Staging

    out = tmp_path / "out"
    run_flow(story, out)

    def killed(self: Staging) -> None:
        raise SystemExit("killed before publishing")

    with monkeypatch.context() as armed:
        armed.setattr(Staging, "publish", killed)
        with pytest.raises(SystemExit):
            run_flow(story, out, trigger="rerun", reason="killed")
    with pytest.raises(UsageError, match="before 2025-03"):
        run_flow(story, out, trigger="rerun", reason="wrong month", run_month="2025-02")
    rerun = run_flow(story, out, trigger="rerun", reason="after the crash")
    assert rerun.status == "committed" and rerun.total_paid_krw == 0
    assert verify_trail(out, [KEY]) == ([], 2)  # bad usage writes no run record


def test_an_empty_folder_named_after_the_pending_run_does_not_hide_its_deletion(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    killed_between_publishing_and_anchoring(story, out, monkeypatch)
    body = anchor.read_anchor(anchor.anchor_file(out, PROGRAM))
    assert body is not None
    wipe(out)
    (out / ".staging" / body["pending"]["run_id"]).mkdir(parents=True)
    with pytest.raises(LedgerUntrusted, match="published, then deleted"):
        run_flow(story, out, trigger="rerun", reason="after the attack")


def test_anchors_of_two_programs_in_one_output_root_can_both_be_adopted(
    story: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    programs = tmp_path / "programs"
    source = Path("rules/programs/paju-livelihood-2025/program.yaml").read_text(encoding="utf-8")
    for name in ("paju-a", "paju-b"):
        (programs / name).mkdir(parents=True)
        (programs / name / "program.yaml").write_text(
            source.replace("id: paju-livelihood-2025", f"id: {name}"), encoding="utf-8"
        )
    out = tmp_path / "out"
    for name in ("paju-a", "paju-b"):
        run_flow(story, out, program=name, programs_dir=programs)
    public = tmp_path / "city.pem"
    public.write_bytes(signing.public_pem(KEY))
    for name in ("paju-a", "paju-b"):
        anchor.anchor_file(out, name).unlink()
    for name in ("paju-a", "paju-b"):
        args = ["audit", "anchor", "--out", str(out), "--program", name, "--public-key"]
        adopted = CliRunner().invoke(app, [*args, str(public)])
        assert adopted.exit_code == 0, adopted.output
    assert verify_trail(out, [KEY]) == ([], 2)
