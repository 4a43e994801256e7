"""Who is paid what, and why: pure polars over validated rows, no files, no Prefect.

The rules, in the order they are checked, are data (`rulebook`) the docs print.
"""

__all__ = ["attributes", "codes", "dedup", "eligibility", "polars_engine", "rulebook", "rules"]
