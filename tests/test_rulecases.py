"""The rule-case plugin itself: a wrong expectation fails, and batching changes no decision."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from rules.program import load_program
from tests.support.rulecases import CaseError, check, merge_cases, run_case, validate_case

PROGRAMS = Path(__file__).resolve().parents[1] / "rules/programs"
COLUMNS = ["person", "outcome", "amount_krw", "reason_codes", "rule_id"]


def cases(program: str, file: str) -> list[dict]:
    return yaml.safe_load((PROGRAMS / program / "tests" / file).read_text())["cases"]


def test_a_wrong_expected_amount_fails_the_case_saying_what_was_got() -> None:
    case = cases("paju-livelihood-2025", "eligibility.yaml")[0]
    decided = run_case(case, load_program("paju-livelihood-2025"), "eligibility.yaml")
    check(decided["registry"], "kim", {"outcome": "PAID", "amount": 100_000}, "x")
    with pytest.raises(AssertionError, match=r"kim: got \{'outcome': 'PAID', 'amount': 100000"):
        check(decided["registry"], "kim", {"outcome": "PAID", "amount": 99_999}, "x")


def test_a_case_naming_someone_not_in_its_registry_is_an_error() -> None:
    case = {"name": "x", "registry": [{"person": "a"}], "enrollments": [{"person": "b"}]}
    with pytest.raises(CaseError, match="person 'b' is not in the case's registry rows"):
        validate_case(case, "f.yaml: x")


@pytest.mark.parametrize(
    ("program", "file"),
    [("paju-livelihood-2025", "proxies.yaml"), ("paju-energy-2023", "household.yaml")],
)
def test_cases_run_together_decide_exactly_as_each_would_alone(program: str, file: str) -> None:
    loaded = load_program(program)
    batch = list(enumerate(cases(program, file)))
    together = run_case(merge_cases(batch), loaded, file)
    for n, case in batch:
        alone = run_case(case, loaded, file)
        for kind in ("registry", "enrollment"):
            mine = (
                together[kind]
                .filter(pl.col("person").str.starts_with(f"{n}:"))
                .with_columns(pl.col("person").str.replace(r"^\d+:", ""))
                .select(COLUMNS)
                .sort("person", "outcome")
            )
            assert (
                mine.to_dicts() == alone[kind].select(COLUMNS).sort("person", "outcome").to_dicts()
            ), f"{file}: case {n} ({case['name']}) differs in {kind}"
