"""Compile a program's conditions and amounts into polars expressions over registry rows.

A program names attributes (rules/program.py `ATTRIBUTES`); this module says how each is read from
a validated registry row, and turns conditions, tiers and add-ons into vectorised expressions. No
per-row Python: every function returns a `pl.Expr`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import polars as pl

from flows.checks import rrn
from rules.program import Amount, Condition, Program

CHILD_RELATION = "자녀"


def _age(day: dt.date) -> pl.Expr:
    return rrn.age_on(pl.col("p_birth_date"), day)


# How each attribute is read from a registry row prepared by flows.decide.rules; the argument is the
# program's reference date.
ATTRIBUTE_EXPRESSIONS: dict[str, Callable[[dt.date], pl.Expr]] = {
    "status": lambda _: pl.col("status"),
    "nationality": lambda _: pl.col("nationality"),
    "visa_type": lambda _: pl.col("visa_type"),
    "relation": lambda _: pl.col("relation"),
    "admin_code": lambda _: pl.col("admin_code"),
    "sido_code": lambda _: pl.col("admin_code").str.slice(0, 2),
    "sigungu_code": lambda _: pl.col("admin_code").str.slice(0, 5),
    "welfare_status": lambda _: pl.col("welfare_status"),
    "age": _age,
    "birth_order": lambda _: pl.col("birth_order"),
    "household_size": lambda _: pl.col("household_size"),
    "birth_date": lambda _: pl.col("p_birth_date"),
    "registered_on": lambda _: pl.col("p_registered_on"),
}


def attribute(name: str, day: dt.date) -> pl.Expr:
    """Return the expression of attribute `name` with the program's reference date `day`."""
    return ATTRIBUTE_EXPRESSIONS[name](day)


def holds(cond: Condition, day: dt.date) -> pl.Expr:
    """Return true where the condition holds; a missing value never satisfies it."""
    value = attribute(cond.attribute, day)
    if cond.one_of is not None or cond.one_of_list is not None:
        test = value.is_in(list(cond.values()))
    elif cond.none_of is not None:
        test = ~value.is_in(list(cond.none_of))
    elif cond.at_least is not None:
        test = value >= cond.at_least
    elif cond.at_most is not None:
        test = value <= cond.at_most
    elif cond.on_or_after is not None:
        test = value >= cond.on_or_after
    else:
        assert cond.on_or_before is not None  # the loader allows exactly one test
        test = value <= cond.on_or_before
    return (value.is_not_null() & test).fill_null(False)


def birth_order() -> pl.Expr:
    """Return a child's place among the household's kept children by birth date (1 = eldest).

    Counted over children (`자녀` of the head) in the same household only; null for anyone else.
    Twins born the same day are ordered by RRN, so each has its own place.
    """
    child = (
        pl.col("kept")
        & (pl.col("relation") == CHILD_RELATION)
        & pl.col("p_birth_date").is_not_null()
    )
    # days since 1970 ahead of the 13 RRN digits: one integer orders by birth date, then RRN
    order_key = pl.col("p_birth_date").cast(pl.Int64) * 10**13 + pl.col("rrn").cast(
        pl.Int64, strict=False
    )
    place = order_key.rank("ordinal").over("household_id", child)
    return pl.when(child).then(place.cast(pl.Int64))


def household_size() -> pl.Expr:
    """Return the number of eligible, kept members of the row's household on the reference date."""
    return (pl.col("kept") & pl.col("eligible")).cast(pl.Int64).sum().over("household_id")


def base_amount(amount: Amount, day: dt.date) -> pl.Expr:
    """Return the base amount in force on `day` (null where no tier or value applies)."""
    value = amount.value_on(day)
    if amount.kind == "flat":
        assert value.krw is not None
        return pl.lit(value.krw, dtype=pl.Int64)
    assert amount.attribute is not None
    by = attribute(amount.attribute, day)
    if amount.kind == "tiered":
        assert value.tiers is not None
        expr: pl.Expr = pl.lit(None, dtype=pl.Int64)
        for lowest, won in sorted(value.tiers.items()):
            expr = pl.when(by >= lowest).then(pl.lit(won, dtype=pl.Int64)).otherwise(expr)
        return expr
    assert value.by is not None
    return by.replace_strict(
        list(value.by), list(value.by.values()), default=None, return_dtype=pl.Int64
    )


def add_on_amounts(amount: Amount, day: dt.date) -> pl.Expr:
    """Return the sum of add-ons that apply; an add-on gives way to one that replaces it."""
    applies = {a.id: holds(a.when, day) for a in amount.add_ons}
    total: pl.Expr = pl.lit(0, dtype=pl.Int64)
    for a in amount.add_ons:
        replaced_by = [b.id for b in amount.add_ons if a.id in b.replaces]
        active = applies[a.id]
        for b in replaced_by:
            active = active & ~applies[b]
        total = total + pl.when(active).then(pl.lit(a.on(day), dtype=pl.Int64)).otherwise(0)
    return total


def entitlement(program: Program, instalment: int = 1) -> pl.Expr:
    """Return the won a payee row is entitled to for `instalment` (null: no amount is defined)."""
    amount = program.instalments[instalment - 1].amount
    day = program.reference_date
    return base_amount(amount, day) + add_on_amounts(amount, day)
