"""Row checks: every input row validated, normalised or quarantined with reasons.

Pure polars over frames already read (`inputs/`); no files, no Prefect.
"""

__all__ = ["rrn", "validate"]
