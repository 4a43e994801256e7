"""Buckets on disk decided on two Dask worker processes publish what one bucket in memory does."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.run.runners import flow_api_url, local_cluster_kwargs
from tests.support.flowrun import run_flow, runs
from tests.support.processes import env, finish, run_args, start
from tests.support.scaling import (
    FIRST_FILE,
    decision_rows,
    delivery,
    differing,
    manifest_totals,
    payment_lines,
)

RECORD = ("run_id", "status", "counts", "total_paid_krw")
RUN_MONTH = {"national-relief-2020": "2020-08", "paju-livelihood-2025": "2025-03"}


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


class SingleRuns:
    """One generated delivery and one run in memory per program, made once per module."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: dict[str, tuple[Path, Path]] = {}

    def get(self, program: str) -> tuple[Path, Path]:
        """Return the delivery folder and the output root of the run in memory."""
        if program not in self.made:
            data = delivery(program, self.root / program / "data", rows=3000, seed=7)
            out = self.root / program / "single"
            run_flow(data, out, program=program, run_month=RUN_MONTH[program])
            self.made[program] = (data, out)
        return self.made[program]


@pytest.fixture(scope="module")
def single_runs(tmp_path_factory: pytest.TempPathFactory, prefect_backend: None) -> SingleRuns:
    """Single-frame runs made on first use, inside a test that sets the key (`pii_key`)."""
    return SingleRuns(tmp_path_factory.mktemp("single"))


def verified(out: Path) -> bool:
    """Return whether `jiwon audit verify` finds the trail intact (exit 0)."""
    result = CliRunner().invoke(app, ["audit", "verify", "--out", str(out)])
    return result.exit_code == 0


def assert_same_publication(single: Path, split: Path) -> None:
    """Assert two runs published the same decisions, payments and totals, and verify."""
    (one,) = runs(single).select(RECORD).rows(named=True)
    (many,) = runs(split).select(RECORD).rows(named=True)
    assert one["status"] == many["status"] == "committed"
    left, right = decision_rows(single), decision_rows(split)
    assert differing(left, right) == {}  # on failure: the differing rows, column by column
    assert left.equals(right)
    assert (one["counts"], one["total_paid_krw"]) == (many["counts"], many["total_paid_krw"])
    assert manifest_totals(single) == manifest_totals(split)
    assert payment_lines(single, one["run_id"]) == payment_lines(split, many["run_id"])
    assert verified(single) and verified(split)
    # The data holds what partitioning must get right: duplicates across files, households.
    registry = left.filter(pl.col("source_kind") == "registry")
    assert registry.filter(pl.col("outcome") == "DUPLICATE_RECORD")["source_file"].n_unique() > 1
    assert registry.filter(pl.col("source_file") == FIRST_FILE)["outcome"].is_in(["PAID"]).any()
    warnings = set(registry["warning_codes"].explode().drop_nulls())
    assert {"HOUSEHOLD_NO_HEAD", "HOUSEHOLD_MULTIPLE_HEADS"} <= warnings


@pytest.mark.slow  # a two-process Dask cluster and two runs per program: about a minute
@pytest.mark.flow
@pytest.mark.parametrize("program", list(RUN_MONTH))
def test_buckets_decided_on_two_dask_workers_publish_what_one_bucket_in_memory_does(
    program: str, tmp_path: Path, pii_key: str, single_runs: SingleRuns, dask_cluster: Any
) -> None:
    from distributed import get_task_stream

    data, single = single_runs.get(program)
    split = tmp_path / "split"
    with get_task_stream(dask_cluster) as stream:
        run_flow(
            data,
            split,
            program=program,
            run_month=RUN_MONTH[program],
            partitions=4,
            runner="dask",
            dask_address=dask_cluster.scheduler.address,
        )
    assert_same_publication(single, split)
    # Every bucket was decided on the cluster, by two distinct worker processes (not this one).
    buckets = [t["worker"] for t in stream.data if t["key"].startswith("decide_bucket-")]
    pids = dask_cluster.run(os.getpid)
    assert len(buckets) == 4 and len(set(buckets)) == 2
    assert len({pids[w] for w in buckets}) == 2 and os.getpid() not in pids.values()


@pytest.mark.slow  # starts `jiwon` and its own Dask cluster: about 40 s
@pytest.mark.flow
def test_jiwon_run_with_runner_dask_starts_its_own_two_worker_cluster_and_pays_the_same(
    tmp_path: Path, pii_key: str, single_runs: SingleRuns
) -> None:
    program = "paju-livelihood-2025"
    data, single = single_runs.get(program)
    split = tmp_path / "split"
    args = run_args(data, split, "--partitions", "4", "--runner", "dask")
    code, _, stderr = finish(start(args, env(pii_key, tmp_path)), timeout=600)
    assert code == 0, stderr
    assert_same_publication(single, split)
