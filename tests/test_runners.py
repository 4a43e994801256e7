"""Task runners: buckets decided on Dask worker processes equal the buckets decided locally."""

from __future__ import annotations

import os
import time

import polars as pl
import pytest
from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_API_URL
from prefect.task_runners import ThreadPoolTaskRunner

from flows.decide.rules import Decisions, RunContext, decide
from flows.run.runners import flow_api_url, local_cluster_kwargs, polars_threads, task_runner
from tests.support.frames import (
    application,
    checked_enrollment,
    checked_registry,
    context,
    person,
    rrn,
)


def test_the_local_runner_is_a_thread_pool_of_one_thread_unless_told() -> None:
    one = task_runner("local")
    four = task_runner("local", workers=4)
    assert isinstance(one, ThreadPoolTaskRunner) and one._max_workers == 1
    assert isinstance(four, ThreadPoolTaskRunner) and four._max_workers == 4


def test_without_an_address_dask_builds_a_local_cluster_of_two_single_threaded_processes() -> None:
    from prefect_dask import DaskTaskRunner

    runner = task_runner("dask")
    assert isinstance(runner, DaskTaskRunner)
    assert runner.address is None
    assert runner.cluster_kwargs == local_cluster_kwargs(2)
    assert runner.cluster_kwargs["n_workers"] == 2
    assert runner.cluster_kwargs["threads_per_worker"] == 1
    assert runner.cluster_kwargs["processes"] is True


def test_a_dask_run_with_an_address_connects_to_that_scheduler_and_starts_no_cluster() -> None:
    from prefect_dask import DaskTaskRunner

    runner = task_runner("dask", address="tcp://10.0.0.5:8786")
    assert isinstance(runner, DaskTaskRunner)
    assert runner.address == "tcp://10.0.0.5:8786"
    assert runner.cluster_kwargs == {}


@pytest.mark.parametrize(
    ("kind", "workers", "address", "message"),
    [
        ("local", None, "tcp://h:8786", "needs runner 'dask'"),
        ("dask", 3, "tcp://h:8786", "started by `dask worker`"),
        ("ray", None, None, "unknown task runner"),
    ],
)
def test_a_runner_asked_for_something_it_cannot_do_says_so(
    kind: str, workers: int | None, address: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        task_runner(kind, workers=workers, address=address)  # type: ignore[arg-type]


def test_local_dask_workers_report_to_the_api_they_are_given_and_use_one_polars_thread_each() -> (
    None
):
    told = local_cluster_kwargs(2, "http://127.0.0.1:8123/api")["env"]
    assert told["PREFECT_API_URL"] == "http://127.0.0.1:8123/api"
    assert "PREFECT_API_URL" not in local_cluster_kwargs(2)["env"]
    assert told["POLARS_MAX_THREADS"] == str(polars_threads(2))


def test_the_flows_prefect_api_is_the_configured_one_else_the_temporary_server_of_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import temporary_settings

    monkeypatch.setattr(SubprocessASGIServer, "_instances", {})  # no server in this process
    with temporary_settings(updates={PREFECT_API_URL: "http://10.0.0.5:4200/api"}):
        assert flow_api_url() == "http://10.0.0.5:4200/api"
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert flow_api_url() is None
        server = SubprocessASGIServer()  # as a flow run leaves it after starting one
        server.port, server.running = 8123, True
        assert flow_api_url() == "http://127.0.0.1:8123/api"


@pytest.mark.parametrize(("workers", "cores", "threads"), [(2, 2, 1), (2, 16, 8), (3, 2, 1)])
def test_worker_processes_on_one_machine_share_its_cores_between_their_polars_pools(
    workers: int, cores: int, threads: int
) -> None:
    assert polars_threads(workers, cores) == threads


def bucket(n: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Return household `n` (head, spouse, minor child) and its applications, one a proxy."""
    head, spouse = rrn("750312", "1", f"1{n:04d}"), rrn("780701", "2", f"2{n:04d}")
    child = rrn("120505", "4", f"3{n:04d}")
    rows = [
        person(head, household=str(n)),
        person(spouse, household=str(n), relation="배우자"),
        person(child, household=str(n), relation="자녀"),
    ]
    apps = [
        application(f"A{n}-1", head),
        application(f"A{n}-2", child, spouse),
        application(f"A{n}-3", head, at="2025-01-23T10:00:00"),  # applied twice
    ]
    return rows, apps


@task(name="decide-bucket", cache_policy=NO_CACHE)
def decide_bucket(n: int, ctx: RunContext) -> tuple[str, pl.DataFrame, pl.DataFrame]:
    """Validate and decide one bucket; say which process (and polars pool size) decided it."""
    rows, apps = bucket(n)
    nobody = pl.DataFrame(schema={"person_key": pl.String})
    decided: Decisions = decide(checked_registry(rows), checked_enrollment(apps), nobody, ctx)
    time.sleep(0.2)  # long enough that one worker cannot take every bucket before the other starts
    # the process, its polars threads and the Prefect API it reports to
    worker = f"{os.getpid()}:{pl.thread_pool_size()}:{PREFECT_API_URL.value()}"
    return worker, decided.registry, decided.enrollment


@flow(name="decide-buckets", validate_parameters=False)
def decide_buckets(buckets: int) -> list[tuple[str, pl.DataFrame, pl.DataFrame]]:
    futures = decide_bucket.map(list(range(buckets)), unmapped(context()))
    return [f.result() for f in futures]


def decided(results: list[tuple[str, pl.DataFrame, pl.DataFrame]]) -> tuple[pl.DataFrame, ...]:
    registry = pl.concat([r for _, r, _ in results]).sort("source_row", "household_id")
    enrollment = pl.concat([e for _, _, e in results]).sort("application_id")
    return registry, enrollment


@pytest.mark.slow  # a LocalCluster of two processes takes 6-20 s to start on 2 shared cores
@pytest.mark.flow
def test_buckets_decided_on_two_dask_worker_processes_equal_the_buckets_decided_locally(
    prefect_backend: None,
) -> None:
    local = decide_buckets.with_options(task_runner=task_runner("local"))(4)
    api = flow_api_url()
    remote = decide_buckets.with_options(task_runner=task_runner("dask", api_url=api))(4)
    assert {w for w, _, _ in local} == {f"{os.getpid()}:{pl.thread_pool_size()}:{api}"}
    workers = {w.split(":", 2)[0] for w, _, _ in remote}
    assert len(workers) == 2 and str(os.getpid()) not in workers
    assert {tuple(w.split(":", 2)[1:]) for w, _, _ in remote} == {(str(polars_threads(2)), api)}
    for here, there in zip(decided(local), decided(remote), strict=True):
        assert here.equals(there)
    assert decided(remote)[1]["outcome"].value_counts().sort("outcome").rows() == [
        ("DUPLICATE_APPLICATION", 4),
        ("PAID", 8),
    ]
