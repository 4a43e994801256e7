"""Household programs over generated populations (hypothesis): once per household, right size.

For any population fitted to `national-relief-2020` (a household program, tiered by size), with
any small rate of injected faults: every input row has one decision record, every household is
paid at most once and only through its head, and the amount is the tier of the household's
eligible members (the head plus the members the payment covers).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.generate import Faults
from fixtures.programs import generate_for_program, write_program_data
from flows import validate
from flows.decide import RunContext, decide
from flows.disburse import build_outputs
from flows.ingest import list_delivery, read_delivery
from rules.program import load_program
from rules.reference import bank_codes, vocabulary
from schemas.enrollment import enrollment_schema
from schemas.registry import registry_schema

PROGRAM = load_program("national-relief-2020")
TIERS = {1: 400_000, 2: 600_000, 3: 800_000}
faults = st.builds(
    Faults,
    duplicate_record=st.floats(0, 0.02),
    duplicate_application=st.floats(0, 0.05),
    malformed=st.floats(0, 0.004),
    outside_window=st.floats(0, 0.02),
)


def decide_written(data: Path) -> tuple[int, pl.DataFrame, int]:
    registry = read_delivery(list_delivery(data / "registry", "registry"), "registry")
    enrollment = read_delivery(list_delivery(data / "enrollments", "enrollment"), "enrollment")
    schema = registry_schema(frozenset(), vocabulary(), PROGRAM.admin_code_prefixes())
    reg, _ = validate.validate_registry(
        registry, schema, vocabulary(), PROGRAM.reference_date, True
    )
    enr, _ = validate.validate_enrollments(
        enrollment, enrollment_schema(bank_codes(), vocabulary())
    )
    ctx = RunContext("p", PROGRAM, "2020-08", dt.datetime(2020, 8, 1, tzinfo=dt.UTC), "k" * 20)
    nobody = pl.DataFrame(schema={"person_key": pl.String})
    files, records = build_outputs.fn(decide(reg, enr, nobody, ctx), ctx)
    return registry.frame.height + enrollment.frame.height, records, sum(f.total_krw for f in files)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.integers(20, 400), seed=st.integers(0, 2**16), faults=faults)
def test_a_household_program_pays_each_household_once_by_its_eligible_size(
    tmp_path_factory: pytest.TempPathFactory, rows: int, seed: int, faults: Faults
) -> None:
    data = tmp_path_factory.mktemp("household")
    write_program_data(generate_for_program(rows, PROGRAM, seed=seed, faults=faults), data)
    inputs, records, file_total = decide_written(data)
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
