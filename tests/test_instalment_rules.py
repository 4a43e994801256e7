"""Which instalment a run decides, and the checks a due later instalment makes (fast, no flow).

The year of monthly runs through the real flow is tests/test_instalments.py (slow).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from flows.checks import validate
from flows.decide.rules import Decisions, RunContext, decide, keyed, payment_id
from flows.inputs.ledger import EMPTY_PAID, Ledger
from rules.program import load_program
from rules.reference import vocabulary
from schemas.registry import registry_schema
from tests.support.frames import application, checked_enrollment, delivery, person, rrn

BIRTH = load_program("paju-birth-2025")
KEY = "test-key-0123456789"
PARENT = rrn("900501", "1")
CHILD = rrn("250110", "3")
CTX = RunContext("run-13", BIRTH, "2026-02", dt.datetime(2026, 2, 20, tzinfo=dt.UTC), KEY)


def ledger(rows: list[tuple[str, int, str]]) -> Ledger:
    return Ledger(
        pl.DataFrame(
            {
                "person_key": [r[0] for r in rows],
                "instalment": [r[1] for r in rows],
                "amount_krw": [100_000] * len(rows),
                "run_id": [f"run-{i}" for i in range(len(rows))],
                "run_month": [r[2] for r in rows],
            },
            schema=EMPTY_PAID.schema,
        )
    )


def test_the_second_instalment_falls_due_twelve_months_after_the_run_that_paid_the_first() -> None:
    paid = ledger(
        [("a", 1, "2025-02"), ("b", 1, "2025-04"), ("c", 1, "2025-02"), ("c", 2, "2026-02")]
    )

    def standing(month: str) -> dict[str, tuple[Any, ...]]:
        frame = paid.progress(BIRTH, month).sort("person_key")
        return {r[0]: r[1:4] for r in frame.iter_rows()}

    assert standing("2026-01") == {"a": (1, 2, False), "b": (1, 2, False), "c": (2, None, False)}
    assert standing("2026-03") == {"a": (1, 2, True), "b": (1, 2, False), "c": (2, None, False)}
    assert standing("2026-04")["b"] == (1, 2, True)
    # The day an application for the next instalment may be made from: 12 months after the
    # run month that paid the first.
    due_on = dict(paid.progress(BIRTH, "2026-04").select("person_key", "next_due_on").iter_rows())
    assert due_on == {"a": dt.date(2026, 2, 1), "b": dt.date(2026, 4, 1), "c": None}


def run(child_household: str, due: bool, child_status: str = "거주") -> Decisions:
    as_of = "2026-02-01"
    rows = [
        person(PARENT, "1", as_of=as_of),
        person(CHILD, child_household, "자녀", as_of=as_of, status=child_status),
    ]
    schema = registry_schema(BIRTH.admin_codes(), vocabulary(), BIRTH.admin_code_prefixes())
    registry, _ = validate.validate_registry(
        delivery("registry", rows), schema, vocabulary(), BIRTH.reference_date, False
    )
    enrollment = checked_enrollment([application("A1", CHILD, PARENT, at="2026-02-03T10:00:00")])
    child_key = pl.DataFrame({"rrn": [CHILD]}).select(keyed("rrn", KEY)).item()
    progress = pl.DataFrame(
        {"person_key": [child_key], "last_paid": [1], "next_instalment": [2], "next_due": [due]},
        schema={
            "person_key": pl.String,
            "last_paid": pl.Int64,
            "next_instalment": pl.Int64,
            "next_due": pl.Boolean,
        },
    )
    return decide(registry, enrollment, progress, CTX)


def child_row(decisions: Decisions) -> dict[str, Any]:
    return decisions.registry.filter(pl.col("rrn") == CHILD).row(0, named=True)


def test_a_due_second_instalment_is_paid_with_its_own_amount_and_payment_id() -> None:
    decisions = run(child_household="1", due=True)
    app = decisions.enrollment.row(0, named=True)
    assert (app["outcome"], app["instalment"], app["amount_krw"]) == ("PAID", 2, 900_000)
    child = child_row(decisions)
    assert (child["outcome"], child["instalment"], child["payment_id"]) == (
        "PAID",
        2,
        app["payment_id"],
    )
    ids = pl.DataFrame(
        {"person_key": [child["person_key"]] * 2, "instalment": [1, 2]},
        schema={"person_key": pl.String, "instalment": pl.Int64},
    ).select(pid=payment_id(CTX))["pid"]
    assert app["payment_id"] == ids[1] != ids[0]


def test_a_second_instalment_not_yet_due_is_already_paid_and_says_so() -> None:
    decisions = run(child_household="1", due=False)
    assert decisions.payees.height == 0
    app = decisions.enrollment.row(0, named=True)
    assert (app["outcome"], app["instalment"], app["reason_codes"]) == (
        "ALREADY_PAID",
        1,
        ["BENEFICIARY_ALREADY_PAID", "NEXT_INSTALMENT_NOT_DUE"],
    )
    child = child_row(decisions)
    assert child["reason_codes"] == ["PAID_IN_EARLIER_RUN", "NEXT_INSTALMENT_NOT_DUE"]


def test_a_carer_no_longer_in_the_childs_household_is_refused_the_second_instalment() -> None:
    decisions = run(child_household="2", due=True)
    app = decisions.enrollment.row(0, named=True)
    assert (app["outcome"], app["rule_id"], app["reason_codes"], app["amount_krw"]) == (
        "INELIGIBLE",
        "instalment.same_household_as_applicant",
        ["INSTALMENT_CONDITION_FAILED", "CARER_NOT_IN_HOUSEHOLD"],
        0,
    )
    assert decisions.payees.height == 0


def test_a_child_no_longer_living_in_paju_is_refused_the_second_instalment() -> None:
    decisions = run(child_household="1", due=True, child_status="거주불명")
    child = child_row(decisions)
    assert (child["outcome"], child["instalment"], child["rule_id"]) == (
        "INELIGIBLE",
        2,
        "instalment.registered_in_city",
    )
    assert child["reason_codes"] == ["INSTALMENT_CONDITION_FAILED", "STATUS_NOT_ELIGIBLE"]
    assert decisions.enrollment["outcome"].to_list() == ["INELIGIBLE"]
