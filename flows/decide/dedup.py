"""Decide duplicates on narrow keys: one registry row per RRN, one application per beneficiary."""

from __future__ import annotations

import polars as pl


def source_ref() -> pl.Expr:
    """Return `file:row`, how the audit points at another input row."""
    return pl.concat_str(pl.col("source_file"), pl.lit(":"), pl.col("source_row").cast(pl.String))


ROW_BITS = 32  # a row's place in delivery order: file index << 32 | row number


def rrn_number() -> pl.Expr:
    """Return the RRN as a 64-bit integer where it is 13 digits (exact: no two RRNs collide)."""
    rrn = pl.col("rrn")
    return pl.when(rrn.str.contains(r"^\d{13}$")).then(rrn.cast(pl.Int64, strict=False))


def order_keys(file_index: pl.Expr) -> dict[str, pl.Expr]:
    """Return the narrow keys the duplicate pass works on: `_file`, `_pos` and `_rrn`.

    `_pos` is the row's place in delivery order (files in name order, then rows).
    """
    return {
        "_file": file_index,
        "_pos": file_index * (1 << ROW_BITS) + pl.col("source_row"),
        "_rrn": rrn_number(),
    }


def duplicates(rows: pl.LazyFrame, file_names: list[str]) -> pl.DataFrame:
    """Return, per RRN on more than one valid registry row, the kept row's place and `file:row`.

    `rows` carry `quarantined` and the narrow keys of `order_keys`; `file_names[i]` is file `i`.
    The kept row is the first valid one in delivery order: the one an operator finds first. Only
    the narrow keys are grouped, so this works over one frame or over all of a national
    delivery's spilled files alike.
    """
    names = pl.DataFrame({"_kept_file": range(len(file_names)), "_kept_name": file_names}).cast(
        {"_kept_file": pl.Int64}
    )
    return (
        rows.filter(~pl.col("quarantined"))
        .group_by("_rrn")
        .agg(_n=pl.len(), _kept_pos=pl.col("_pos").min())
        .filter(pl.col("_n") > 1)
        .collect()
        .with_columns(_kept_file=pl.col("_kept_pos") // (1 << ROW_BITS))
        .join(names, on="_kept_file", how="left")
        .select(
            "_rrn",
            "_kept_pos",
            _kept_ref=pl.concat_str(
                "_kept_name", pl.lit(":"), (pl.col("_kept_pos") % (1 << ROW_BITS)).cast(pl.String)
            ),
        )
    )


def mark_duplicates(
    rows: pl.LazyFrame, dups: pl.DataFrame, keep_order: bool = True
) -> pl.LazyFrame:
    """Add `is_duplicate` and `duplicate_of` (the kept row's `file:row`) from `duplicates`.

    `keep_order=False` lets a streaming pass (rows sunk into buckets) skip keeping row order.
    """
    valid = ~pl.col("quarantined")
    return (
        rows.join(dups.lazy(), on="_rrn", how="left", maintain_order="left" if keep_order else None)
        .with_columns(
            is_duplicate=valid
            & pl.col("_kept_pos").is_not_null()
            & (pl.col("_pos") != pl.col("_kept_pos"))
        )
        .with_columns(duplicate_of=pl.when(pl.col("is_duplicate")).then(pl.col("_kept_ref")))
        .drop("_kept_pos", "_kept_ref")
    )


def mark_duplicate_records(registry: pl.LazyFrame) -> pl.LazyFrame:
    """Mark the duplicates of registry rows held in one frame, with the same narrow-key pass.

    The frame's files are in name order (as a delivery is read), so file `i` is the `i`-th name.
    """
    files = registry.select(pl.col("source_file").unique()).collect().to_series()
    names = sorted(files.to_list())  # bounded: one name per file
    index = {name: i for i, name in enumerate(names)}
    keyed = registry.with_columns(
        **order_keys(pl.col("source_file").replace_strict(index, return_dtype=pl.Int64))
    )
    return mark_duplicates(keyed, duplicates(keyed, names)).drop("_file", "_pos", "_rrn")


def winning_applications(candidates: pl.LazyFrame) -> pl.LazyFrame:
    """Return, per beneficiary, the earliest valid application (ties: application id).

    `candidates` holds the applications that passed every other check; the result has one row per
    `rrn` with `winner_application_id`.
    """
    if "_newest_first" in candidates.collect_schema().names():
        # A payment owed again goes to the newest valid application (lifecycle.md, re-issue).
        stamp = pl.col("p_applied_at").dt.epoch("us")
        order = pl.when(pl.col("_newest_first")).then(-stamp).otherwise(stamp)
        return (
            candidates.sort(order, "application_id")
            .group_by("rrn")
            .agg(winner_application_id=pl.col("application_id").first())
        )
    return (
        candidates.sort("p_applied_at", "application_id")
        .group_by("rrn")
        .agg(winner_application_id=pl.col("application_id").first())
    )
