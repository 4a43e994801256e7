"""Build tiny registry and enrollment deliveries inline, for stage tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import strategies as st

from fixtures.generate import Faults
from flows.checks import validate
from flows.decide.rules import Decisions, RunContext, decide
from flows.inputs.ingest import COLUMNS, Delivery
from rules.program import Program, load_program
from rules.reference import bank_codes, vocabulary
from schemas.enrollment import enrollment_schema
from schemas.registry import registry_schema

W = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)


def rrn(born: str, sex: str, middle: str = "10000") -> str:
    """Return a valid old-scheme RRN for YYMMDD, digit 7 and five more digits."""
    body = born + sex + middle
    base = 13 if sex in "5678" else 11
    return body + str((base - sum(int(d) * w for d, w in zip(body, W, strict=True)) % 11) % 10)


def person(number: str, household: str = "1", relation: str = "본인", **kw: Any) -> dict[str, Any]:
    """Return a registry row for a Korean resident of 운정3동 unless overridden."""
    century = {"3": "20", "4": "20", "7": "20", "8": "20"}.get(number[6:7], "19")
    born = f"{century}{number[:2]}-{number[2:4]}-{number[4:6]}" if len(number) == 13 else None
    row = {
        "rrn": number,
        "name": "김민수",
        "birth_date": born,
        "household_id": household,
        "relation": relation,
        "admin_code": "4148057000",
        "address": "경기도 파주시",
        "registered_on": "2019-01-01",
        "status": "거주",
        "nationality": "내국인",
        "visa_type": None,
        "status_changed_on": None,
        "as_of": "2024-12-26",
    }
    return row | kw


def application(
    app_id: str,
    beneficiary: str,
    applicant: str | None = None,
    at: str = "2025-01-22T10:00:00",
    channel: str = "online",
    **kw: Any,
) -> dict[str, Any]:
    """Return an enrollment row paying to a local-currency card."""
    row = {
        "application_id": app_id,
        "applied_at": at,
        "rrn": beneficiary,
        "applicant_rrn": applicant or beneficiary,
        "channel": channel,
        "payout": "local_currency",
        "card_id": "9410000000000001",
        "bank_code": None,
        "account_no": None,
        "account_holder": None,
    }
    return row | kw


def delivery(kind: str, rows: list[dict[str, Any]], file: str = "f.csv") -> Delivery:
    """Return a delivery of one file holding `rows`."""
    columns = COLUMNS[kind]  # type: ignore[index]
    frame = pl.DataFrame(
        {c: [r.get(c) for r in rows] for c in columns}, schema=dict.fromkeys(columns, pl.String)
    )
    frame = frame.with_columns(
        source_kind=pl.lit(kind),
        source_file=pl.lit(file),
        source_sha256=pl.lit("0" * 64),
        source_row=pl.int_range(1, frame.height + 1, dtype=pl.Int64),
    )
    return Delivery(kind, frame, [])  # type: ignore[arg-type]


def context(program: Program | None = None) -> RunContext:
    """Return a run context for paju-livelihood-2025 with a test key."""
    return RunContext(
        "run-1",
        program or load_program("paju-livelihood-2025"),
        "2025-03",
        dt.datetime(2025, 3, 20, tzinfo=dt.UTC),
        "test-key-0123456789",
    )


def checked_registry(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Return validated registry rows."""
    program = load_program("paju-livelihood-2025")
    schema = registry_schema(program.admin_codes(), vocabulary())
    return validate.validate_registry(
        delivery("registry", rows), schema, vocabulary(), program.reference_date, True
    )[0]


def checked_enrollment(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Return validated enrollment rows."""
    schema = enrollment_schema(bank_codes(), vocabulary())
    return validate.validate_enrollments(delivery("enrollment", rows), schema)[0]


def run_decide(
    registry: list[dict[str, Any]],
    enrollment: list[dict[str, Any]],
    paid_before: list[str] | None = None,
) -> Decisions:
    """Validate and decide inline rows; `paid_before` lists person keys already paid."""
    paid = pl.DataFrame({"person_key": paid_before or []}, schema={"person_key": pl.String})
    return decide(checked_registry(registry), checked_enrollment(enrollment), paid, context())


def outcomes(decisions: Decisions, kind: str = "enrollment") -> list[tuple[str, list[str]]]:
    """Return (outcome, reason codes) per row of one kind, in input order."""
    frame = decisions.enrollment if kind == "enrollment" else decisions.registry
    return list(zip(frame["outcome"].to_list(), frame["reason_codes"].to_list(), strict=True))


# Small random fault rates for property tests over generated populations.
FAULTS = st.builds(
    Faults,
    duplicate_record=st.floats(0, 0.02),
    duplicate_application=st.floats(0, 0.05),
    malformed=st.floats(0, 0.004),
    outside_window=st.floats(0, 0.02),
)


def decide_written(data: Path, ctx: RunContext) -> tuple[int, pl.DataFrame, int]:
    """Read, validate and decide a written population through the flow's own stage functions.

    Returns the number of input rows, the decision records and the payment files' total.
    """
    from flows.inputs.ingest import list_delivery
    from flows.run import steps

    nobody = pl.DataFrame(schema={"person_key": pl.String})
    registry = list_delivery(data / "registry", "registry")
    enrollment = list_delivery(data / "enrollments", "enrollment")
    store, _, decided = steps.decide_in_memory(registry, enrollment, ctx, nobody)
    files, bank, lossy = steps.render_payments(store, ctx, "fixed_width", lambda f: None)
    records = pl.concat(frame for _, frame in steps.decision_parts(store, 1, bank, lossy))
    inputs = decided.rows
    return inputs, records, sum(f.total_krw for f in files)
