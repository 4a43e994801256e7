"""The run: the Prefect flow, its steps over a store, publish, lock, runners, paths.

The only package that imports Prefect (with the `serve` command).
"""

__all__ = ["flow", "lock", "paths", "publish", "runners", "steps", "stores"]
