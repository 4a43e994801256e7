"""Sums of won that cannot wrap: every total is added in 128 bits and must fit int64 again.

Polars adds Int64 columns in 64 bits and wraps silently (1,247 payments of 10^16 won once summed
to 2,142 won). The program loader bounds every amount (rules.program.MAX_PAYMENT_KRW), so no real
run comes near the limit; these sums make a total that would not fit fail loudly instead.
"""

from __future__ import annotations

import polars as pl


class TotalOverflow(ArithmeticError):
    """A total of won does not fit in int64 (only reachable past the loader's bounds)."""


def won_sum(column: str = "amount_krw") -> pl.Expr:
    """Return the sum of a won column as Int64, computed in Int128; a total past int64 raises."""
    return pl.col(column).cast(pl.Int128).sum().cast(pl.Int64, strict=True)


def won_total(values: pl.Series) -> int:
    """Return the exact total of a won series (0 when empty); refuse one that leaves int64."""
    total = int(values.cast(pl.Int128).sum()) if values.len() else 0
    if not -(2**63) <= total < 2**63:
        raise TotalOverflow(f"a total of {total:,} won does not fit the payment files and trail")
    return total
