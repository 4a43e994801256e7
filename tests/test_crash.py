"""A run that dies after any stage or at any publish step leaves a whole run or nothing visible,
and the next run pays exactly what is still owed (issue 5: commit protocol)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import flows.run.publish
from flows.run import paths as layout
from tests.support.exactly_once import PROGRAM, assert_exactly_once, committed_payments
from tests.support.flowrun import run_flow, runs

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend", "pii_key")]


class Crash(BaseException):
    """Stands in for the process dying: nothing in the flow catches it or cleans up after it."""


# The publish steps: decisions, quarantine, report, a key rotation's map, a results import's
# lines and a review import's decisions (none in a run), run record (the commit point), payments.
UNITS = [
    "decisions",
    "quarantine",
    "report",
    "rotation map",
    "results",
    "reviews",
    "run record",
    "payments",
]


def crash_before_move(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Die just before publish moves unit number `step` (0-based) into place."""
    original = flows.run.publish.move_unit
    calls = {"n": 0}

    def dying(staging_root: Path, out: Path, unit: Path) -> None:
        if calls["n"] == step:
            raise Crash(f"killed before publishing {UNITS[step]}")
        calls["n"] += 1
        original(staging_root, out, unit)

    monkeypatch.setattr(flows.run.publish, "move_unit", dying)


@pytest.fixture
def armed() -> Iterator[pytest.MonkeyPatch]:
    """A monkeypatch of its own for the injected crash, undone apart from the test's settings."""
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """Who a single uninterrupted run on the story delivery pays, and how much."""
    from tests.conftest import STORY, TEST_KEY

    mp = pytest.MonkeyPatch()
    mp.setenv("JIWON_PII_KEY", TEST_KEY)
    try:
        out = tmp_path_factory.mktemp("clean") / "out"
        run_flow(STORY, out)
        return committed_payments(out)
    finally:
        mp.undo()


def publish_step(i: int, unit: str, partitions: int | None) -> Any:
    """One publish step of one path; the default suite runs a few, --runslow all of them."""
    fast = (
        unit == "payments"
        if partitions
        else unit not in ("quarantine", "report", "rotation map", "results", "reviews")
    )
    name = f"before {unit}" + (f", {partitions} buckets" if partitions else "")
    return pytest.param(i, partitions, id=name, marks=() if fast else pytest.mark.slow)


@pytest.mark.parametrize(
    ("step", "partitions"),
    [publish_step(i, u, p) for p in (None, 3) for i, u in enumerate(UNITS)],
)
def test_a_run_killed_at_any_publish_step_is_whole_or_absent_after_recovery(
    step: int,
    partitions: int | None,
    story: Path,
    tmp_path: Path,
    armed: pytest.MonkeyPatch,
    clean: pl.DataFrame,
) -> None:
    out = tmp_path / "out"
    crash_before_move(armed, step)
    with pytest.raises(Crash):
        run_flow(story, out, partitions=partitions)
    armed.undo()
    committed_before_crash = step > UNITS.index("run record")
    assert (out / "audit/runs").exists() == committed_before_crash
    follow_up = run_flow(
        story, out, partitions=partitions, trigger="rerun", reason="the previous run was killed"
    )
    statuses = runs(out)["status"].to_list()
    assert statuses == ["committed", "committed"] if committed_before_crash else ["committed"]
    assert follow_up.total_paid_krw == (0 if committed_before_crash else 31_400_000)
    assert_exactly_once(out, clean)


def test_a_crash_during_recovery_is_itself_recovered_by_the_run_after(
    story: Path, tmp_path: Path, armed: pytest.MonkeyPatch, clean: pl.DataFrame
) -> None:
    out = tmp_path / "out"
    crash_before_move(armed, UNITS.index("payments"))  # committed, payments not released
    with pytest.raises(Crash):
        run_flow(story, out)
    armed.undo()
    assert not (out / "payments").exists()
    crash_before_move(armed, 0)  # the next run dies while releasing those payments
    with pytest.raises(Crash):
        run_flow(story, out)
    armed.undo()
    run_flow(story, out, trigger="rerun", reason="two runs were killed")
    assert_exactly_once(out, clean)


