"""One tally for every way a run is decided: the tally of the whole is the sum of its parts."""

from __future__ import annotations

import random

import polars as pl
import pytest

from flows.audit.tally import combine, tally
from flows.decide.codes import OUTCOMES


def records(n: int, seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    reasons = ["PAID_IN_EARLIER_RUN", "NO_VALID_APPLICATION", "RRN_FORMAT", "OUTSIDE_WINDOW"]
    rows = []
    for _ in range(n):
        outcome = rng.choice(OUTCOMES)
        rows.append(
            {
                "source_kind": rng.choice(["registry", "enrollment"]),
                "outcome": outcome,
                "reason_codes": rng.sample(reasons, rng.randint(0, 2)),
                "amount_krw": rng.choice([100_000, 400_000]) if outcome == "PAID" else 0,
                "admin_code": rng.choice(["4148025000", "4148051000", "4148052000"]),
            }
        )
    return pl.DataFrame(rows, schema_overrides={"reason_codes": pl.List(pl.String)})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_tally_of_a_run_equals_the_sum_of_the_tallies_of_its_buckets(seed: int) -> None:
    whole = records(2_000, seed)
    cuts = sorted(random.Random(seed).sample(range(1, whole.height), 4))
    parts = [whole.slice(a, b - a) for a, b in zip([0, *cuts], [*cuts, whole.height], strict=True)]
    parts.append(whole.clear())  # a bucket with nobody in it
    one, summed = tally(whole), combine(tally(p) for p in parts)
    assert (one.rows, one.counts, one.reasons) == (summed.rows, summed.counts, summed.reasons)
    assert (one.paid_krw, one.payments) == (summed.paid_krw, summed.payments)
    assert one.by_outcome.sort("outcome").equals(summed.by_outcome.sort("outcome"))
    assert one.districts.equals(summed.districts)
    assert list(one.reasons.values()) == sorted(one.reasons.values(), reverse=True)


def test_the_tally_counts_every_outcome_and_pays_registry_rows_once() -> None:
    frame = records(500, 9)
    counted = tally(frame)
    assert list(counted.counts) == list(OUTCOMES) and sum(counted.counts.values()) == 500
    paid = frame.filter(pl.col("source_kind") == "registry", pl.col("outcome") == "PAID")
    assert counted.paid_krw == paid["amount_krw"].sum() and counted.payments == paid.height
    assert counted.districts["won"].sum() == counted.paid_krw
