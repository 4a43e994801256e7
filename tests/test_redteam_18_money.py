"""Red team (issue 18): budget and exactly-once across pending, voided and released runs;
an approval event deleted from the trail."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from flows.audit.verify import verify_trail
from flows.errors import RunHalted
from flows.inputs.ledger import read_ledger
from flows.run.approve import ApproveParams, approve_release
from rules.program import PROGRAMS_DIR
from tests.support.flowrun import decisions, run_flow

PROGRAM = "paju-livelihood-2025"


@pytest.fixture
def data(story: Path, pii_key: str) -> Path:
    return story


def approve(
    out: Path, run_id: str, who: str, programs: Path | None = None, **more: object
) -> object:
    return approve_release(
        ApproveParams.model_validate(
            {"program": PROGRAM, "out": out, "run_id": run_id, "approver": who}
            | {"programs_dir": programs}
            | more
        )
    )


def budget_programs(tmp_path: Path, budget: int) -> Path:
    folder = tmp_path / "programs"
    shutil.copytree(PROGRAMS_DIR, folder)
    path = folder / PROGRAM / "program.yaml"
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    body["budget_krw"] = budget
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    return folder


def test_voided_money_frees_the_budget_and_interleaved_runs_pay_once(
    data: Path, tmp_path: Path
) -> None:
    probe = run_flow(data, tmp_path / "probe")
    programs = budget_programs(tmp_path, probe.total_paid_krw)
    out = tmp_path / "out"
    first = run_flow(data, out, programs_dir=programs)
    assert read_ledger(out, PROGRAM).paid_total_krw == first.total_paid_krw  # pending counts
    second = run_flow(data, out, programs_dir=programs, trigger="rerun", reason="while pending")
    assert second.total_paid_krw == 0
    approve(out, first.run_id, "park", programs, reject=True, reason="wrong file")
    assert read_ledger(out, PROGRAM).paid_total_krw == 0
    third = run_flow(data, out, programs_dir=programs, trigger="rerun", reason="after void")
    assert third.status == "committed" and third.total_paid_krw == first.total_paid_krw
    fourth = run_flow(data, out, programs_dir=programs, trigger="rerun", reason="again")
    assert fourth.total_paid_krw == 0
    approve(out, third.run_id, "lee", programs)
    fifth = run_flow(data, out, programs_dir=programs, trigger="rerun", reason="released")
    assert fifth.total_paid_krw == 0
    paid = decisions(out).filter(pl.col("outcome") == "PAID", pl.col("source_kind") == "enrollment")
    per_payment = paid.group_by("payment_id").len()
    assert per_payment["len"].max() == 2  # the voided attempt and its one re-issue
    assert verify_trail(out)[0] == []


def test_the_approval_record_deleted_after_release_is_noticed(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    done = approve(out, first.run_id, "park")
    record = next((out / "audit/runs").rglob(f"run_id={done.event_id}.parquet"))  # type: ignore[attr-defined]
    record.unlink()
    problems, _ = verify_trail(out)
    assert problems, "an approval removed from the head of the chain goes unnoticed"
    with pytest.raises(RunHalted):
        run_flow(data, out, trigger="rerun", reason="after the deletion")
