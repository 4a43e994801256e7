"""Four-eyes release (issue 18): nothing leaves for the bank or card operator without an approval
the trail records, by someone who is not the run's operator; a rejection voids the run's attempts
and a later run pays them; a crash at any moment of an approval leaves it done or not done.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from flows.audit import release
from flows.audit.verify import verify_trail
from flows.errors import InputRejected, LedgerUntrusted, RunHalted
from flows.inputs.ledger import payment_states, read_ledger, run_records
from flows.run.approve import ApproveParams, approve_release
from flows.run.results import ImportParams, import_results, reconciliation
from rules.program import PROGRAMS_DIR
from tests.support.flowrun import decisions, run_flow
from tests.test_cli import jiwon, last_line

PROGRAM = "paju-livelihood-2025"


@pytest.fixture
def data(story: Path, pii_key: str) -> Path:
    return story


def approve(out: Path, run_id: str, approver: str, **more: object) -> object:
    return approve_release(
        ApproveParams.model_validate(
            {"program": PROGRAM, "out": out, "run_id": run_id, "approver": approver} | more
        )
    )


def state_of(out: Path, run_id: str, programs_dir: Path | None = None) -> release.Release:
    return release.walk(run_records(out.resolve(), PROGRAM))[run_id]


def outbox_files(out: Path, run_id: str) -> dict[str, str]:
    folder = out / "outbox" / PROGRAM / run_id
    if not folder.is_dir():
        return {}
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())}


def payment_files(out: Path, run_id: str) -> dict[str, str]:
    folder = out / "payments" / PROGRAM / run_id
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())}


def events(out: Path) -> int:
    return len(list((out / "audit/runs").rglob("*.parquet")))


def two_approver_programs(tmp_path: Path, above: int = 0) -> Path:
    """A copy of the programs folder whose livelihood program needs two approvers above `above`."""
    folder = tmp_path / "programs"
    shutil.copytree(PROGRAMS_DIR, folder)
    path = folder / PROGRAM / "program.yaml"
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    body["approval"] = {"two_approvers_above_krw": above}
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    return folder


def test_a_committed_run_waits_pending_and_nothing_reaches_the_outbox(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    assert first.status == "committed" and first.total_paid_krw > 0
    assert not (out / "outbox").exists()
    assert state_of(out, first.run_id).release == release.PENDING
    current = payment_states(out, PROGRAM)
    assert set(current["state"]) == {"ISSUED"}
    # a result for a pending run's payment is refused: it was never sent
    credit = next((out / "payments" / PROGRAM / first.run_id).glob("*.csv"))
    line = pl.read_csv(credit, infer_schema=False).row(0, named=True)
    result = tmp_path / "r.csv"
    result.write_text(
        "payment_id,attempt,card_id,amount,status,reason_code,processed_at\n"
        f"{line['payment_id']},1,{line['card_id']},{line['amount']},CREDITED,,"
        "2025-03-20T10:00:00+09:00\n",
        encoding="utf-8",
    )
    with pytest.raises(InputRejected, match="not released yet"):
        import_results(ImportParams(program=PROGRAM, out=out, files=[result]))
    code, printed, _ = jiwon("approve", "--program", PROGRAM, "--out", out)
    assert code == 0 and f"{first.run_id}" in printed and "pending (0 of 1" in printed
    # pending money is in flight: the next run pays nobody twice
    again = run_flow(data, out, trigger="rerun", reason="the files were not sent yet")
    assert again.total_paid_krw == 0
    assert read_ledger(out, PROGRAM).paid_total_krw == first.total_paid_krw


def test_approval_by_another_person_releases_exactly_the_sealed_files(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    code, printed, err = jiwon(
        "approve", "--program", PROGRAM, "--out", out, "--run-id", first.run_id,
        "--approver", "park",
    )  # fmt: skip
    assert code == 0, err
    assert "released to the outbox by park" in printed
    assert outbox_files(out, first.run_id) == payment_files(out, first.run_id)
    assert state_of(out, first.run_id).release == release.RELEASED
    assert set(payment_states(out, PROGRAM)["state"]) == {"RELEASED"}
    status = reconciliation(out, PROGRAM)
    assert status.by_run["release"].to_list() == ["released"]
    problems, _ = verify_trail(out)
    assert problems == []


def test_the_runs_operator_may_not_approve_it(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out, operator="kim")
    before = events(out)
    code, _, err = jiwon(
        "approve", "--program", PROGRAM, "--out", out, "--run-id", first.run_id,
        "--approver", " KIM ",
    )  # fmt: skip
    assert code == 4
    assert last_line(err).startswith("approval refused: KIM started run")
    assert "four eyes" in last_line(err)
    assert events(out) == before and not (out / "outbox").exists()


def test_one_person_cannot_approve_twice_to_reach_two_approvals(data: Path, tmp_path: Path) -> None:
    programs = two_approver_programs(tmp_path)
    out = tmp_path / "out"
    first = run_flow(data, out, programs_dir=programs)
    assert state_of(out, first.run_id).needed == 2
    one = approve(out, first.run_id, "park", programs_dir=programs)
    assert one.release == release.PENDING and not outbox_files(out, first.run_id)  # type: ignore[attr-defined]
    before = events(out)
    with pytest.raises(RunHalted, match="Park already approved run"):
        approve(out, first.run_id, "Park", programs_dir=programs)
    assert events(out) == before and not outbox_files(out, first.run_id)
    two = approve(out, first.run_id, "lee", programs_dir=programs)
    assert two.release == release.RELEASED  # type: ignore[attr-defined]
    assert state_of(out, first.run_id).approvers == ["park", "lee"]
    assert outbox_files(out, first.run_id) == payment_files(out, first.run_id)


def test_a_run_at_or_below_the_limit_needs_one_approver(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    probe = run_flow(data, tmp_path / "probe")
    programs = two_approver_programs(tmp_path, above=probe.total_paid_krw)
    first = run_flow(data, out, programs_dir=programs)
    assert first.total_paid_krw == probe.total_paid_krw
    assert state_of(out, first.run_id).needed == 1


def test_approving_a_released_or_voided_run_is_refused(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    approve(out, first.run_id, "park")
    with pytest.raises(RunHalted, match="is already released"):
        approve(out, first.run_id, "lee")
    with pytest.raises(RunHalted, match="is already released"):
        approve(out, first.run_id, "lee", reject=True, reason="too late")
    other = tmp_path / "other"
    second = run_flow(data, other)
    approve(other, second.run_id, "park", reject=True, reason="wrong month")
    code, _, err = jiwon(
        "approve", "--program", PROGRAM, "--out", other, "--run-id", second.run_id,
        "--approver", "lee",
    )  # fmt: skip
    assert code == 4 and "is voided (rejected by park: wrong month)" in last_line(err)


def test_a_rejection_needs_a_reason_and_an_unknown_run_is_bad_usage(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    code, _, err = jiwon(
        "approve", "--program", PROGRAM, "--out", out, "--run-id", first.run_id,
        "--approver", "park", "--reject",
    )  # fmt: skip
    assert code == 2 and "a rejection needs --reason" in last_line(err)
    code, _, err = jiwon(
        "approve", "--program", PROGRAM, "--out", out, "--run-id", "20990101T000000Z-00000000",
        "--approver", "park",
    )  # fmt: skip
    assert code == 2 and "has no run 20990101T000000Z-00000000" in last_line(err)
    assert state_of(out, first.run_id).release == release.PENDING


def test_rejecting_voids_every_attempt_and_the_next_run_pays_them_once_more(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    done = approve(out, first.run_id, "park", reject=True, reason="wrong card file")
    assert done.release == release.VOIDED  # type: ignore[attr-defined]
    assert not (out / "outbox").exists()
    current = payment_states(out, PROGRAM)
    assert set(current["state"]) == {"VOIDED"}
    assert read_ledger(out, PROGRAM).paid_total_krw == 0
    status = reconciliation(out, PROGRAM)
    assert status.by_program["voided_krw"][0] == first.total_paid_krw
    assert status.owed_again == current.height
    again = run_flow(data, out, trigger="rerun", reason="pay what the rejected run would have")
    assert again.total_paid_krw == first.total_paid_krw
    paid = decisions(out).filter(
        (pl.col("source_kind") == "enrollment") & (pl.col("outcome") == "PAID")
    )
    second = paid.filter(pl.col("run_id") == again.run_id)
    firsts = paid.filter(pl.col("run_id") == first.run_id)
    # the same payments, the next attempt, the same amounts
    assert sorted(second["payment_id"]) == sorted(firsts["payment_id"])
    assert set(second["attempt"]) == {2}
    assert second.sort("payment_id")["amount_krw"].to_list() == (
        firsts.sort("payment_id")["amount_krw"].to_list()
    )
    approve(out, again.run_id, "lee")
    assert outbox_files(out, again.run_id) == payment_files(out, again.run_id)
    third = run_flow(data, out, trigger="rerun", reason="nothing is owed any more")
    assert third.total_paid_krw == 0
    assert verify_trail(out)[0] == []


def test_a_payment_file_edited_while_pending_is_never_released(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    credit = next((out / "payments" / PROGRAM / first.run_id).glob("*.csv"))
    credit.write_text(credit.read_text(encoding="utf-8").replace(",100000,", ",1000000,", 1))
    before = events(out)
    with pytest.raises(LedgerUntrusted, match="differs from its run record"):
        approve(out, first.run_id, "park")
    assert events(out) == before
    assert not outbox_files(out, first.run_id)
    assert not list((out / "outbox" / PROGRAM).glob(".*.partial"))  # no partial release left


def test_files_put_in_the_outbox_by_hand_are_named_by_verify(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    planted = out / "outbox" / PROGRAM / first.run_id
    shutil.copytree(out / "payments" / PROGRAM / first.run_id, planted)
    problems, _ = verify_trail(out)
    assert any("released without an approval the trail records" in p for p in problems)
    with pytest.raises(RunHalted, match="already exists but run"):
        approve(out, first.run_id, "park")
    shutil.rmtree(planted)
    approve(out, first.run_id, "park")
    (planted / "extra.csv").write_text("payment_id\nX\n", encoding="utf-8")
    problems, _ = verify_trail(out)
    assert any("extra.csv: not a payment file its run record sealed" in p for p in problems)


class Crash(RuntimeError):
    """The process dies here: nothing after this point runs, nothing is cleaned up."""


def crash_after(monkeypatch: pytest.MonkeyPatch, target: str, calls: int = 0) -> None:
    """Make `target` (module:attribute) run `calls` times, then crash before its next call."""
    import importlib

    module, path = target.split(":")
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    real = getattr(owner, name)
    seen = {"n": 0}

    def dying(*args: object, **kwargs: object) -> object:
        if seen["n"] >= calls:
            raise Crash(f"killed before {target}")
        seen["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, dying)


@pytest.mark.parametrize(
    ("target", "calls", "done"),
    [
        ("flows.run.outbox:shutil.copy2", 1, False),  # while copying the files
        ("flows.run.approve:commit", 0, False),  # built, the approval not recorded
        ("flows.run.publish:move_unit", 0, False),  # publishing the approval's record
        ("flows.run.flow:write_anchor", 1, True),  # recorded, the anchor still says pending
        ("flows.run.outbox:finish", 0, True),  # recorded, not renamed into place
    ],
)
def test_an_approval_killed_at_any_moment_is_done_or_not_done(
    data: Path, tmp_path: Path, target: str, calls: int, done: bool
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    with pytest.MonkeyPatch.context() as mp:
        crash_after(mp, target, calls)
        with pytest.raises(Crash):
            approve(out, first.run_id, "park")
    # The next ledger event (here the same approval, again) finishes or undoes it first.
    if done:
        with pytest.raises(RunHalted, match="is already released"):
            approve(out, first.run_id, "park")
    else:
        assert not outbox_files(out, first.run_id)
        approve(out, first.run_id, "park")
    assert state_of(out, first.run_id).approvers == ["park"]
    assert outbox_files(out, first.run_id) == payment_files(out, first.run_id)
    assert not list((out / "outbox" / PROGRAM).glob(".*.partial"))
    assert verify_trail(out)[0] == []


def test_files_sent_and_removed_from_the_outbox_are_never_released_again(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    approve(out, first.run_id, "park")
    shutil.rmtree(out / "outbox" / PROGRAM / first.run_id)  # the sender took them
    again = run_flow(data, out, trigger="rerun", reason="a later month")
    assert again.total_paid_krw == 0
    with pytest.raises(RunHalted, match="is already released"):
        approve(out, first.run_id, "lee")
    assert not (out / "outbox" / PROGRAM / first.run_id).exists()
    assert verify_trail(out)[0] == []


def test_an_approval_of_the_operators_own_run_forged_into_the_trail_is_named_by_verify() -> None:
    import json

    runs = pl.DataFrame(
        {
            "run_id": ["r1", "a1"],
            "trigger": ["schedule", "approval"],
            "status": ["committed", "committed"],
            "dry_run": [False, False],
            "operator": ["kim", "Kim"],
            "reason": [None, None],
            "total_paid_krw": [100_000, 0],
            "finished_at": [None, None],
            "parameters": [
                json.dumps({"program": {"approval": {"two_approvers_above_krw": None}}}),
                json.dumps({"approval": {"run_id": "r1", "decision": "approve"}}),
            ],
        }
    )
    assert release.walk(runs)["r1"].release == release.PENDING
    assert release.problems(runs) == ["approval a1 of run r1: approver Kim is the run's operator"]


def test_two_approvers_deciding_at_once_release_the_run_once(
    data: Path, tmp_path: Path, prefect_backend: None
) -> None:
    """Two `jiwon approve` processes on a run that needs one approval: the program's lock
    orders them, one releases it and the other is refused (exit 4), one event in the trail."""
    from tests.conftest import TEST_KEY
    from tests.support.processes import JIWON, env, finish, start

    out = tmp_path / "out"
    first = run_flow(data, out)
    base = [str(JIWON), "approve", "--program", PROGRAM, "--out", str(out)]
    both = [
        start([*base, "--run-id", first.run_id, "--approver", who], env(TEST_KEY, tmp_path))
        for who in ("park", "lee")
    ]
    results = [finish(p) for p in both]
    assert sorted(code for code, _, _ in results) == [0, 4], results
    refused = next(err for code, _, err in results if code == 4)
    assert "is already released" in refused or "holds program" in refused
    approvals = run_records(out.resolve(), PROGRAM).filter(pl.col("trigger") == "approval")
    assert approvals.height == 1
    assert outbox_files(out, first.run_id) == payment_files(out, first.run_id)
