"""The scale benchmark's bookkeeping: targets, stage timings, results pairing and the table.

The measurements themselves are the benchmark's (docs/performance.md); nothing here is timed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.floor import input_files
from bench.plot import plot, series
from bench.scale import (
    Amdahl,
    default_run_month,
    log_phases,
    markdown_table,
    ratio_target,
    read_results,
    run_measured,
    scaling_table,
    scalings,
    stage_seconds,
    summarise,
    task_base_name,
)


def record(kind: str, bench_id: str, when: str, **extra: Any) -> dict[str, Any]:
    base = {
        "bench_id": bench_id,
        "kind": kind,
        "program": "national-relief-2020",
        "residents": 540_000,
        "input_rows": 1_000_000,
        "seconds": 2.0,
        "exit_code": 0,
        "peak_tree_bytes": 1_000_000_000,
        "max_process_bytes": 900_000_000,
        "load_before": [1.0, 1.0, 1.0],
        "load_after": [2.0, 1.0, 1.0],
        "when": when,
    }
    return base | extra


def test_ratio_target_is_tighter_at_paju_size_than_at_national_sizes() -> None:
    assert ratio_target(541_080) == 1.5
    assert ratio_target(5_410_800) == 5.0  # issue 16
    assert ratio_target(52_104_000) == 5.0


def test_default_run_month_is_the_month_the_last_window_closes() -> None:
    ends = [dt.date(2020, 8, 18), dt.date(2020, 6, 30)]
    assert default_run_month(ends) == "2020-08"


def test_task_run_names_lose_only_prefects_three_character_suffix() -> None:
    assert task_base_name("validate-registry-0f3") == "validate-registry"
    assert task_base_name("decide-outcomes") == "decide-outcomes"
    assert task_base_name("bucket-12-a9c") == "bucket-12"


def test_stage_seconds_sum_runs_of_a_task_and_span_first_start_to_last_end() -> None:
    runs = [
        {
            "name": "decide-bucket-aaa",
            "start_time": "2026-11-24T10:00:00+00:00",
            "end_time": "2026-11-24T10:00:04+00:00",
            "total_run_time": 4.0,
        },
        {
            "name": "decide-bucket-bbb",
            "start_time": "2026-11-24T10:00:02+00:00",
            "end_time": "2026-11-24T10:00:09+00:00",
            "total_run_time": 7.0,
        },
        {"name": "read-extracts-ccc", "start_time": None, "end_time": None, "total_run_time": 0},
    ]
    stages = stage_seconds(runs)
    assert stages["decide-bucket"] == {"runs": 2, "seconds": 11.0, "span": 9.0}
    assert stages["read-extracts"] == {"runs": 1, "seconds": 0.0, "span": 0.0}


def test_summary_pairs_floor_and_pipeline_of_one_run_and_keeps_the_latest(tmp_path: Path) -> None:
    results = tmp_path / "scale.jsonl"
    lines = [
        record("floor", "old", "2026-11-24T10:00:00"),
        record("pipeline", "old", "2026-11-24T10:01:00", seconds=30.0),
        record("floor", "new", "2026-11-24T11:00:00", seconds=2.5),
        record("pipeline", "new", "2026-11-24T11:01:00", seconds=3.0),
        record("floor", "unpaired", "2026-11-24T12:00:00"),
    ]
    results.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    (row,) = summarise(read_results(results))
    assert (row.floor_seconds, row.pipeline_seconds) == (2.5, 3.0)
    assert row.ratio == 1.2 and row.ratio_met and row.memory_met
    assert row.rows_per_second == 1_000_000 / 3.0
    assert row.load == "1.0-2.0"


def test_table_says_when_a_target_is_not_met_and_when_the_pipeline_failed() -> None:
    records = [
        record("floor", "a", "2026-11-24T10:00:00"),
        record("pipeline", "a", "2026-11-24T10:01:00", seconds=5.0),
        record("floor", "b", "2026-11-24T10:00:00", residents=52_000_000),
        record("pipeline", "b", "2026-11-24T10:09:00", residents=52_000_000, exit_code=1),
    ]
    table = markdown_table(summarise(records))
    assert "2.50 (≤ 1.5) NOT met" in table
    assert "**failed** (exit 1) after 2.0" in table


def test_a_missing_results_file_has_no_records(tmp_path: Path) -> None:
    assert read_results(tmp_path / "none.jsonl") == []


def test_floor_reads_every_input_kind_that_has_files(tmp_path: Path) -> None:
    for name in ("registry/a.csv", "registry/b.csv", "enrollments/x.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("rrn\n1\n")
    (tmp_path / "welfare").mkdir()
    found = input_files(tmp_path)
    assert list(found) == ["registry", "enrollments"]
    assert [p.name for p in found["registry"]] == ["a.csv", "b.csv"]


def test_table_says_a_run_was_killed_by_a_signal() -> None:
    records = [
        record("floor", "k", "2026-11-24T10:00:00"),
        record("pipeline", "k", "2026-11-24T10:01:00", seconds=9.0, exit_code=-9),
    ]
    assert "**failed** (killed by signal 9) after 9.0" in markdown_table(summarise(records))


def test_plot_draws_each_programs_sizes_in_order_and_writes_a_png(tmp_path: Path) -> None:
    records = [
        record("floor", "big", "2026-11-24T10:00:00", residents=5_400_000, seconds=20.0),
        record("pipeline", "big", "2026-11-24T10:01:00", residents=5_400_000, exit_code=137),
        record("floor", "small", "2026-11-24T11:00:00"),
        record("pipeline", "small", "2026-11-24T11:01:00", seconds=4.0),
    ]
    rows = summarise(records)
    s = series(rows, "national-relief-2020")
    assert s["residents"] == [540_000, 5_400_000]
    assert s["floor_s"] == [2.0, 20.0] and s["failed"] == [0.0, 1.0]
    plot(rows, tmp_path / "scale.png")
    assert (tmp_path / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


LOG = """\
10:00:00.000 | INFO    | Flow run 'a' - Beginning flow run 'a' for flow 'disburse'
10:00:01.000 | INFO    | Flow run 'a' - 252 registry and 8 enrollment files, decided in 4 bucket(s)
10:00:11.500 | INFO    | Task run 'spill-chunk-1ab' - Finished in state Completed()
10:00:21.000 | INFO    | Flow run 'a' - validated 5410800 registry rows
10:00:21.000 | INFO    | Flow run 'a' - validated 2303131 enrollment rows
10:00:31.000 | INFO    | Task run 'shuffle-2bb' - Finished in state Completed()
10:01:31.000 | INFO    | Flow run 'a' - decided 7713931 rows in 4 bucket(s)
10:01:50.000 | INFO    | Flow run 'a' - run x committed: {'PAID': 1}
10:01:51.000 | INFO    | Flow run 'a' - Finished in state Completed()

