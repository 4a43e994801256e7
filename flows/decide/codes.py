"""Every outcome, reason and warning code jiwon writes, with Korean and English descriptions.

This module is the one source of truth: `docs/codes.md` is generated from it
(`jiwon docs codes`) and a test checks that the two agree. Codes are stable: never reuse one
for a different meaning; retire it instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """The one outcome every input row ends in (spec/inputs.md)."""

    PAID = "PAID"
    ALREADY_PAID = "ALREADY_PAID"
    INELIGIBLE = "INELIGIBLE"
    UNENROLLED = "UNENROLLED"
    DUPLICATE_RECORD = "DUPLICATE_RECORD"
    DUPLICATE_APPLICATION = "DUPLICATE_APPLICATION"
    UNMATCHED = "UNMATCHED"
    PROXY_NOT_ALLOWED = "PROXY_NOT_ALLOWED"
    HELD_FOR_REVIEW = "HELD_FOR_REVIEW"
    QUARANTINED = "QUARANTINED"


OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
# An application with one of these outcomes waits for something outside it (the beneficiary's
# registry row fixed or delivered, an officer's decision) and stays open: every later run that
# reads its row decides it again. Every other outcome closes it (docs/decisions/0012).
OPEN_OUTCOMES: tuple[str, ...] = (Outcome.UNMATCHED.value, Outcome.HELD_FOR_REVIEW.value)


@dataclass(frozen=True)
class Code:
    """A reason or warning code with what it means and what an operator does about it."""

    code: str
    kind: str  # "reason" or "warning"
    ko: str
    en: str
    action: str = ""


def _r(code: str, ko: str, en: str, action: str = "") -> Code:
    return Code(code, "reason", ko, en, action)


def _w(code: str, ko: str, en: str, action: str = "") -> Code:
    return Code(code, "warning", ko, en, action)


_FIX_REGISTRY = (
    "Correct the row in the registry extract and deliver it again; the next run picks it up."
)
_FIX_ENROLLMENT = "Correct the application at the community centre and deliver it again."

CODES: tuple[Code, ...] = (
    # -- row checks: registry and enrollment (QUARANTINED) ---------------------------------
    _r("RRN_FORMAT", "주민등록번호가 13자리 숫자가 아님", "RRN is not 13 digits", _FIX_REGISTRY),
    _r(
        "RRN_DATE_INVALID",
        "주민등록번호 앞 6자리가 실제 날짜가 아님",
        "RRN digits 1-6 are not a real date",
        _FIX_REGISTRY,
    ),
    _r(
        "RRN_BIRTH_DATE_MISMATCH",
        "주민등록번호와 생년월일(세기 포함)이 다름",
        "RRN date or century disagrees with birth_date",
        _FIX_REGISTRY,
    ),
    _r(
        "RRN_NATIONALITY_MISMATCH",
        "주민등록번호 7번째 자리와 내외국인 구분이 다름",
        "RRN digit 7 disagrees with nationality",
        _FIX_REGISTRY,
    ),
    _r("BIRTH_DATE_INVALID", "생년월일이 날짜가 아님", "birth_date is not a date", _FIX_REGISTRY),
    _r("NAME_BLANK", "성명이 비어 있음", "name is blank", _FIX_REGISTRY),
    _r("NAME_TOO_LONG", "성명이 50자를 넘음", "name is longer than 50 characters", _FIX_REGISTRY),
    _r(
        "HOUSEHOLD_ID_INVALID",
        "세대번호가 비었거나 숫자가 아님",
        "household_id is blank or not digits",
        _FIX_REGISTRY,
    ),
    _r(
        "RELATION_UNKNOWN",
        "세대주관계가 허용된 값이 아님",
        "relation is not a known relation",
        _FIX_REGISTRY,
    ),
    _r(
        "ADMIN_CODE_UNKNOWN",
        "행정동코드가 이 시의 코드가 아님",
        "admin_code is not one of the city's administrative codes",
        "Check the code against rules/cities/; fix the row or the code list.",
    ),
    _r(
        "REGISTERED_ON_INVALID",
        "전입일자가 날짜가 아님",
        "registered_on is not a date",
        _FIX_REGISTRY,
    ),
    _r(
        "REGISTERED_AFTER_AS_OF",
        "전입일자가 기준일보다 늦음",
        "registered_on is later than the snapshot's as_of",
        _FIX_REGISTRY,
    ),
    _r(
        "STATUS_UNKNOWN",
        "거주상태가 허용된 값이 아님",
        "status is not a known status",
        _FIX_REGISTRY,
    ),
    _r(
        "NATIONALITY_UNKNOWN",
        "내외국인 구분이 허용된 값이 아님",
        "nationality is neither 내국인 nor 외국인",
        _FIX_REGISTRY,
    ),
    _r(
        "VISA_TYPE_INCONSISTENT",
        "외국인의 체류자격이 없거나 내국인에게 체류자격이 있음",
        "a foreigner without visa_type, or a Korean with one",
        _FIX_REGISTRY,
    ),
    _r(
        "STATUS_CHANGED_ON_INVALID",
        "변동일자가 날짜가 아님",
        "status_changed_on is not a date",
        _FIX_REGISTRY,
    ),
    _r("APPLICATION_ID_BLANK", "신청번호가 비어 있음", "application_id is blank", _FIX_ENROLLMENT),
    _r(
        "APPLICATION_ID_REPEATED",
        "같은 신청번호가 이미 앞 행에 있음",
        "application_id already appeared on an earlier row",
        _FIX_ENROLLMENT,
    ),
    _r(
        "APPLIED_AT_INVALID",
        "신청일시가 날짜·시각이 아님",
        "applied_at is not a timestamp",
        _FIX_ENROLLMENT,
    ),
    _r(
        "APPLICANT_RRN_FORMAT",
        "신청인 주민등록번호가 13자리 숫자가 아님",
        "applicant_rrn is not 13 digits",
        _FIX_ENROLLMENT,
    ),
    _r(
        "CHANNEL_UNKNOWN",
        "신청경로가 online 또는 office가 아님",
        "channel is neither online nor office",
        _FIX_ENROLLMENT,
    ),
    _r(
        "PAYOUT_UNKNOWN",
        "지급수단이 local_currency 또는 bank가 아님",
        "payout is neither local_currency nor bank",
        _FIX_ENROLLMENT,
    ),
    _r(
        "CARD_ID_INVALID",
        "지역화폐 카드번호가 16자리 숫자가 아님",
        "card_id is not 16 digits",
        _FIX_ENROLLMENT,
    ),
    _r(
        "BANK_CODE_UNKNOWN",
        "은행코드가 목록에 없음",
        "bank_code is not a known bank",
        _FIX_ENROLLMENT,
    ),
    _r(
        "ACCOUNT_NO_INVALID",
        "계좌번호가 10-14자리 숫자가 아님",
        "account_no is not 10-14 digits",
        _FIX_ENROLLMENT,
    ),
    _r("ACCOUNT_HOLDER_BLANK", "예금주가 비어 있음", "account_holder is blank", _FIX_ENROLLMENT),
    # -- welfare-status extract (a bad row rejects the file) -----------------------------------
    _r(
        "WELFARE_RRN_REPEATED",
        "복지 자격 자료에 같은 주민등록번호가 두 번 이상 있음",
        "the welfare extract lists the same RRN more than once",
        "Ask the welfare office for an extract with one row per person.",
    ),
    _r(
        "WELFARE_STATUS_UNKNOWN",
        "복지 자격이 허용된 값이 아님",
        "welfare_status is not a known status (rules/vocabulary.yaml)",
        "Ask the welfare office to correct the row, or add the label to rules/vocabulary.yaml.",
    ),
    _r(
        "WELFARE_AS_OF_INVALID",
        "복지 자격 자료의 기준일이 날짜가 아님",
        "the welfare extract's as_of is not a date",
        "Ask the welfare office to correct the extract.",
    ),
    # -- decisions: registry rows ------------------------------------------------------------
    _r(
        "DUPLICATE_RRN",
        "같은 주민등록번호의 다른 행이 채택됨",
        "another row with the same RRN was kept (see duplicate_of)",
        "Ask the registry office why the person is listed twice.",
    ),
    _r(
        "STATUS_NOT_ELIGIBLE",
        "거주상태가 지원 대상이 아님 (사망·말소 등)",
        "status is not eligible for this program (deceased, cancelled, ...)",
    ),
    _r(
        "REGISTERED_AFTER_REFERENCE",
        "기준일 이후 전입",
        "moved in after the program's reference date",
    ),
    _r(
        "POPULATION_NOT_ELIGIBLE",
        "내외국인·체류자격이 지원 대상이 아님",
        "nationality or visa type is not eligible for this program",
    ),
    _r(
        "NO_VALID_APPLICATION",
        "유효한 신청이 아직 없음",
        "eligible, no valid application yet: a later run pays once one arrives",
    ),
    _r(
        "PAYMENT_OWED_AGAIN",
        "이전 지급이 은행·카드사에서 거절 또는 반환되어 다시 지급해야 함: "
        "지급 가능한 신청을 기다림",
        "an earlier payment was rejected or returned by the bank or card operator: owed again, "
        "waiting for an application whose payout details can be paid",
        "Ask the resident for a corrected account or card at the community centre and deliver "
        "the new application; the next run re-issues the payment.",
    ),
    _r(
        "APPLICATION_HELD",
        "신청이 담당자 확인 대기 중",
        "the only application waits for an officer's decision",
    ),
    _r("PAID_IN_EARLIER_RUN", "이전 실행에서 이미 지급됨", "paid by an earlier committed run"),
    _r(
        "NEXT_INSTALMENT_NOT_DUE",
        "다음 회차 지급 시기가 아직 되지 않음",
        "the next instalment is not due yet (it falls due months after an earlier one)",
    ),
    _r(
        "INSTALMENT_CONDITION_FAILED",
        "지급 시기가 된 회차의 조건(파주 거주, 보호자와 같은 세대)을 충족하지 않음",
        "fails a check the due instalment requires (still registered in the city, same household "
        "as the carer who applies); rule_id names it",
    ),
    _r(
        "CARER_NOT_IN_HOUSEHOLD",
        "신청한 보호자가 아이와 같은 세대에 거주 등록되어 있지 않음",
        "the carer applying is not registered (거주) in the child's household",
    ),
    _r(
        "APPLICATION_PAID_EARLIER_INSTALMENT",
        "이 신청으로 이미 이전 회차가 지급됨: 다음 회차는 새로 신청해야 함",
        "this application already paid an earlier instalment; the next one needs a new application",
        "Ask the carer to apply again for the instalment now due.",
    ),
    _r(
        "APPLIED_BEFORE_INSTALMENT_DUE",
        "지급 시기가 되기 전에 한 신청: 회차 지급 시기 이후에 다시 신청해야 함",
        "applied before the instalment fell due; it needs an application made on or after that day",
        "Ask the carer to apply again on or after the day the instalment fell due.",
    ),
    _r(
        "PROGRAM_CONDITION_NOT_MET",
        "사업의 지원 조건을 충족하지 않음 (rule_id의 조건 참조)",
        "fails one of the program's own conditions (rule_id names it; `jiwon programs show`)",
    ),
    _r(
        "COVERED_BY_HOUSEHOLD",
        "세대 단위 지급: 세대주에게 지급되는 세대 지원금에 포함됨",
        "a household program pays the household once, to its head; this member is covered by it",
    ),
    _r(
        "HOUSEHOLD_HEAD_NOT_PAYABLE",
        "세대 단위 지급: 세대에 지급 가능한 세대주가 없음",
        "a household program pays the head, and this household has no eligible single head",
        "Ask the registry office to check the household's head (세대주).",
    ),
    _r(
        "HOUSEHOLD_HEAD_AMBIGUOUS",
        "세대 단위 지급: 세대주(본인)가 둘 이상이라 지급하지 않음",
        "a household program cannot pay a household with more than one head (본인)",
        "Ask the registry office to correct the household; a later run pays once it is fixed.",
    ),
    _r(
        "AMOUNT_NOT_DEFINED",
        "사업에 이 대상자의 지급액이 정해져 있지 않음 (해당 구간 없음)",
        "the program defines no amount for this person (no tier or value applies)",
        "Check the program's amount table (`jiwon programs show`) and the person's attributes.",
    ),
    # -- decisions: enrollment rows ----------------------------------------------------------
    _r(
        "BENEFICIARY_NOT_IN_REGISTRY",
        "대상자가 주민등록 자료에 없음",
        "the beneficiary is not in the registry extract",
        "Check the RRN on the application; the person may live elsewhere. The application "
        "waits: a run whose registry holds the person decides it.",
    ),
    _r(
        "BENEFICIARY_QUARANTINED",
        "대상자의 주민등록 행이 격리됨",
        "the beneficiary's registry row was quarantined",
        "Fix the registry row (see the quarantine report) and deliver the registry again; the "
        "application waits and the next run decides it (leave the enrollment file in place).",
    ),
    _r(
        "BENEFICIARY_INELIGIBLE",
        "대상자가 지원 대상이 아님",
        "the beneficiary is not eligible (see the registry row's reasons)",
    ),
    _r(
        "BENEFICIARY_NOT_HOUSEHOLD_HEAD",
        "세대 단위 지급: 세대주만 신청·지급 대상",
        "a household program is applied for by, and paid to, the household head",
        "The household head applies for the household.",
    ),
    _r("OUTSIDE_WINDOW", "신청 기간 밖의 신청", "applied outside the beneficiary's window"),
    _r(
        "PAYOUT_NOT_OFFERED",
        "이 사업에서 제공하지 않는 지급수단",
        "this program does not pay through that payout channel",
        _FIX_ENROLLMENT,
    ),
    _r(
        "PAYOUT_DETAILS_REJECTED",
        "은행·카드사가 이 계좌 또는 카드로의 지급을 거절함 "
        "(계좌 해지, 예금주 불일치, 카드 해지 등)",
        "the bank or card operator refused a payment to these payout details before (closed "
        "account, name mismatch, cancelled card, ...): they are not paid again",
        "Ask the resident for another account or card and deliver a corrected application.",
    ),
    _r(
        "PROXY_ADULT_ONLINE",
        "온라인에서는 성인 본인만 신청 가능",
        "online, an adult must apply for themself",
    ),
    _r(
        "PROXY_NOT_HEAD_OR_SPOUSE",
        "세대주 또는 세대주의 배우자만 미성년자를 대리 신청 가능",
        "only the household head or the head's spouse may apply for a minor",
    ),
    _r(
        "PROXY_NOT_HEAD",
        "방문 대리 신청은 같은 세대의 세대주만 가능",
        "at the office, only the household head may apply for an adult member",
    ),
    _r(
        "PROXY_OUTSIDE_HOUSEHOLD",
        "신청인이 대상자와 같은 세대가 아님",
        "the applicant is not in the beneficiary's household",
    ),
    _r(
        "PROXY_NEEDS_FAMILY_PROOF",
        "세대 밖 대리 신청: 직계가족 증빙 확인 필요",
        "office application from outside the household: an officer must see proof of family",
        "An officer checks the proof of direct family and decides.",
    ),
    _r(
        "REVIEW_REJECTED",
        "담당자가 검토 후 신청을 반려함 (review import 기록 참조)",
        "an officer reviewed the held application and rejected it (see the review import)",
        "A decision a run applied is final: for another decision the resident applies again "
        "at the community centre (the new application is held for review in turn).",
    ),
    _r(
        "DUPLICATE_OF_EARLIER_APPLICATION",
        "같은 대상자의 더 이른 신청이 채택됨",
        "an earlier application for the same beneficiary was kept (the newest, for a re-issue; "
        "see duplicate_of)",
    ),
    _r(
        "BENEFICIARY_ALREADY_PAID",
        "대상자가 이전 실행에서 이미 지급받음",
        "the beneficiary was paid by an earlier committed run",
    ),
    # -- warnings ----------------------------------------------------------------------------
    _w(
        "RRN_CHECKSUM_MISMATCH",
        "주민등록번호 검증번호 불일치 (2020-10-05 이전 체계)",
        "old-scheme RRN check digit does not match; not a rejection (the registry is the truth)",
    ),
    _w(
        "COLUMN_IGNORED",
        "계약에 없는 열: 검사와 지급에 쓰지 않음 (값은 격리 보고서에 보존)",
        "a column the input contract does not know: ignored (its values are kept in the "
        "quarantine report)",
        "Nothing to do; remove the column from the export if it is not needed.",
    ),
    _w(
        "HOUSEHOLD_NO_HEAD",
        "세대에 세대주(본인)가 없음",
        "the household has no head (본인)",
        "Ask the registry office to correct the household; proxy applications by a head fail.",
    ),
    _w(
        "HOUSEHOLD_MULTIPLE_HEADS",
        "세대에 세대주(본인)가 둘 이상",
        "the household has more than one head (본인)",
        "Ask the registry office to correct the household; any listed head may act as head.",
    ),
    _w(
        "HOLDER_NAME_NOT_CP949",
        "예금주명에 CP949로 쓸 수 없는 문자가 있어 대량이체 파일에 ?로 기록됨",
        "the account holder name has characters CP949 cannot encode; the bank file shows them as ?",
        "Check with the bank that the transfer reached the right account holder.",
    ),
)

BY_CODE: dict[str, Code] = {c.code: c for c in CODES}
REASON_CODES: frozenset[str] = frozenset(c.code for c in CODES if c.kind == "reason")
WARNING_CODES: frozenset[str] = frozenset(c.code for c in CODES if c.kind == "warning")


def describe(code: str) -> Code:
    """Return the description of a code; raise KeyError naming the code if it is unknown."""
    try:
        return BY_CODE[code]
    except KeyError:
        raise KeyError(f"unknown code {code!r}: add it to flows/decide/codes.py") from None
