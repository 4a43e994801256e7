"""The birth fund's second instalment across a simulated year and a bit of monthly runs.

Every month from 2025-02 to 2026-04 the real `disburse` flow runs on that month's registry snapshot
and that month's applications (docs/decisions/0010-instalments.md). Four families:
- `stay`: first child, stays: 100,000 won at birth, 900,000 won twelve months later.
- `second`: a second child, stays: 300,000 then 1,700,000 won.
- `moved`: the family moves out of Paju in September and leaves the city's registry extract:
  first instalment only; the parent's application when the second falls due is INELIGIBLE.
- `lost`: the child's registration becomes 거주불명 (whereabouts unknown) in October: when the
  second instalment falls due the child's registry row is INELIGIBLE.
- `rehoused`: the child is registered into a grandparent's household in December; the parent who
  applies for the second instalment no longer shares the child's household: INELIGIBLE.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from flows.audit.verify import verify_trail
from flows.decide.rules import keyed
from flows.inputs.ledger import read_ledger
from rules.program import load_program
from tests.support.flowrun import decisions, run_in_month, runs
from tests.support.rulecases import rrn_for

pytestmark = [pytest.mark.flow, pytest.mark.slow, pytest.mark.usefixtures("prefect_backend")]

PROGRAM = "paju-birth-2025"
MONTHS = [f"2025-{m:02d}" for m in range(2, 13)] + [f"2026-{m:02d}" for m in range(1, 5)]
# person: (born, household, relation, index)
PEOPLE: dict[str, tuple[str, int, str, int]] = {
    "stay_parent": ("1990-05-01", 1, "본인", 1),
    "stay_child": ("2025-01-10", 1, "자녀", 2),
    "second_parent": ("1988-03-03", 2, "본인", 3),
    "second_elder": ("2022-06-06", 2, "자녀", 4),
    "second_child": ("2025-03-05", 2, "자녀", 5),
    "moved_parent": ("1992-07-07", 3, "본인", 6),
    "moved_child": ("2025-01-20", 3, "자녀", 7),
    "rehoused_parent": ("1995-09-09", 4, "본인", 8),
    "rehoused_child": ("2025-03-25", 4, "자녀", 9),
    "grandparent": ("1960-01-01", 5, "본인", 10),
    "lost_parent": ("1985-11-11", 6, "본인", 11),
    "lost_child": ("2025-01-25", 6, "자녀", 12),
}
# month -> [(child, applicant, day)]
APPLICATIONS = {
    "2025-02": [
        ("stay_child", "stay_parent", 3),
        ("moved_child", "moved_parent", 4),
        ("lost_child", "lost_parent", 4),
    ],
    "2025-04": [("second_child", "second_parent", 2), ("rehoused_child", "rehoused_parent", 8)],
    "2026-02": [("stay_child", "stay_parent", 5), ("moved_child", "moved_parent", 5)],
    "2026-03": [("second_child", "second_parent", 3)],
    "2026-04": [("rehoused_child", "rehoused_parent", 6), ("second_child", "second_parent", 7)],
}


def rrn(person: str) -> str:
    born, _, _, index = PEOPLE[person]
    return rrn_for(dt.date.fromisoformat(born), index, foreign=False, female=False)


def snapshot(month: str) -> pl.DataFrame:
    """The registry extract of `month`: the people born by then, moves applied."""
    as_of = dt.date.fromisoformat(f"{month}-01")
    admin = sorted(load_program(PROGRAM).admin_codes())[0]
    rows: list[dict[str, Any]] = []
    for person, (born, household, relation, _) in PEOPLE.items():
        birth = dt.date.fromisoformat(born)
        if birth >= as_of or (person.startswith("moved") and month >= "2025-09"):
            continue
        status = "거주불명" if person == "lost_child" and month >= "2025-10" else "거주"
        if person == "rehoused_child" and month >= "2025-12":
            household = 5
        rows.append(
            {
                "rrn": rrn(person),
                "name": f"홍{person[:2]}",
                "birth_date": born,
                "household_id": str(1000 + household),
                "relation": relation,
                "admin_code": admin,
                "address": "경기도 파주시 시청로 1",
                "registered_on": max(birth, dt.date(2000, 1, 1)).isoformat(),
                "status": status,
                "nationality": "내국인",
                "visa_type": None,
                "status_changed_on": "2025-09-20" if status != "거주" else None,
                "as_of": as_of.isoformat(),
            }
        )
    return pl.DataFrame(rows, schema={k: pl.String for k in rows[0]})


def applications(month: str) -> pl.DataFrame:
    columns = ["application_id", "applied_at", "rrn", "applicant_rrn", "channel", "payout"]
    columns += ["card_id", "bank_code", "account_no", "account_holder"]
    rows = [
        {
            "application_id": f"APP{month.replace('-', '')}{i}",
            "applied_at": f"{month}-{day:02d}T10:00:00",
            "rrn": rrn(child),
            "applicant_rrn": rrn(applicant),
            "channel": "online",
            "payout": "local_currency",
            "card_id": f"{9400000000000000 + PEOPLE[applicant][3]}",
            "bank_code": None,
            "account_no": None,
            "account_holder": None,
        }
        for i, (child, applicant, day) in enumerate(APPLICATIONS.get(month, []), start=1)
    ]
    return pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.String))


def test_a_year_of_monthly_runs_pays_each_birth_fund_instalment_exactly_once(
    tmp_path: Path, pii_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    # Applications accumulate in one folder; each run skips the files earlier runs consumed.
    enrollments = tmp_path / "enrollments"
    enrollments.mkdir()
    for month in MONTHS:
        data = tmp_path / month
        (data / "registry").mkdir(parents=True)
        snapshot(month).write_csv(data / "registry/registry.csv")
        if month in APPLICATIONS:
            applications(month).write_csv(enrollments / f"enrollment-{month}.csv")
        summary = run_in_month(
            monkeypatch, data, out, month, program=PROGRAM, enrollments=enrollments
        )
        assert summary.status == "committed", month

    records = decisions(out)
    # Every input row of every run has exactly one decision record.
    inputs = runs(out)["inputs"].explode().struct.unnest()
    counted = inputs.filter(
        pl.col("kind").is_in(["registry", "enrollment"]), pl.col("skipped_by_run").is_null()
    )
    assert records.height == counted["rows"].sum()

    keys = read_ledger(out, PROGRAM).paid
    registry = records.filter(pl.col("source_kind") == "registry")
    paid = registry.filter(pl.col("outcome") == "PAID")
    assert registry["person_key"].n_unique() == len(PEOPLE)
    rrn_key = dict(
        pl.DataFrame({"person": list(PEOPLE), "rrn": [rrn(p) for p in PEOPLE]})
        .select("person", keyed("rrn", pii_key))
        .iter_rows()
    )
    got = {
        (person, row["instalment"], row["run_month"], row["amount_krw"])
        for row in paid.iter_rows(named=True)
        for person, key in rrn_key.items()
        if key == row["person_key"]
    }
    assert got == {
        ("stay_child", 1, "2025-02", 100_000),
        ("moved_child", 1, "2025-02", 100_000),
        ("lost_child", 1, "2025-02", 100_000),
        ("second_child", 1, "2025-04", 300_000),
        ("rehoused_child", 1, "2025-04", 100_000),
        ("stay_child", 2, "2026-02", 900_000),
        ("second_child", 2, "2026-04", 1_700_000),
    }
    # Exactly once: one PAID registry row (and one payment id) per person and instalment.
    assert paid.group_by("person_key", "instalment").len()["len"].max() == 1
    assert paid["payment_id"].n_unique() == paid.height == keys.height
    assert (
        records.filter(pl.col("outcome") == "PAID", pl.col("source_kind") == "enrollment").height
        == paid.height
    )

    def row(person: str, month: str, kind: str = "registry") -> dict[str, Any]:
        found = records.filter(
            pl.col("person_key") == rrn_key[person],
            pl.col("run_month") == month,
            pl.col("source_kind") == kind,
        )
        assert found.height == 1, (person, month, kind)
        return found.row(0, named=True)

    # Paid, waiting for the second instalment: ALREADY_PAID with the reason it is not due yet.
    waiting = row("stay_child", "2025-08")
    assert (waiting["outcome"], waiting["instalment"]) == ("ALREADY_PAID", 1)
    assert waiting["reason_codes"] == ["PAID_IN_EARLIER_RUN", "NEXT_INSTALMENT_NOT_DUE"]
    # Both instalments paid: ALREADY_PAID for the second, nothing more to wait for.
    done = row("stay_child", "2026-04")
    assert (done["outcome"], done["instalment"], done["reason_codes"]) == (
        "ALREADY_PAID",
        2,
        ["PAID_IN_EARLIER_RUN"],
    )
    # No longer registered as living in Paju: the due instalment's check fails.
    lost = row("lost_child", "2026-02")
    assert (lost["outcome"], lost["instalment"], lost["rule_id"]) == (
        "INELIGIBLE",
        2,
        "instalment.registered_in_city",
    )
    assert lost["reason_codes"] == ["INSTALMENT_CONDITION_FAILED", "STATUS_NOT_ELIGIBLE"]
    moved = row("moved_child", "2026-02", "enrollment")
    assert (moved["outcome"], moved["instalment"], moved["rule_id"], moved["amount_krw"]) == (
        "INELIGIBLE",
        2,
        "instalment.registered_in_city",
        0,
    )
    assert moved["reason_codes"] == ["INSTALMENT_CONDITION_FAILED", "BENEFICIARY_NOT_IN_REGISTRY"]
    assert records.filter(
        pl.col("person_key") == rrn_key["moved_child"], pl.col("run_month") >= "2025-09"
    )["source_kind"].to_list() == ["enrollment"]
    # The child now lives in another household than the parent who applies.
    rehoused = row("rehoused_child", "2026-04", "enrollment")
    assert (rehoused["outcome"], rehoused["instalment"], rehoused["rule_id"]) == (
        "INELIGIBLE",
        2,
        "instalment.same_household_as_applicant",
    )
    assert rehoused["reason_codes"] == ["INSTALMENT_CONDITION_FAILED", "CARER_NOT_IN_HOUSEHOLD"]
    # Due, but no valid application: the registry row waits, unpaid, for instalment 2.
    assert (
        row("rehoused_child", "2026-04")["outcome"],
        row("rehoused_child", "2026-04")["instalment"],
    ) == ("UNENROLLED", 2)
    # Applied a month early (paid 2025-04, due 2026-04): not paid, told why.
    early = row("second_child", "2026-03", "enrollment")
    assert (early["outcome"], early["instalment"], early["reason_codes"]) == (
        "ALREADY_PAID",
        1,
        ["BENEFICIARY_ALREADY_PAID", "NEXT_INSTALMENT_NOT_DUE"],
    )
    # The elder sibling (born 2022) is never paid, and the second child's tiers follow birth order.
    assert row("second_elder", "2026-03")["outcome"] == "INELIGIBLE"
    assert verify_trail(out) == ([], len(MONTHS))