jiwon national-relief-2020  run x  [committed]
"""


def test_log_phases_time_each_phase_from_the_line_that_ends_it() -> None:
    phases = log_phases(LOG, total_seconds=120.0)
    assert phases["check trail, read ledger and welfare"] == 1.0
    assert phases["validate + spill every file"] == 20.0
    assert phases["duplicates + shuffle into buckets"] == 10.0
    assert phases["decide buckets"] == 60.0
    assert phases["payment files, decisions, reports, commit"] == 19.0
    assert phases["outside flow"] == 9.0  # 120 s in all, the flow ran 111 s


def test_log_phases_leave_out_what_a_failed_run_never_reached() -> None:
    cut = "\n".join(LOG.splitlines()[:5])
    phases = log_phases(cut, total_seconds=40.0)
    assert "decide buckets" not in phases and "outside flow" not in phases
    assert phases["validate + spill every file"] == 20.0


def test_amdahl_fit_passes_through_both_runs_and_projects_more_cores() -> None:
    fit = Amdahl.fit(1, 100.0, 2, 60.0)  # 20 s serial, 80 s that halves with each doubling
    assert (fit.serial, fit.parallel) == (20.0, 80.0)
    assert (fit.seconds(1), fit.seconds(2), fit.seconds(8)) == (100.0, 60.0, 30.0)
    assert fit.cores_for(30.0) == 8
    assert fit.cores_for(20.0) is None  # the serial part alone takes that long


def test_a_run_no_faster_on_more_cores_is_all_serial() -> None:
    fit = Amdahl.fit(1, 50.0, 2, 52.0)
    assert (fit.serial, fit.parallel) == (50.0, 0.0)
    assert fit.cores_for(49.0) is None


def test_a_run_more_than_twice_as_fast_on_two_cores_is_all_parallel_never_negative() -> None:
    fit = Amdahl.fit(1, 100.0, 2, 40.0)  # noise or caches: no serial part below zero
    assert (fit.serial, fit.parallel) == (0.0, 100.0)
    assert fit.seconds(16) == 6.25


def test_a_fit_needs_fewer_cores_first() -> None:
    for a, b in ((2, 2), (2, 1), (0, 2)):
        with pytest.raises(ValueError, match="fit runs on fewer cores"):
            Amdahl.fit(a, 10.0, b, 8.0)


def test_runs_on_fewer_cores_stay_out_of_the_summary_and_pair_up_for_scaling() -> None:
    records = [
        record("floor", "all", "2026-11-24T10:00:00", cpus=2, cores=2, seconds=4.0),
        record("pipeline", "all", "2026-11-24T10:01:00", cpus=2, cores=2, seconds=60.0),
        record("floor", "one", "2026-11-24T11:00:00", cpus=2, cores=1, seconds=6.0),
        record("pipeline", "one", "2026-11-24T11:02:00", cpus=2, cores=1, seconds=100.0),
        record("floor", "old", "2026-11-23T10:00:00", cpus=2),  # before `cores` was recorded
        record("pipeline", "old", "2026-11-23T10:01:00", cpus=2, residents=5_400_000),
    ]
    assert [(r.residents, r.cores) for r in summarise(records)] == [(540_000, 2), (5_400_000, 2)]
    assert [r.pipeline_seconds for r in summarise(records, cores=1)] == [100.0]
    (found,) = scalings(records)
    assert (found.few.cores, found.all.cores) == (1, 2)
    assert found.floor.seconds(2) == 4.0 and found.pipeline.seconds(1) == 100.0
    assert found.ratio(8) == 12.0  # (20 + 80/8) / (2 + 4/8)
    table = scaling_table([found])
    assert "| 1: 100.0 / 6.0; 2: 60.0 / 4.0 | 1: ? / ?; 2: ? / ? | 20.0 + 80.0 |" in table
    assert "none (≤ 1.5×)" in table  # the floor gains from cores as much: no count reaches 1.5×


def national_pair(commit_two: str = "abc1234") -> list[dict[str, Any]]:
    """A 52-million run on one core and on two: pipeline 900 / 600 s, floor 80 / 40 s."""
    big = {"cpus": 2, "residents": 52_000_000}
    return [
        record("floor", "two", "2026-11-24T10:00:00", cores=2, seconds=40.0, commit=commit_two)
        | big,
        record("pipeline", "two", "2026-11-24T10:10:00", cores=2, seconds=600.0, commit=commit_two)
        | big,
        record("floor", "one", "2026-11-24T11:00:00", cores=1, seconds=80.0, commit="abc1234")
        | big,
        record("pipeline", "one", "2026-11-24T11:20:00", cores=1, seconds=900.0, commit="abc1234")
        | big,
    ]


def test_scaling_says_how_many_cores_reach_the_national_wall_and_ratio_targets() -> None:
    (found,) = scalings(national_pair())
    # pipeline 300 + 600/n, floor 0 + 80/n: 300 s is never reached, 5x the floor at n = 1 already
    # fails (900 / 80) and the ratio grows with n; a 7x target would be met on no count either
    assert (found.pipeline.serial, found.pipeline.parallel) == (300.0, 600.0)
    assert found.pipeline.cores_for(300.0) is None and found.pipeline.cores_for(400.0) == 6
    assert found.cores_for_ratio(5.0) is None
    assert found.cores_for_ratio(12.0) == 1  # 900 / 80 = 11.25
    row = scaling_table([found]).splitlines()[-1]
    assert row.endswith("| none (≤ 5.0×) | none |")


def test_scaling_fits_each_prefect_stage_and_the_rest_of_the_run() -> None:
    records = national_pair()
    for r, spans in zip(records[1::2], ((200.0, 300.0), (300.0, 500.0)), strict=True):
        r["stages"] = {
            "spill-chunk": {"runs": 3, "seconds": 1.0, "span": spans[0]},
            "decide-bucket": {"runs": 5, "seconds": 1.0, "span": spans[1]},
        }
    (found,) = scalings(records)
    fits = found.stages()
    assert (fits["spill-chunk"].serial, fits["spill-chunk"].parallel) == (100.0, 200.0)
    assert (fits["decide-bucket"].serial, fits["decide-bucket"].parallel) == (100.0, 400.0)
    assert (fits["rest"].serial, fits["rest"].parallel) == (100.0, 0.0)  # 100 s both times
    assert "| spill-chunk | decide-bucket | rest |" in scaling_table([found])
    assert "| 100.0 + 200.0 | 100.0 + 400.0 | 100.0 + 0.0 |" in scaling_table([found])


def test_a_measured_child_runs_on_the_cores_it_was_allowed(tmp_path: Path) -> None:
    probe = "import os; print(len(os.sched_getaffinity(0)), os.environ.get('POLARS_MAX_THREADS'))"
    command = [sys.executable, "-c", probe]
    env = {k: v for k, v in os.environ.items() if k != "POLARS_MAX_THREADS"}
    pinned = run_measured(command, env, tmp_path / "one.log", cores=1)
    assert pinned.output == "1 1" and pinned.cpu_seconds > 0
    free = run_measured(command, env, tmp_path / "all.log")
    assert free.output == f"{len(os.sched_getaffinity(0))} None"


def test_runs_of_two_commits_are_not_fitted_together() -> None:
    assert scalings(national_pair(commit_two="def5678")) == []
