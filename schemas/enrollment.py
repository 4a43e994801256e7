"""pandera schema of a normalised enrollment row (신청 자료), one check per reason code."""

from __future__ import annotations

from typing import Any

import pandera.polars as pa
import polars as pl

from schemas._check import digits, rule, text

LOCAL = pl.col("payout") == "local_currency"
BANK = pl.col("payout") == "bank"


def enrollment_schema(bank_codes: frozenset[str], vocabulary: dict[str, Any]) -> pa.DataFrameSchema:
    """Return the enrollment row schema for the bank code list and the vocabularies."""
    rrn_ok = digits("rrn", 13)
    return pa.DataFrameSchema(
        name="EnrollmentRow",
        columns={
            "application_id": text(
                "신청번호, unique per application",
                rule("APPLICATION_ID_BLANK", pl.col("application_id").is_not_null(), "not blank"),
                rule(
                    "APPLICATION_ID_REPEATED",
                    pl.col("application_id").is_null()
                    | pl.col("application_id").is_first_distinct(),
                    "not repeated from an earlier row",
                ),
            ),
            "applied_at": text(
                "신청일시, ISO 8601 (Asia/Seoul when no offset)",
                rule("APPLIED_AT_INVALID", pl.col("p_applied_at").is_not_null(), "a timestamp"),
            ),
            "rrn": text(
                "대상자 주민등록번호 (beneficiary)",
                rule("RRN_FORMAT", rrn_ok, "13 digits"),
                rule(
                    "RRN_DATE_INVALID",
                    ~rrn_ok | pl.col("p_rrn_birth").is_not_null(),
                    "digits 1-6 form a real date",
                ),
            ),
            "applicant_rrn": text(
                "신청인 주민등록번호 (who applied)",
                rule("APPLICANT_RRN_FORMAT", digits("applicant_rrn", 13), "13 digits"),
            ),
            "channel": text(
                "신청경로: online or office",
                rule(
                    "CHANNEL_UNKNOWN",
                    pl.col("channel").is_in(vocabulary["channels"]),
                    "online or office",
                ),
            ),
            "payout": text(
                "지급수단: local_currency or bank",
                rule(
                    "PAYOUT_UNKNOWN",
                    pl.col("payout").is_in(vocabulary["payouts"]),
                    "local_currency or bank",
                ),
            ),
            "card_id": text(
                "지역화폐 카드번호, 16 digits, for local_currency",
                rule("CARD_ID_INVALID", ~LOCAL | digits("card_id", 16), "16 digits"),
            ),
            "bank_code": text(
                "은행코드, 3 digits from the bank table, for bank",
                rule(
                    "BANK_CODE_UNKNOWN",
                    ~BANK | pl.col("bank_code").is_in(sorted(bank_codes)),
                    "a known bank code",
                ),
            ),
            "account_no": text(
                "계좌번호, 10-14 digits after removing hyphens, for bank",
                rule(
                    "ACCOUNT_NO_INVALID",
                    ~BANK | pl.col("account_no").str.contains(r"^\d{10,14}$"),
                    "10-14 digits",
                ),
            ),
            "account_holder": text(
                "예금주, for bank",
                rule(
                    "ACCOUNT_HOLDER_BLANK",
                    ~BANK | pl.col("account_holder").is_not_null(),
                    "not blank",
                ),
            ),
            "p_rrn_birth": pa.Column(
                pl.Date, nullable=True, description="birth date encoded in the RRN"
            ),
            "p_applied_at": pa.Column(
                pl.Datetime("us", "Asia/Seoul"), nullable=True, description="parsed applied_at"
            ),
        },
        strict=False,
    )
