"""The run: the Prefect flows (runs, key rotations, results and review
imports, release approvals), steps, publish, the outbox, lock, paths.

The only package that imports Prefect (with the `serve` command).
"""

__all__ = [
    "approve",
    "flow",
    "lock",
    "outbox",
    "page",
    "paths",
    "prefetch",
    "progress",
    "publish",
    "results",
    "review",
    "rotate",
    "runners",
    "server",
    "steps",
    "stores",
]
