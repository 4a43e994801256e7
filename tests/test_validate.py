"""Row checks quarantine with reason codes; file-level gates reject the delivery."""

from __future__ import annotations

import polars as pl
import pytest

from flows.checks import validate
from flows.errors import InputRejected, RunHalted
from tests.support.frames import (
    application,
    checked_enrollment,
    checked_registry,
    delivery,
    person,
    rrn,
)

GOOD = rrn("750312", "1")


def reasons(frame: pl.DataFrame) -> list[list[str]]:
    return frame["reason_codes"].to_list()


def test_normalise_accepts_full_width_digits_hyphens_and_spaces() -> None:
    fancy = "".join(chr(0xFF10 + int(c)) for c in GOOD[:6]) + "－" + GOOD[6:]
    frame = checked_registry([person(f"  {fancy} ", birth_date=" 1975-03-12")])
    assert frame["rrn"].to_list() == [GOOD]
    assert reasons(frame) == [[]]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"rrn": GOOD[:12]}, "RRN_FORMAT"),
        ({"rrn": "7502301" + GOOD[7:]}, "RRN_DATE_INVALID"),
        ({"birth_date": "1975-03-13"}, "RRN_BIRTH_DATE_MISMATCH"),
        ({"birth_date": "2075-03-12"}, "RRN_BIRTH_DATE_MISMATCH"),
        ({"birth_date": "1975-02-30"}, "BIRTH_DATE_INVALID"),
        ({"nationality": "외국인", "visa_type": "F-5"}, "RRN_NATIONALITY_MISMATCH"),
        ({"nationality": "미국"}, "NATIONALITY_UNKNOWN"),
        ({"name": "  "}, "NAME_BLANK"),
        ({"name": "가" * 51}, "NAME_TOO_LONG"),
        ({"household_id": "H-1"}, "HOUSEHOLD_ID_INVALID"),
        ({"relation": "친구"}, "RELATION_UNKNOWN"),
        ({"admin_code": "1168010100"}, "ADMIN_CODE_UNKNOWN"),
        ({"registered_on": "2024-12-27"}, "REGISTERED_AFTER_AS_OF"),
        ({"registered_on": "어제"}, "REGISTERED_ON_INVALID"),
        ({"status": "이사"}, "STATUS_UNKNOWN"),
        ({"visa_type": "F-5"}, "VISA_TYPE_INCONSISTENT"),
        ({"status_changed_on": "2024-13-01"}, "STATUS_CHANGED_ON_INVALID"),
    ],
)
def test_registry_row_check_quarantines_with_its_reason(change: dict[str, str], code: str) -> None:
    frame = checked_registry([person(GOOD), person(rrn("800101", "2"), **change)])
    assert reasons(frame) == [[], [code]]
    assert frame["quarantined"].to_list() == [False, True]


def test_registry_accepts_yyyymmdd_dates_and_notes_checksum_as_warning_only() -> None:
    bad_check = GOOD[:12] + str((int(GOOD[12]) + 1) % 10)
    frame = checked_registry([person(bad_check, birth_date="19750312")])
    assert reasons(frame) == [[]]
    assert frame["warning_codes"].to_list() == [["RRN_CHECKSUM_MISMATCH"]]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"application_id": None}, "APPLICATION_ID_BLANK"),
        ({"applied_at": "2025-02-30T10:00:00"}, "APPLIED_AT_INVALID"),
        ({"rrn": "12345"}, "RRN_FORMAT"),
        ({"applicant_rrn": "x"}, "APPLICANT_RRN_FORMAT"),
        ({"channel": "fax"}, "CHANNEL_UNKNOWN"),
        ({"payout": "cash"}, "PAYOUT_UNKNOWN"),
        ({"card_id": "941000000000001"}, "CARD_ID_INVALID"),
        (
            {
                "payout": "bank",
                "card_id": None,
                "bank_code": "999",
                "account_no": "1234567890",
                "account_holder": "김민수",
            },
            "BANK_CODE_UNKNOWN",
        ),
        (
            {
                "payout": "bank",
                "card_id": None,
                "bank_code": "004",
                "account_no": "123",
                "account_holder": "김민수",
            },
            "ACCOUNT_NO_INVALID",
        ),
        (
            {
                "payout": "bank",
                "card_id": None,
                "bank_code": "004",
                "account_no": "123-456-7890",
                "account_holder": None,
            },
            "ACCOUNT_HOLDER_BLANK",
        ),
    ],
)
def test_enrollment_row_check_quarantines_with_its_reason(
    change: dict[str, str], code: str
) -> None:
    frame = checked_enrollment([application("A1", GOOD), application("A2", GOOD, **change)])
    assert reasons(frame) == [[], [code]]


