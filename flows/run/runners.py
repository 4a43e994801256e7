"""Choose the Prefect task runner a partitioned run maps its files and buckets over.

`local` runs them in threads of the flow's own process (one by default: polars already uses
every core, and one bucket at a time bounds memory); `dask` sends them to a Dask
cluster: a scheduler already running at an address (a real cluster, see docs/scaling.md) or,
without an address, a temporary LocalCluster of worker processes on this machine. Building a
runner starts nothing: the cluster starts when the runner is entered and stops when it exits.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

Runner = Literal["local", "dask"]
LOCAL_DASK_WORKERS = 2


def polars_threads(workers: int, cores: int | None = None) -> int:
    """Return polars threads per worker process so that the workers share the cores.

    polars sizes its thread pool to every core of the machine in each process; n worker
    processes on one machine would start n such pools and oversubscribe the cores n times.
    """
    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))


def local_cluster_kwargs(
    workers: int = LOCAL_DASK_WORKERS, api_url: str | None = None
) -> dict[str, Any]:
    """Return the LocalCluster settings of a dask run without an address.

    One thread per worker process: a bucket is polars work that is already multi-threaded, so
    parallelism comes from processes. No dashboard (no port to bind in tests and CI). With
    `api_url` the workers report their task runs to the flow's Prefect API instead of each
    starting a temporary Prefect server of its own (seconds per worker, a split record).
    """
    env = {"POLARS_MAX_THREADS": str(polars_threads(workers))}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return {
        "n_workers": workers,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
        "env": env,
    }


def flow_api_url() -> str | None:
    """Return the Prefect API this process reports to: PREFECT_API_URL or its temporary server.

    Without PREFECT_API_URL a flow run starts a temporary Prefect server on 127.0.0.1; worker
    processes on this machine can report to it, workers on other machines cannot.
    """
    from prefect.settings import PREFECT_API_URL

    configured: str | None = PREFECT_API_URL.value()
    if configured:
        return configured
    from prefect.server.api.server import SubprocessASGIServer  # loaded already when one runs

    server = SubprocessASGIServer()  # the temporary server of this process, if one runs
    return server.api_url if server.running else None


def task_runner(
    kind: Runner = "local",
    address: str | None = None,
    workers: int | None = None,
    *,
    api_url: str | None = None,
) -> TaskRunner[Any]:
    """Return the task runner of a run (not started).

    `local`: a thread pool of `workers` threads (default 1). `dask` with `address`: the Dask
    scheduler at that address (`tcp://host:8786`), whose workers are started separately (and
    find the Prefect API through their own PREFECT_API_URL); without one: a LocalCluster of
    `workers` processes (default 2), reporting to `api_url` (see `flow_api_url`), that lives
    as long as the runner is entered.
    """
    if kind == "local":
        if address is not None:
            raise ValueError("a Dask scheduler address needs runner 'dask'")
        return ThreadPoolTaskRunner(max_workers=workers or 1)
    if kind != "dask":
        raise ValueError(f"unknown task runner {kind!r}: use 'local' or 'dask'")
    from prefect_dask import DaskTaskRunner  # imported only for dask runs (distributed is heavy)

    if address is not None:
        if workers is not None:
            raise ValueError(
                "the workers of a Dask cluster at an address are started by `dask worker`, "
                "not by the run: drop the number of workers"
            )
        return DaskTaskRunner(address=address)
    kwargs = local_cluster_kwargs(workers or LOCAL_DASK_WORKERS, api_url)
    return DaskTaskRunner(cluster_kwargs=kwargs)
