"""Household programs over generated populations (hypothesis): once per household, right size.

For any population fitted to `national-relief-2020` (a household program, tiered by size), with
any small rate of injected faults: every input row has one decision record, every household is
paid at most once and only through its head, and the amount is the tier of the household's
eligible members (the head plus the members the payment covers).
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.generate import Faults
from fixtures.programs import generate_for_program, write_program_data
from flows.decide.rules import RunContext
from rules.program import load_program
from tests.support.frames import FAULTS, decide_written

PROGRAM = load_program("national-relief-2020")
TIERS = {1: 400_000, 2: 600_000, 3: 800_000}
CTX = RunContext("p", PROGRAM, "2020-08", dt.datetime(2020, 8, 1, tzinfo=dt.UTC), "k" * 20)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.integers(20, 400), seed=st.integers(0, 2**16), faults=FAULTS)
def test_a_household_program_pays_each_household_once_by_its_eligible_size(
    tmp_path_factory: pytest.TempPathFactory, rows: int, seed: int, faults: Faults
) -> None:
    data = tmp_path_factory.mktemp("household")
    write_program_data(generate_for_program(rows, PROGRAM, seed=seed, faults=faults), data)
    inputs, records, file_total = decide_written(data, CTX)
    assert records.height == inputs
    registry = records.filter(pl.col("source_kind") == "registry")
    paid = registry.filter(pl.col("outcome") == "PAID")
    assert paid["household_key"].is_unique().all()
    assert file_total == paid["amount_krw"].sum()
    covered = (
        registry.filter(pl.col("reason_codes").list.contains("COVERED_BY_HOUSEHOLD"))
        .group_by("household_key")
        .len()
    )
    check = paid.join(covered, on="household_key", how="left").with_columns(
        size=1 + pl.col("len").fill_null(0)
    )
    assert check["amount_krw"].to_list() == [TIERS.get(n, 1_000_000) for n in check["size"]]
