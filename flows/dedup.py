"""Decide duplicates on narrow keys: one registry row per RRN, one application per beneficiary."""

from __future__ import annotations

import polars as pl


def source_ref() -> pl.Expr:
    """Return `file:row`, how the audit points at another input row."""
    return pl.concat_str(pl.col("source_file"), pl.lit(":"), pl.col("source_row").cast(pl.String))


def mark_duplicate_records(registry: pl.LazyFrame) -> pl.LazyFrame:
    """Keep the first valid row per RRN in delivery order; mark later ones as duplicates.

    Adds `is_duplicate` and `duplicate_of` (the kept row's `file:row`). Delivery order is the
    files' name order, then the row number: the kept row is the one an operator finds first.
    """
    valid = ~pl.col("quarantined")
    position = pl.int_range(pl.len(), dtype=pl.Int64)
    kept = (
        registry.with_columns(_pos=position)
        .filter(valid)
        .group_by("rrn")
        .agg(_kept_pos=pl.col("_pos").min(), _kept_ref=source_ref().sort_by(pl.col("_pos")).first())
    )
    return (
        registry.with_columns(_pos=position)
        .join(kept, on="rrn", how="left", maintain_order="left")
        .with_columns(is_duplicate=valid & (pl.col("_pos") != pl.col("_kept_pos")))
        .with_columns(duplicate_of=pl.when(pl.col("is_duplicate")).then(pl.col("_kept_ref")))
        .drop("_pos", "_kept_pos", "_kept_ref")
    )


def winning_applications(candidates: pl.LazyFrame) -> pl.LazyFrame:
    """Return, per beneficiary, the earliest valid application (ties: application id).

    `candidates` holds the applications that passed every other check; the result has one row per
    `rrn` with `winner_application_id`.
    """
    return (
        candidates.sort("p_applied_at", "application_id")
        .group_by("rrn")
        .agg(winner_application_id=pl.col("application_id").first())
    )
