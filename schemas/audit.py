"""pandera schema of the audit trail's decision records, the columns auditors query.

Each column's description is `English | 한국어`; `docs/audit.md` is generated from it. The checks
are the trail's invariants: a written trail that breaks one is a bug, so writing fails.
"""

from __future__ import annotations

from typing import Any

import pandera.polars as pa
import polars as pl

from flows.decide.codes import OUTCOMES
from schemas._check import rule

SCHEMA_VERSION = "1"
PAID = pl.col("outcome") == "PAID"
# Every rule that can decide an outcome (docs/programs.md, "Which rule decided").
RULE_ID = (
    r"^(validate\.row|dedup\.(record|application)|match\.registry|unit\.household"
    r"|eligibility\.(status|registered_on|population|beneficiary|condition\.[a-z0-9-]+)"
    r"|amount\.instalment_\d+|ledger\.already_paid|application\.(proxy|window|payout|none)"
    r"|instalment\.(registered_in_city|same_household_as_applicant|new_application)"
    r"|payment\.(paid|details_rejected|owed_again)|review\.(approved|rejected))$"
)


def _col(dtype: Any, en: str, ko: str, *checks: pa.Check, nullable: bool = True) -> pa.Column:
    return pa.Column(dtype, checks=list(checks), nullable=nullable, description=f"{en} | {ko}")


