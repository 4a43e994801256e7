"""The Prefect task runner a partitioned run maps its files and buckets over.

`local` runs one task at a time in the flow's process (polars already uses every core, and one
bucket at a time bounds memory); `dask` sends them to a Dask cluster: a local one of two worker
processes, or a real one at `address` (docs/scaling.md).
"""

from __future__ import annotations

from typing import Any, Literal

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

Runner = Literal["local", "dask"]


def task_runner(kind: Runner, address: str | None = None, workers: int = 2) -> TaskRunner[Any]:
    """Return the task runner for `kind`; `address` points `dask` at a running scheduler."""
    if kind == "local":
        return ThreadPoolTaskRunner(max_workers=1)
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )
