"""The run: the Prefect flows (runs, key rotations, results and review
imports), steps, publish, lock, paths.

The only package that imports Prefect (with the `serve` command).
"""

__all__ = [
    "flow",
    "lock",
    "page",
    "paths",
    "publish",
    "results",
    "review",
    "rotate",
    "runners",
    "steps",
    "stores",
]
