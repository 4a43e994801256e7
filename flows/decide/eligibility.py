"""Turn a program's eligibility settings into polars expressions over registry rows."""

from __future__ import annotations

import polars as pl

from flows.decide.attributes import holds
from rules.program import Program


def population_id(program: Program) -> pl.Expr:
    """Return the id of the first population a row belongs to (null when none)."""
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for pop in reversed(program.populations):
        matches = pl.col("nationality") == pop.nationality
        if pop.visa_types is not None:
            matches = matches & pl.col("visa_type").is_in(list(pop.visa_types))
        expr = pl.when(matches).then(pl.lit(pop.id)).otherwise(expr)
    return expr


def window_bounds(program: Program) -> tuple[pl.Expr, pl.Expr]:
    """Return the application window (start, end, inclusive dates) of the row's population."""
    ids = [p.id for p in program.populations]
    start = pl.col("population").replace_strict(
        ids, [p.window.start for p in program.populations], default=None, return_dtype=pl.Date
    )
    end = pl.col("population").replace_strict(
        ids, [p.window.end for p in program.populations], default=None, return_dtype=pl.Date
    )
    return start, end


def ineligibility(program: Program) -> list[tuple[str, str, pl.Expr]]:
    """Return (rule id, reason code, fails-expression) for every eligibility rule, in order."""
    rules = [
        (
            "eligibility.status",
            "STATUS_NOT_ELIGIBLE",
            ~pl.col("status").is_in(list(program.eligibility.statuses)),
        ),
        ("eligibility.population", "POPULATION_NOT_ELIGIBLE", pl.col("population").is_null()),
    ]
    rules += [
        (
            f"eligibility.condition.{c.id}",
            "PROGRAM_CONDITION_NOT_MET",
            ~holds(c, program.reference_date),
        )
        for c in program.eligibility.conditions
    ]
    if program.eligibility.registered_on_or_before_reference_date:
        rules.insert(
            1,
            (
                "eligibility.registered_on",
                "REGISTERED_AFTER_REFERENCE",
                pl.col("p_registered_on") > program.reference_date,
            ),
        )
    return rules


def assess(registry: pl.LazyFrame, program: Program) -> pl.LazyFrame:
    """Add `population`, window bounds, `eligible`, `ineligible_reasons` and `ineligible_rule`."""
    rules = ineligibility(program)
    start, end = window_bounds(program)
    reasons = pl.concat_list(
        [
            pl.when(fails.fill_null(True))
            .then(pl.lit([code]))
            .otherwise(pl.lit([], pl.List(pl.String)))
            for _, code, fails in rules
        ]
    ).list.unique(maintain_order=True)
    first_rule: pl.Expr = pl.lit(None, dtype=pl.String)
    for rule_id, _, fails in reversed(rules):
        first_rule = pl.when(fails.fill_null(True)).then(pl.lit(rule_id)).otherwise(first_rule)
    return (
        registry.with_columns(population=population_id(program))
        .with_columns(
            window_start=start,
            window_end=end,
            ineligible_reasons=reasons,
            ineligible_rule=first_rule,
        )
        .with_columns(eligible=pl.col("ineligible_reasons").list.len() == 0)
    )