def test_enrollment_repeated_application_id_quarantines_the_later_row() -> None:
    frame = checked_enrollment([application("A1", GOOD), application("A1", GOOD)])
    assert reasons(frame) == [[], ["APPLICATION_ID_REPEATED"]]


def test_registry_with_mixed_as_of_is_rejected_naming_the_file() -> None:
    rows = [person(GOOD), person(rrn("800101", "2"), as_of="2024-12-27")]
    with pytest.raises(InputRejected, match=r"f\.csv: as_of \(기준일\) must be one date"):
        checked_registry(rows)


def test_registry_snapshot_of_another_date_is_rejected() -> None:
    with pytest.raises(InputRejected, match="as_of 2025-01-31 is not equal to the program's"):
        checked_registry([person(GOOD, as_of="2025-01-31")])


def test_quarantine_rate_above_threshold_halts_the_run() -> None:
    rows = [person(rrn("800101", "1", f"{i:05d}")) for i in range(99)] + [person("1")]
    frame = checked_registry(rows)
    validate.check_quarantine_rate(delivery("registry", rows), frame, 0.01)  # 1 % is allowed
    rows.append(person("2"))
    frame = checked_registry(rows)
    with pytest.raises(RunHalted, match=r"2 of 101 registry rows \(1\.98%\)"):
        validate.check_quarantine_rate(delivery("registry", rows), frame, 0.01)


def test_timestamps_parse_as_the_three_pass_parser_did_in_every_form() -> None:
    """The one-pass parse (issue 16) gives every form the value the three full passes gave."""

    def three_passes(column: str) -> pl.Expr:  # the parser before issue 16, kept as the oracle
        naive = pl.col(column).str.replace("T", " ").str.replace(r"\.\d+$", "")
        offset = pl.col(column).str.replace("Z$", "+00:00").str.replace(r"\.\d+([+-])", "$1")
        return pl.coalesce(
            naive.str.to_datetime(
                "%Y-%m-%d %H:%M:%S", strict=False, time_unit="us"
            ).dt.replace_time_zone("Asia/Seoul"),
            naive.str.to_datetime(
                "%Y-%m-%d %H:%M", strict=False, time_unit="us"
            ).dt.replace_time_zone("Asia/Seoul"),
            offset.str.to_datetime(
                "%Y-%m-%dT%H:%M:%S%:z", strict=False, time_unit="us"
            ).dt.convert_time_zone("Asia/Seoul"),
        )

    forms = [
        "2025-01-16T09:12:40", "2025-01-16 09:12:40", "2025-01-16T09:12", "2025-01-16 09:12",
        "2025-01-16T09:12:40.123", "2025-01-16T09:12:40+09:00", "2025-01-16T00:12:40Z",
        "2025-01-16T09:12:40.5+00:00", "2025-01-16T09:12:40.5Z", "2025-01-16T09:12:40-05:30",
        "2025-01-16 09:12:40.77", "2025-02-30T09:12:40", "2025-01-16T25:00:00", "20250116",
        "garbage", "", "T", "2025-01-16TT09:12:40", None,
    ]  # fmt: skip
    frame = pl.DataFrame({"applied_at": forms}, schema={"applied_at": pl.String})
    got = frame.select(now=validate.parse_timestamp("applied_at"), then=three_passes("applied_at"))
    assert got["now"].to_list() == got["then"].to_list()
    assert got["now"].null_count() < len(forms) // 2  # the forms above mostly parse
