"""The run: the Prefect flows (runs, key rotations, results imports), steps, publish, lock, paths.

The only package that imports Prefect (with the `serve` command).
"""

__all__ = [
    "flow",
    "lock",
    "page",
    "paths",
    "publish",
    "results",
    "rotate",
    "runners",
    "steps",
    "stores",
]
