"""The run: the Prefect flows (runs, key rotations), steps over a store, publish, lock, paths.

The only package that imports Prefect (with the `serve` command).
"""

__all__ = ["flow", "lock", "paths", "publish", "rotate", "runners", "steps", "stores"]