DECISION_COLUMNS: dict[str, pa.Column] = {
    "run_id": _col(pl.String, "run that decided the row", "결정한 실행 ID", nullable=False),
    "program": _col(pl.String, "program id", "사업 ID", nullable=False),
    "run_month": _col(
        pl.String, "month of the run, YYYY-MM (Asia/Seoul)", "실행 월", nullable=False
    ),
    "person_key": _col(
        pl.String,
        "HMAC-SHA256 of the RRN with the deployment key (join runs on it)",
        "주민등록번호의 HMAC-SHA256 (실행 간 결합 키)",
    ),
    "rrn_masked": _col(
        pl.String,
        "RRN with all but birth date and sex digit masked",
        "마스킹된 주민등록번호 (900101-1******)",
    ),
    "name_masked": _col(pl.String, "name with the middle masked", "마스킹된 성명 (김*수)"),
    "household_key": _col(pl.String, "HMAC-SHA256 of the household id", "세대번호의 HMAC-SHA256"),
    "admin_code": _col(pl.String, "administrative dong code", "행정동코드"),
    "source_kind": _col(
        pl.String,
        "registry or enrollment",
        "입력 종류 (주민등록/신청)",
        rule(
            "SOURCE_KIND",
            pl.col("source_kind").is_in(["registry", "enrollment"]),
            "registry or enrollment",
        ),
        nullable=False,
    ),
    "source_file": _col(
        pl.String, "file name within its delivery folder", "입력 파일명", nullable=False
    ),
    "source_sha256": _col(
        pl.String, "SHA-256 of the input file", "입력 파일의 SHA-256", nullable=False
    ),
    "source_row": _col(
        pl.Int64,
        "1-based data record number in the file (header not counted)",
        "파일 내 데이터 행 번호 (1부터, 머리글 제외)",
        nullable=False,
    ),
    "application_id": _col(pl.String, "application id (enrollment rows)", "신청번호"),
    "outcome": _col(
        pl.String,
        "the row's one outcome",
        "결과",
        rule("OUTCOME", pl.col("outcome").is_in(list(OUTCOMES)), "a known outcome"),
        nullable=False,
    ),
    "reason_codes": _col(pl.List(pl.String), "why (docs/codes.md)", "사유 코드", nullable=False),
    "warning_codes": _col(
        pl.List(pl.String), "noted, not blocking (docs/codes.md)", "경고 코드", nullable=False
    ),
    "rule_id": _col(
        pl.String,
        "the rule that decided the outcome (docs/programs.md lists them)",
        "결과를 정한 규칙",
        rule("RULE_ID_KNOWN", pl.col("rule_id").str.contains(RULE_ID), "a known rule id"),
        nullable=False,
    ),
    "duplicate_of": _col(
        pl.String,
        "the kept row (file:row) or application id of a duplicate",
        "중복일 때 채택된 행 또는 신청번호",
    ),
    "population": _col(pl.String, "program population the person belongs to", "대상 구분"),
    "amount_krw": _col(
        pl.Int64,
        "won paid by this row's outcome (0 unless PAID)",
        "이 행으로 지급한 금액(원)",
        rule(
            "AMOUNT_ONLY_WHEN_PAID",
            PAID.not_() & (pl.col("amount_krw") == 0) | PAID & (pl.col("amount_krw") > 0),
            "positive exactly when PAID",
        ),
        nullable=False,
    ),
    "instalment": _col(pl.Int64, "instalment number", "회차", nullable=False),
    "payout": _col(pl.String, "payout channel of a payment", "지급수단"),
    "payment_id": _col(
        pl.String,
        "stable id of (program, person, instalment)",
        "지급 ID",
        rule(
            "PAYMENT_ID_WHEN_PAID",
            pl.col("payment_id").is_not_null() == PAID,
            "present exactly when PAID",
        ),
    ),
    "attempt": _col(
        pl.Int64,
        "attempt number of the payment (1, 2, ... for re-issues); instruction id is "
        "<payment_id>-<attempt>",
        "지급 시도 번호 (재지급이면 2 이상)",
        rule(
            "ATTEMPT_WHEN_PAID",
            (pl.col("attempt").is_not_null() == PAID) & (pl.col("attempt").fill_null(1) >= 1),
            "present exactly when PAID, from 1",
        ),
    ),
    "reissue_of": _col(
        pl.String,
        "instruction id of the failed attempt this payment re-issues (null unless a re-issue)",
        "재지급이면 거절·반환된 이전 시도의 지시 ID",
        rule(
            "REISSUE_ONLY_WHEN_PAID_AGAIN",
            pl.col("reissue_of").is_null() | (PAID & (pl.col("attempt") > 1)),
            "only on a PAID row of attempt 2 or later",
        ),
    ),
    "payment_file": _col(pl.String, "payment file that carries the payment", "지급 파일명"),
    "bank_code": _col(
        pl.String, "payee's bank code of a bank payout (rules/banks.csv)", "지급 은행코드"
    ),
    "account_key": _col(
        pl.String,
        "HMAC-SHA256 of bank code and account number with the deployment key (never the number)",
        "은행코드·계좌번호의 HMAC-SHA256 (계좌번호 원문은 기록하지 않음)",
        rule(
            "ACCOUNT_ONLY_WHEN_BANK",
            pl.col("account_key").is_null() | (pl.col("payout") == "bank"),
            "only on bank payouts",
        ),
    ),
    "account_last4": _col(
        pl.String,
        "last four digits of the account number of a bank payout",
        "계좌번호 끝 4자리",
        rule(
            "ACCOUNT_LAST4_FORMAT",
            pl.col("account_last4").is_null() | pl.col("account_last4").str.contains(r"^\d{4}$"),
            "four digits",
        ),
    ),
    "card_key": _col(
        pl.String,
        "HMAC-SHA256 of the card id of a local-currency payout with the deployment key "
        "(never the card id)",
        "지역화폐 카드번호의 HMAC-SHA256 (카드번호 원문은 기록하지 않음)",
        rule(
            "CARD_ONLY_WHEN_LOCAL_CURRENCY",
            pl.col("card_key").is_null() | (pl.col("payout") == "local_currency"),
            "only on local-currency payouts",
        ),
    ),
    "rule_set_id": _col(pl.String, "program rule set", "규칙 세트 ID", nullable=False),
    "rule_set_sha256": _col(
        pl.String, "SHA-256 of the program file", "규칙 파일의 SHA-256", nullable=False
    ),
    "decided_at": _col(
        pl.Datetime("us", "UTC"), "when the run decided (UTC)", "결정 시각 (UTC)", nullable=False
    ),
}

DECISION_SCHEMA = pa.DataFrameSchema(
    DECISION_COLUMNS, name="DecisionRecord", strict=True, ordered=True
)