def test_half_created_or_half_deleted_staging_folders_do_not_confuse_the_next_run(
    story: Path, tmp_path: Path, clean: pl.DataFrame
) -> None:
    out = tmp_path / "out"
    staging = out / ".staging"
    fresh = staging / f"20250301T000000Z-deadbeef{flows.run.publish.PENDING}"
    fresh.mkdir(parents=True)
    (fresh / flows.run.publish.MARKER).write_text('{"program": "paju-livelihood-2025", "run_mo')
    old = staging / f"20250201T000000Z-0badf00d{flows.run.publish.PENDING}"
    old.mkdir()
    os.utime(old, (0, 0))
    half_deleted = staging / f"20250101T000000Z-feedface{flows.run.publish.DONE}"
    (half_deleted / "reports").mkdir(parents=True)
    run_flow(story, out)
    # A fresh unreadable one may be a run being created right now; nothing was published from it.
    assert [p.name for p in staging.iterdir()] == [fresh.name]
    fresh.rename(tmp_path / "junk")
    assert_exactly_once(out, clean)
    assert (out / layout.run_record_file(PROGRAM, runs(out)["run_id"][0])).exists()


# Every step of the one orchestration, in order, for both stores (one bucket in memory, three
# on disk): the run dies right after the step, including those inside the runner's mapped tasks
# (the validation of a chunk of files, the decision of one bucket). A RuntimeError stands in for
# the death: Prefect's task threads would not pass a BaseException through unchanged, and the
# flow catches neither (only a refusal it explains writes a run record).
STAGES = [
    ("flows.run.flow", "recover"),
    ("flows.run.flow", "read_ledger"),
    ("flows.run.flow", "list_delivery"),  # (no read-welfare task: the story needs no extract)
    ("flows.run.steps", "keep_run_inputs"),
    ("flows.run.prefetch", "read_file"),  # as the spill reads a file (nothing read early here)
    ("flows.checks.validate", "validate_registry"),
    ("flows.checks.validate", "validate_enrollments"),
    ("flows.run.steps", "check_snapshot"),
    ("flows.run.steps", "check_rate"),
    ("flows.run.steps", "keep_registry_schema"),
    ("flows.run.flow", "shuffle_buckets"),
    ("flows.run.steps", "decide"),
    ("flows.run.flow", "combine"),  # the buckets' tallies added up
    ("flows.run.flow", "check_budget"),
    ("flows.run.steps", "render_payments"),
    ("flows.run.flow", "settle"),
    ("flows.run.steps", "write_decisions"),
    ("flows.run.flow", "stage_quarantine"),
    ("flows.run.flow", "stage_report_html"),
    ("flows.run.flow", "commit"),
    ("flows.run.flow", "publish_artifacts"),
]
IN_DEFAULT_SUITE = {("decide", None), ("decide", 3), ("commit", 3), ("write_decisions", None)}


@pytest.mark.parametrize(
    ("owner", "stage", "partitions"),
    [
        pytest.param(
            o,
            s,
            p,
            id=f"{s}-{'memory' if p is None else 'disk'}",
            marks=() if (s, p) in IN_DEFAULT_SUITE else pytest.mark.slow,
        )
        for p in (None, 3)
        for o, s in STAGES
    ],
)
def test_a_run_killed_after_any_step_is_finished_by_the_next_paying_each_person_once(
    owner: str,
    stage: str,
    partitions: int | None,
    story: Path,
    tmp_path: Path,
    armed: pytest.MonkeyPatch,
    clean: pl.DataFrame,
) -> None:
    import importlib

    out = tmp_path / "out"
    module = importlib.import_module(owner)
    original: Callable[..., Any] = getattr(module, stage)

    def dying(*args: Any, **kwargs: Any) -> Any:
        original(*args, **kwargs)
        raise RuntimeError(f"killed after {stage}")

    armed.setattr(module, stage, dying)
    with pytest.raises(RuntimeError, match="killed after"):
        run_flow(story, out, partitions=partitions)
    armed.undo()
    follow_up = run_flow(
        story, out, partitions=partitions, trigger="rerun", reason="the previous run was killed"
    )
    assert follow_up.status == "committed"
    assert_exactly_once(out, clean)
