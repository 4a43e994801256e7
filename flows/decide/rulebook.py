"""Named decision rules, kept in the order they are checked: the first that holds decides.

A rule list is data: `flows.decide.rules` applies it with `first_match`, and `jiwon programs
show` and docs/programs.md print the same list, so the order an officer reads is the order
the engine runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from flows.decide.codes import BY_CODE

EMPTY = pl.lit([], dtype=pl.List(pl.String))


@dataclass(frozen=True)
class Rule:
    """One named check of a rule list.

    Where `condition` holds and no earlier rule's did, the row gets `outcome` with `reasons` and
    the rule id `id`. A rule whose outcome, reasons or id differ row by row gives them as
    expressions (`decided`, `why`, `decided_by`); `id` then names every rule id it can write,
    separated by ", ", and `within` lists the nested rules that decide, in order.
    """

    id: str
    outcome: str
    reasons: tuple[str, ...]
    condition: pl.Expr
    ko: str = ""
    en: str = ""
    why: pl.Expr | None = None
    decided: pl.Expr | None = None
    decided_by: pl.Expr | None = None
    within: tuple[Rule, ...] = ()

    @property
    def ids(self) -> tuple[str, ...]:
        """Return the rule ids this rule can write to the audit."""
        return tuple(self.id.split(", ")) if self.id else ()

    @property
    def outcomes(self) -> tuple[str, ...]:
        """Return the outcomes this rule can give (those of its nested rules when it has them)."""
        if not self.within:
            return (self.outcome,) if self.outcome else ()
        return tuple(dict.fromkeys(o for r in self.within for o in r.outcomes))

    @property
    def codes(self) -> tuple[str, ...]:
        """Return the reason codes this rule can give (its nested rules' when it names none)."""
        if self.reasons or not self.within:
            return self.reasons
        return tuple(dict.fromkeys(c for r in self.within for c in r.codes))

    @property
    def text(self) -> tuple[str, str]:
        """Return the one-line description (Korean, English); else from flows/decide/codes.py."""
        if self.ko or not self.reasons:
            return self.ko, self.en
        code = BY_CODE[self.reasons[-1]]
        return code.ko, code.en

    def outcome_expr(self) -> pl.Expr:
        """Return the outcome this rule gives a row."""
        if self.decided is not None:
            return self.decided
        return pl.lit(self.outcome, dtype=pl.String)

    def reasons_expr(self) -> pl.Expr:
        """Return the reason codes this rule gives a row."""
        if self.why is not None:
            return self.why
        return pl.lit(list(self.reasons), dtype=pl.List(pl.String)) if self.reasons else EMPTY

    def rule_expr(self) -> pl.Expr:
        """Return the rule id this rule writes for a row."""
        if self.decided_by is not None:
            return self.decided_by
        return pl.lit(self.id, dtype=pl.String)


Decided = tuple[pl.Expr, pl.Expr, pl.Expr]
UNDECIDED: Decided = (
    pl.lit(None, dtype=pl.String),
    pl.lit(None, dtype=pl.List(pl.String)),
    pl.lit(None, dtype=pl.String),
)


def first_match(rules: Sequence[Rule], otherwise: Decided = UNDECIDED) -> Decided:
    """Return (outcome, reason codes, rule id) of the first rule whose condition holds.

    Rows no rule decides keep `otherwise` (null by default).
    """
    outcome, reasons, rule = otherwise
    for r in reversed(rules):
        outcome = pl.when(r.condition).then(r.outcome_expr()).otherwise(outcome)
        reasons = pl.when(r.condition).then(r.reasons_expr()).otherwise(reasons)
        rule = pl.when(r.condition).then(r.rule_expr()).otherwise(rule)
    return outcome, reasons, rule
