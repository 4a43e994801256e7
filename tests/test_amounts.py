"""Amounts compiled to expressions: a payee whose amount the program does not define is not paid."""

from __future__ import annotations

from pathlib import Path

from rules.program import parse_program
from tests.support.rulecases import check, run_case

SENIORS = Path(__file__).parent / "programs/paju-seniors-2026/program.yaml"


def test_a_payee_with_no_amount_or_a_zero_amount_is_ineligible_naming_the_amount_rule() -> None:
    text = SENIORS.read_text(encoding="utf-8")
    text = text.replace("statuses: [거주]", "statuses: [거주, 거주불명, 재외국민]")
    text = text[: text.index("      kind: flat")] + (
        "      kind: by_value\n      attribute: status\n      values:\n"
        "        - {effective_from: 2026-01-01, by: {거주: 50000, 재외국민: 0}, reference: test}\n"
    )
    program = parse_program(text.encode(), "variant.yaml")
    case = {
        "registry": [
            {"person": "home", "born": "1950-01-01"},
            {"person": "unknown", "born": "1950-01-01", "status": "거주불명"},
            {"person": "abroad", "born": "1950-01-01", "status": "재외국민"},
        ],
        "enrollments": [
            {"person": p, "applied_on": "2026-01-05"} for p in ("home", "unknown", "abroad")
        ],
    }
    decided = run_case(case, program, "variant")
    check(decided["registry"], "home", {"outcome": "PAID", "amount": 50_000}, "variant")
    for person in ("unknown", "abroad"):
        expected = {
            "outcome": "INELIGIBLE",
            "reasons": ["AMOUNT_NOT_DEFINED"],
            "rule": "amount.instalment_1",
        }
        check(decided["registry"], person, expected, "variant")
        check(
            decided["enrollment"],
            person,
            {"outcome": "INELIGIBLE", "reasons": ["AMOUNT_NOT_DEFINED"]},
            "variant",
        )
