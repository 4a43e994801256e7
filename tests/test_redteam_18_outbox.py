"""Red team (issue 18): the outbox releases a run once, only the sealed files, never again."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from flows.audit.verify import verify_trail
from flows.run.approve import ApproveParams, approve_release
from tests.support.flowrun import run_flow

PROGRAM = "paju-livelihood-2025"


@pytest.fixture
def data(story: Path, pii_key: str) -> Path:
    return story


def approve(out: Path, run_id: str, who: str) -> object:
    return approve_release(ApproveParams(program=PROGRAM, out=out, run_id=run_id, approver=who))


def test_a_released_run_sent_and_removed_is_not_released_again_from_a_planted_partial(
    data: Path, tmp_path: Path
) -> None:
    """The sender took run R's files; a `.R.partial` folder (a restored backup, a stray copy, a
    hostile hand) appears. `settle` in the next ledger event renames it into the outbox: R's
    payments are in the outbox a second time and the bank is sent them twice."""
    out = tmp_path / "out"
    first = run_flow(data, out)
    approve(out, first.run_id, "park")
    released = out / "outbox" / PROGRAM / first.run_id
    shutil.rmtree(released)  # sent
    planted = out / "outbox" / PROGRAM / f".{first.run_id}.partial"
    shutil.copytree(out / "payments" / PROGRAM / first.run_id, planted)
    run_flow(data, out, trigger="rerun", reason="the next month")  # any ledger event
    assert not released.exists(), "run released a second time: its files are back in the outbox"


def test_a_partial_release_edited_after_the_approval_is_not_released_unchecked(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the approval is recorded, before the rename: the partial folder waits for
    `settle`. A file edited in it meanwhile is renamed into the outbox without its SHA-256
    being checked against the run record."""
    out = tmp_path / "out"
    first = run_flow(data, out)

    class Crash(RuntimeError):
        pass

    def dying(*_: object) -> None:
        raise Crash("killed before the rename")

    with monkeypatch.context() as mp:
        mp.setattr("flows.run.outbox.finish", dying)
        with pytest.raises(Crash):
            approve(out, first.run_id, "park")
    partial = out / "outbox" / PROGRAM / f".{first.run_id}.partial"
    credit = next(partial.glob("*.csv"))
    sealed = hashlib.sha256(credit.read_bytes()).hexdigest()
    credit.write_text(credit.read_text(encoding="utf-8").replace(",100000,", ",1000000,", 1))
    assert hashlib.sha256(credit.read_bytes()).hexdigest() != sealed
    run_flow(data, out, trigger="rerun", reason="the next event settles the release")
    sent = out / "outbox" / PROGRAM / first.run_id / credit.name
    assert not sent.exists() or hashlib.sha256(sent.read_bytes()).hexdigest() == sealed, (
        "an edited payment file was released to the outbox"
    )


def test_a_stray_partial_next_to_a_released_folder_does_not_stop_every_ledger_event(
    data: Path, tmp_path: Path
) -> None:
    """`.R.partial` beside an unsent `R/`: os.replace onto a non-empty folder raises, inside
    open_chain, so every later run, approval and import of the program fails."""
    out = tmp_path / "out"
    first = run_flow(data, out)
    approve(out, first.run_id, "park")
    planted = out / "outbox" / PROGRAM / f".{first.run_id}.partial"
    shutil.copytree(out / "payments" / PROGRAM / first.run_id, planted)
    again = run_flow(data, out, trigger="rerun", reason="the next month")
    assert again.status == "committed"


def test_verify_names_a_partial_folder_of_a_run_that_was_released(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    approve(out, first.run_id, "park")
    shutil.rmtree(out / "outbox" / PROGRAM / first.run_id)
    shutil.copytree(
        out / "payments" / PROGRAM / first.run_id,
        out / "outbox" / PROGRAM / f".{first.run_id}.partial",
    )
    problems, _ = verify_trail(out)
    assert any(".partial" in p for p in problems), problems
