"""Totals of won never wrap: the loader bounds amounts, and every sum is exact or refused."""

from __future__ import annotations

import polars as pl
import pytest

from flows.money import TotalOverflow, won_sum, won_total
from rules.program import MAX_BUDGET_KRW, MAX_PAYMENT_KRW

SEEN = 10_169_098_166_322_797  # the amount a hostile review committed as "2,142 won in total"


def test_a_total_that_int64_would_wrap_is_refused_not_wrapped() -> None:
    amounts = pl.Series("amount_krw", [SEEN] * 1_247, dtype=pl.Int64)
    assert int(amounts.sum()) < 0  # what a plain polars sum does
    with pytest.raises(TotalOverflow, match="does not fit"):
        won_total(amounts)
    with pytest.raises(pl.exceptions.InvalidOperationError):
        pl.DataFrame({"amount_krw": amounts}).select(won_sum())


def test_totals_inside_int64_are_exact_whatever_their_order() -> None:
    amounts = pl.Series("amount_krw", [2**62, 2**62 - 1, -(2**62)], dtype=pl.Int64)
    assert won_total(amounts) == 2**62 - 1
    assert won_total(pl.Series("amount_krw", [], dtype=pl.Int64)) == 0
    grouped = pl.DataFrame({"g": [1, 1, 2], "amount_krw": [3, 4, 5]}).group_by("g").agg(won_sum())
    assert dict(grouped.sort("g").iter_rows()) == {1: 7, 2: 5}


def test_the_loader_bounds_leave_every_possible_run_total_inside_int64() -> None:
    # 52 million residents x a few instalments, each at most MAX_PAYMENT_KRW, and the budget.
    assert MAX_PAYMENT_KRW * 1_000_000_000 < 2**63
    assert MAX_BUDGET_KRW * 1_000 < 2**63
