"""Run the real `disburse` flow in tests and read back what it published."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import polars as pl

from flows.run.flow import DisburseParams, RunSummary, disburse

TICKS = itertools.count()
# A run month in which each shipped program's windows have closed.
RUN_MONTH = {
    "paju-livelihood-2025": "2025-03",
    "paju-energy-2023": "2023-04",
    "national-relief-2020": "2020-08",
    "consumption-coupon-2025": "2025-09",
    "paju-birth-2025": "2025-07",
}


def run_flow(data: Path, out: Path, **overrides: Any) -> RunSummary:
    """Run the flow on `data/registry` and `data/enrollments` into `out`."""
    params = {
        "program": "paju-livelihood-2025",
        "registry": data / "registry",
        "enrollments": data / "enrollments",
        "out": out,
        "operator": "test",
        "run_month": "2025-03",
    } | overrides
    return disburse(DisburseParams.model_validate(params))


def run_in_month(
    monkeypatch: Any, data: Path, out: Path, month: str, **overrides: Any
) -> RunSummary:
    """Run the flow for `month` with the clock set inside it (the 15th, 10:00 in Seoul).

    A later instalment counts from the month its run committed in, so a simulation of past
    months sets the clock as well as `run_month` (pass pytest's `monkeypatch`).
    """
    moment = dt.datetime.fromisoformat(f"{month}-15T01:00:00+00:00")
    # A second later at every reading (across calls): runs of one month stay in order.
    monkeypatch.setattr("flows.run.flow.now", lambda: moment + dt.timedelta(seconds=next(TICKS)))
    return run_flow(data, out, run_month=month, **overrides)


def decisions(out: Path, run_id: str | None = None) -> pl.DataFrame:
    """Return the published decision records (of one run, or all)."""
    frame = pl.read_parquet(out / "audit/decisions/**/*.parquet", hive_partitioning=True)
    return frame if run_id is None else frame.filter(pl.col("run_id") == run_id)


def runs(out: Path) -> pl.DataFrame:
    """Return every run record, oldest first."""
    return pl.read_parquet(out / "audit/runs/**/*.parquet").sort("finished_at")
