"""One tally of a run's decision records: outcomes, reasons, residents and won, districts.

Each bucket's records are tallied where they are decided and the run adds the tallies up
(`combine`), so no step reads every record back. Every figure is a count or a sum, so a tally
of the whole equals the sum of the tallies of its parts (`tests/test_tally.py`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from flows.decide.codes import OUTCOMES
from flows.money import won_sum, won_total

REGISTRY = pl.col("source_kind") == "registry"
PAID = pl.col("outcome") == "PAID"
BY_OUTCOME = {"outcome": pl.String, "residents": pl.Int64, "won": pl.Int64}
DISTRICTS = {"admin_code": pl.String, "people": pl.Int64, "won": pl.Int64}


@dataclass(frozen=True)
class Tally:
    """What the run record, report and summary say about a run's decisions."""

    rows: int  # decision records
    counts: dict[str, int]  # decision records per outcome, every outcome, in the audit's order
    reasons: dict[str, int]  # decision records per reason code, most frequent first
    by_outcome: pl.DataFrame  # registry rows: outcome, residents, won
    districts: pl.DataFrame  # PAID registry rows: admin_code, people, won (by admin code)
    paid_krw: int  # won paid (registry rows, so each payment counts once)
    payments: int  # payments made (PAID registry rows)


def by_outcome(records: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Return residents and won per outcome over the registry decision records."""
    return (
        records.lazy()
        .filter(REGISTRY)
        .group_by("outcome")
        .agg(residents=pl.len().cast(pl.Int64), won=won_sum())
        .collect()
    )


def by_district(records: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Return people paid and won per admin code (registry rows: each payment counts once)."""
    return (
        records.lazy()
        .filter(PAID, REGISTRY)
        .group_by("admin_code")
        .agg(people=pl.len().cast(pl.Int64), won=won_sum())
        .sort("admin_code")
        .collect()
    )


def tally(records: pl.DataFrame) -> Tally:
    """Return the tally of some decision records (a run's, or one bucket's)."""
    counts = dict(records.group_by("outcome").len().iter_rows())  # bounded: per outcome
    exploded = records.select(pl.col("reason_codes").explode(empty_as_null=False)).drop_nulls()
    reasons = dict(exploded.group_by("reason_codes").len().iter_rows())  # bounded: per code
    paid = records.filter(REGISTRY & PAID)
    return Tally(
        rows=records.height,
        counts={o: int(counts.get(o, 0)) for o in OUTCOMES},
        reasons=_most_frequent_first(reasons),
        by_outcome=by_outcome(records),
        districts=by_district(records),
        paid_krw=won_total(paid["amount_krw"]),
        payments=paid.height,
    )


def combine(tallies: Iterable[Tally]) -> Tally:
    """Return the tally of the union of the parts the tallies were made of."""
    parts = list(tallies)
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for t in parts:
        counts.update(t.counts)
        reasons.update(t.reasons)
    outcomes = pl.concat([pl.DataFrame(schema=BY_OUTCOME), *(t.by_outcome for t in parts)])
    districts = pl.concat([pl.DataFrame(schema=DISTRICTS), *(t.districts for t in parts)])
    return Tally(
        rows=sum(t.rows for t in parts),
        counts={o: int(counts.get(o, 0)) for o in OUTCOMES},
        reasons=_most_frequent_first(dict(reasons)),
        by_outcome=outcomes.group_by("outcome").agg(pl.col("residents").sum(), won_sum("won")),
        districts=districts.group_by("admin_code")
        .agg(pl.col("people").sum(), won_sum("won"))
        .sort("admin_code"),
        paid_krw=sum(t.paid_krw for t in parts),
        payments=sum(t.payments for t in parts),
    )


def _most_frequent_first(reasons: dict[str, int]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))}
