"""pandera schema of a normalised registry row (주민등록 전산자료), with one check per reason code.

Inputs are strings normalised by `flows.checks.validate`; the `p_*` columns are the parsed
values the checks compare (null where a value did not parse). Each check's name is the reason
code a failing row is quarantined with (flows/decide/codes.py holds the descriptions).
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas._check import digits, rule, text

RRN_OK = digits("rrn", 13)
FOREIGN_DIGIT7 = pl.col("rrn").str.slice(6, 1).is_in(["5", "6", "7", "8"])


def registry_schema(
    admin_codes: frozenset[str],
    vocabulary: dict[str, list[str]],
    admin_code_prefixes: frozenset[str] = frozenset(),
) -> pa.DataFrameSchema:
    """Return the registry row schema for a city's administrative codes and the vocabularies.

    A nationwide program passes no city codes but the 시도 prefixes it accepts: then any
    10-digit code starting with one of them is known.
    """
    admin_known = pl.col("admin_code").is_in(sorted(admin_codes)) | (
        digits("admin_code", 10)
        & pl.col("admin_code").str.slice(0, 2).is_in(sorted(admin_code_prefixes))
    )
    nationality_known = pl.col("nationality").is_in(vocabulary["nationalities"])
    foreigner = pl.col("nationality") == "외국인"
    return pa.DataFrameSchema(
        name="RegistryRow",
        columns={
            "rrn": text(
                "주민등록번호/외국인등록번호, 13 digits after normalisation",
                rule("RRN_FORMAT", RRN_OK, "13 digits"),
                rule(
                    "RRN_DATE_INVALID",
                    ~RRN_OK | pl.col("p_rrn_birth").is_not_null(),
                    "digits 1-6 and the century of digit 7 form a real date",
                ),
            ),
            "name": text(
                "성명, 1-50 characters",
                rule("NAME_BLANK", pl.col("name").is_not_null(), "not blank"),
                rule(
                    "NAME_TOO_LONG",
                    pl.col("name").is_null() | (pl.col("name").str.len_chars() <= 50),
                    "at most 50 characters",
                ),
            ),
            "birth_date": text(
                "생년월일, ISO date (YYYY-MM-DD or YYYYMMDD)",
                rule("BIRTH_DATE_INVALID", pl.col("p_birth_date").is_not_null(), "a date"),
                rule(
                    "RRN_BIRTH_DATE_MISMATCH",
                    pl.col("p_rrn_birth").is_null()
                    | pl.col("p_birth_date").is_null()
                    | (pl.col("p_rrn_birth") == pl.col("p_birth_date")),
                    "agrees with the RRN's date and century",
                ),
            ),
            "household_id": text(
                "세대번호, digits shared by the household's members",
                rule(
                    "HOUSEHOLD_ID_INVALID",
                    pl.col("household_id").str.contains(r"^\d+$"),
                    "digits, not blank",
                ),
            ),
            "relation": text(
                "세대주관계: 본인 is the household head",
                rule(
                    "RELATION_UNKNOWN",
                    pl.col("relation").is_in(vocabulary["relations"]),
                    "a known relation",
                ),
            ),
            "admin_code": text(
                "행정동코드, 10 digits, one of the city's codes",
                rule(
                    "ADMIN_CODE_UNKNOWN",
                    admin_known,
                    "one of the city's administrative codes",
                ),
            ),
            "address": text("주소, may be blank for 거주불명"),
            "registered_on": text(
                "전입일자, date of moving into the current address",
                rule("REGISTERED_ON_INVALID", pl.col("p_registered_on").is_not_null(), "a date"),
                rule(
                    "REGISTERED_AFTER_AS_OF",
                    pl.col("p_registered_on").is_null()
                    | (pl.col("p_registered_on") <= pl.col("p_as_of")),
                    "not after the snapshot's as_of",
                ),
            ),
            "status": text(
                "거주상태: 거주, 거주불명, 재외국민, 사망, 말소",
                rule(
                    "STATUS_UNKNOWN",
                    pl.col("status").is_in(vocabulary["statuses"]),
                    "a known status",
                ),
            ),
            "nationality": text(
                "내외국인: 내국인 or 외국인, agreeing with RRN digit 7",
                rule("NATIONALITY_UNKNOWN", nationality_known, "내국인 or 외국인"),
                rule(
                    "RRN_NATIONALITY_MISMATCH",
                    ~RRN_OK | ~nationality_known | (foreigner == FOREIGN_DIGIT7),
                    "digit 7 is 5-8 exactly for foreigners",
                ),
            ),
            "visa_type": text(
                "체류자격, foreigners only",
                rule(
                    "VISA_TYPE_INCONSISTENT",
                    ~nationality_known | (foreigner == pl.col("visa_type").is_not_null()),
                    "present for foreigners, blank for Koreans",
                ),
            ),
            "status_changed_on": text(
                "변동일자, optional date of death, cancellation or moving out",
                rule(
                    "STATUS_CHANGED_ON_INVALID",
                    pl.col("status_changed_on").is_null()
                    | pl.col("p_status_changed_on").is_not_null(),
                    "blank or a date",
                ),
            ),
            "as_of": text("기준일, the date the snapshot describes"),
            "p_rrn_birth": pa.Column(
                pl.Date, nullable=True, description="birth date encoded in the RRN"
            ),
            "p_birth_date": pa.Column(pl.Date, nullable=True, description="parsed birth_date"),
            "p_registered_on": pa.Column(
                pl.Date, nullable=True, description="parsed registered_on"
            ),
            "p_status_changed_on": pa.Column(
                pl.Date, nullable=True, description="parsed status_changed_on"
            ),
            "p_as_of": pa.Column(pl.Date, nullable=True, description="parsed as_of"),
        },
        strict=False,
    )
