"""Build pandera checks whose name is the reason code a failing row is quarantined with."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl


def rule(code: str, valid: pl.Expr, description: str) -> pa.Check:
    """Return a vectorised check named `code` that passes where `valid` is true.

    `valid` may read any column of the frame (cross-column rules); a null result counts as a
    failure, so write `valid` to be true where the rule does not apply.
    """

    def _check(data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(valid.fill_null(False))

    return pa.Check(_check, name=code, description=description)


def digits(column: str, n: int) -> pl.Expr:
    """Return true where `column` is exactly `n` ASCII digits."""
    return pl.col(column).str.contains(rf"^\d{{{n}}}$")


def text(description: str, *checks: pa.Check, nullable: bool = True) -> pa.Column:
    """Return a string column with `description` (auditors read it) and its checks."""
    return pa.Column(pl.String, checks=list(checks), nullable=nullable, description=description)
