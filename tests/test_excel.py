"""Spreadsheet damage refuses the file; a typo of the same shape only quarantines its row."""

from __future__ import annotations

import polars as pl
import pytest

from flows.checks import validate
from flows.errors import InputRejected, masked_value
from rules.reference import bank_codes, vocabulary
from schemas.enrollment import enrollment_schema
from tests.support.frames import application, checked_registry, delivery, person, rrn

BORN_2005 = rrn("050505", "4", "34567")  # starts with 0
ADULT = rrn("750312", "1")


def check_enrollments(*files: list[dict[str, str]]) -> pl.DataFrame:
    frames = [delivery("enrollment", rows, f"e{i}.csv").frame for i, rows in enumerate(files)]
    joined = delivery("enrollment", [])
    joined.frame = pl.concat(frames)
    return validate.validate_enrollments(joined, enrollment_schema(bank_codes(), vocabulary()))[0]


def test_enrollment_rrn_without_its_zero_is_refused_when_no_rrn_of_the_file_kept_one() -> None:
    with pytest.raises(InputRejected, match=r"e0\.csv, row 2: column rrn \(대상자 주민등록번호\)"):
        check_enrollments([application("A1", ADULT), application("A2", BORN_2005[1:])])


def test_the_same_shape_is_a_typo_where_the_file_kept_leading_zeros() -> None:
    other_2005 = rrn("051111", "3", "11111")
    frame = check_enrollments(
        [application("A1", other_2005), application("A2", BORN_2005[1:], applicant=ADULT)]
    )
    assert frame["reason_codes"].to_list() == [[], ["RRN_FORMAT"]]


def test_files_are_judged_one_by_one() -> None:
    with pytest.raises(InputRejected, match=r"e1\.csv, row 1"):
        check_enrollments(
            [application("A1", BORN_2005)], [application("A2", BORN_2005[1:], applicant=ADULT)]
        )


def test_a_short_bank_code_next_to_a_zero_led_one_is_only_an_unknown_bank() -> None:
    bank = {"payout": "bank", "card_id": None, "account_no": "1234567890", "account_holder": "김"}
    frame = check_enrollments(
        [
            application("A1", ADULT, **bank, bank_code="004"),
            application("A2", ADULT, **bank, bank_code="4"),
        ]
    )
    assert frame["reason_codes"].to_list() == [[], ["BANK_CODE_UNKNOWN"]]


def test_registry_rrn_typo_keeps_its_row_problem_but_a_lost_zero_refuses_the_file() -> None:
    typo = person(BORN_2005[:12], household="2", birth_date="2005-05-05")
    frame = checked_registry([person(ADULT), typo])
    assert frame["reason_codes"].to_list() == [[], ["RRN_FORMAT"]]
    lost = person(BORN_2005[1:], household="2", birth_date="2005-05-05")
    with pytest.raises(
        InputRejected, match=r"f\.csv, row 2: column rrn \(주민등록번호\) holds '505054\*{6}'"
    ):
        checked_registry([person(ADULT), lost])


@pytest.mark.parametrize(
    ("value", "shown"),
    [("5050541234567", "505054*******"), ("9.00101E+12", "9.00101E+**"), ("4", "4")],
)
def test_messages_show_at_most_six_digits_of_a_value(value: str, shown: str) -> None:
    assert masked_value(value) == shown
