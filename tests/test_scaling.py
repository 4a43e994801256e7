"""A partitioned run on two Dask worker processes publishes what a single-frame run publishes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.runners import flow_api_url, local_cluster_kwargs
from tests.flowrun import run_flow
from tests.scaling import (
    FIRST_FILE,
    decision_rows,
    delivery,
    differing,
    manifest_totals,
    payment_lines,
)

PROGRAMS = [("national-relief-2020", "2020-08"), ("paju-livelihood-2025", "2025-03")]


def test_the_run_comparison_names_the_input_row_and_column_that_differ() -> None:
    rows = {"source_kind": ["registry"] * 2, "source_file": ["a.csv"] * 2, "source_row": [1, 2]}
    left = pl.DataFrame(rows | {"outcome": ["PAID", "INELIGIBLE"], "amount_krw": [100, 0]})
    right = left.with_columns(outcome=pl.Series(["PAID", "PAID"]))
    assert differing(left, left) == {}
    found = differing(left, right)
    assert list(found) == ["outcome"]
    assert found["outcome"].rows() == [("registry", "a.csv", 2, "INELIGIBLE", "PAID")]


@pytest.fixture(scope="module")
def dask_cluster(prefect_backend: None) -> Iterator[Any]:
    """A local Dask cluster of two worker processes that the runs reach by its address."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(**local_cluster_kwargs(2, flow_api_url())) as cluster,
        Client(cluster) as client,
    ):
        yield client


def verified(out: Path) -> bool:
    """Return whether `jiwon audit verify` finds the trail intact (exit 0)."""
    result = CliRunner().invoke(app, ["audit", "verify", "--out", str(out)])
    return result.exit_code == 0


@pytest.mark.slow  # two runs per program and a two-process Dask cluster: about a minute
@pytest.mark.flow
@pytest.mark.parametrize(("program", "run_month"), PROGRAMS)
def test_a_run_partitioned_over_two_dask_workers_publishes_what_a_single_frame_run_does(
    program: str, run_month: str, tmp_path: Path, pii_key: str, dask_cluster: Any
) -> None:
    from distributed import get_task_stream

    data = delivery(program, tmp_path / "data", rows=3000, seed=7)
    single, split = tmp_path / "single", tmp_path / "split"
    one = run_flow(data, single, program=program, run_month=run_month)
    with get_task_stream(dask_cluster) as stream:
        many = run_flow(
            data,
            split,
            program=program,
            run_month=run_month,
            partitions=4,
            runner="dask",
            dask_address=dask_cluster.scheduler.address,
        )

    assert (one.status, many.status) == ("committed", "committed")
    left, right = decision_rows(single), decision_rows(split)
    assert left.height == right.height
    assert differing(left, right) == {}
    assert left.equals(right)
    assert (one.counts, one.total_paid_krw) == (many.counts, many.total_paid_krw)
    assert manifest_totals(single) == manifest_totals(split)
    assert payment_lines(single, one.run_id) == payment_lines(split, many.run_id)
    assert verified(single) and verified(split)

    # The data holds what partitioning must get right: duplicates across files, households.
    registry = left.filter(pl.col("source_kind") == "registry")
    assert registry.filter(pl.col("outcome") == "DUPLICATE_RECORD")["source_file"].n_unique() > 1
    assert registry.filter(pl.col("source_file") == FIRST_FILE)["outcome"].is_in(["PAID"]).any()
    warnings = set(registry["warning_codes"].explode().drop_nulls())
    assert {"HOUSEHOLD_NO_HEAD", "HOUSEHOLD_MULTIPLE_HEADS"} <= warnings

    # Buckets were decided by two distinct worker processes, neither of them this one.
    workers = {task["worker"] for task in stream.data}
    pids = dask_cluster.run(os.getpid)
    assert len(stream.data) >= 4 and len(workers) == 2
    assert len({pids[w] for w in workers}) == 2 and os.getpid() not in pids.values()
