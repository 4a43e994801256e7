"""Describe programs in plain Korean and English: `jiwon programs list` and `jiwon programs show`.

Everything printed is read from the program file, so what an officer reads is what the engine
runs: amounts in force on the reference date, windows, who is eligible, the unit, the budget.
"""

from __future__ import annotations

from collections.abc import Sequence

from flows.decide.rulebook import Rule
from flows.decide.rules import (
    describing,
    enrollment_rules,
    registry_rules,
    settlement_rules,
)
from rules.program import AddOn, Amount, Condition, Program
from rules.reference import vocabulary

UNIT = {
    "person": ("1인당 지급", "paid per person"),
    "household": (
        "세대당 한 번, 세대주에게 지급 (세대원 수는 기준일의 지원 대상 세대원)",
        "paid once per household, to its head (household size: eligible members on the "
        "reference date)",
    ),
}
REQUIRES = {
    "registered_in_city": (
        "지급 시점에 계속 주민등록",
        "still registered in the area when it falls due",
    ),
    "same_household_as_applicant": (
        "지급 시점에 신청인과 같은 세대",
        "still in the applicant's household when it falls due",
    ),
}
PAYOUT = {"local_currency": ("지역화폐 카드", "local currency card"), "bank": ("계좌 입금", "bank")}
ATTRIBUTE_NAMES = {
    "household_size": ("세대원 수", "household size"),
    "birth_order": ("출생 순위", "birth order"),
    "welfare_status": ("복지 자격", "welfare status"),
    "age": ("나이", "age"),
    "birth_date": ("생년월일", "birth date"),
    "registered_on": ("전입일", "moved in on"),
    "sido_code": ("시도 코드", "province code"),
    "sigungu_code": ("시군구 코드", "county code"),
    "relation": ("세대주와의 관계", "relation to the head"),
    "status": ("거주상태", "residence status"),
    "nationality": ("내외국인", "nationality"),
    "visa_type": ("체류자격", "visa type"),
    "admin_code": ("행정동코드", "administrative code"),
}


def _value_name(attribute: str | None, value: str) -> str:
    """Return a welfare status with its Korean label (`near_poor 차상위계층`), others as is."""
    if attribute != "welfare_status":
        return value
    vocab = vocabulary()
    labels = {k: v[0] for k, v in vocab["welfare_statuses"].items()}
    labels[vocab["welfare_status_default"]] = "일반"
    return f"{value} {labels.get(value, '')}".strip()


def won(amount: int) -> str:
    """Return `100,000원 (100,000 won)`."""
    return f"{amount:,}원 ({amount:,} won)"


def program_line(program: Program) -> str:
    """Return one line for `jiwon programs list`."""
    return (
        f"{program.id:<26} {program.title.ko} / {program.title.en} "
        f"(기준일 reference date {program.reference_date}, {program.unit})"
    )


def _attr(name: str) -> str:
    ko, en = ATTRIBUTE_NAMES.get(name, (name, name))
    return f"{ko} ({en})"


def _test(c: Condition) -> str:
    if c.one_of is not None:
        return f"{_attr(c.attribute)} ∈ {', '.join(c.one_of)}"
    if c.none_of is not None:
        return f"{_attr(c.attribute)} ∉ {', '.join(c.none_of)}"
    if c.one_of_list is not None:
        return f"{_attr(c.attribute)} in rules/lists/{c.one_of_list}.csv"
    if c.at_least is not None:
        return f"{_attr(c.attribute)} ≥ {c.at_least}"
    if c.at_most is not None:
        return f"{_attr(c.attribute)} ≤ {c.at_most}"
    if c.on_or_after is not None:
        return f"{_attr(c.attribute)} ≥ {c.on_or_after}"
    return f"{_attr(c.attribute)} ≤ {c.on_or_before}"


def _amount_lines(amount: Amount, program: Program) -> list[str]:
    value = amount.value_on(program.reference_date)
    lines = [f"    from {value.effective_from} ({value.reference}):"]
    if value.krw is not None:
        lines.append(f"      {won(value.krw)}")
    elif value.tiers is not None:
        top = max(value.tiers)
        for lowest, krw in sorted(value.tiers.items()):
            more = " 이상 or more" if lowest == top else ""
            lines.append(f"      {_attr(str(amount.attribute))} {lowest}{more}: {won(krw)}")
    elif value.by is not None:
        for key, krw in value.by.items():
            name = _value_name(amount.attribute, key)
            lines.append(f"      {_attr(str(amount.attribute))} {name}: {won(krw)}")
    later = [v for v in amount.values if v.effective_from > program.reference_date]
    for v in later:
        lines.append(f"    changes on {v.effective_from} ({v.reference})")
    lines += [_add_on_line(a, program) for a in amount.add_ons]
    return lines


def _add_on_line(add_on: AddOn, program: Program) -> str:
    instead = f", 대신 instead of {', '.join(add_on.replaces)}" if add_on.replaces else ""
    return (
        f"      + {won(add_on.on(program.reference_date))} {add_on.title.ko} / {add_on.title.en}"
        f" [{_test(add_on.when)}{instead}]"
    )


def rule_line(number: str, rule: Rule) -> list[str]:
    """Return `  3. rule.id -> OUTCOME [REASON, ...]` and its description in Korean and English."""
    outcomes = ", ".join(rule.outcomes) or "(결과 없음, 다음 규칙으로 no outcome: go on)"
    codes = f" [{', '.join(rule.codes)}]" if rule.codes else ""
    ko, en = rule.text
    return [f"  {number:>4} {rule.id} → {outcomes}{codes}", f"       {ko} / {en}"]


def rule_lines(rules: Sequence[Rule], first: int = 1) -> list[str]:
    """Return the rules numbered from `first`, each nested rule under its rule (a, b, ...)."""
    lines: list[str] = []
    for n, rule in enumerate(rules, start=first):
        lines += rule_line(f"{n}.", rule)
        for letter, inner in zip("abcdefghijklmnopqrstuvwxyz", rule.within, strict=False):
            lines += [f"    {line}" for line in rule_line(f"{n}{letter}.", inner)]
    return lines


def rules_section(program: Program) -> list[str]:
    """Return the rules a registry row and an application are checked against, in order."""
    ctx = describing(program)
    applications = enrollment_rules(ctx)
    return [
        "규칙 Rules (순서대로 확인, 처음 해당하는 규칙이 결과를 정함; rule_id는 감사 기록에 남음 / "
        "checked in order, the first that holds decides; the audit records its rule_id):",
        "주민등록 행 Registry row:",
        *rule_lines(registry_rules(ctx)),
        "신청 Application:",
        *rule_lines(applications),
        "  남은 유효한 신청 valid applications left:",
        *rule_lines(settlement_rules(), first=len(applications) + 1),
    ]


def show(program: Program) -> str:
    """Return the plain-language description of `jiwon programs show ID`."""
    unit_ko, unit_en = UNIT[program.unit]
    payouts = ", ".join(f"{PAYOUT[p][0]} ({PAYOUT[p][1]})" for p in program.payout_channels)
    area = f"city {program.city}" if program.city else "전국 nationwide"
    lines = [
        f"{program.title.ko}",
        f"{program.title.en}  [{program.id}]",
        "",
        program.summary.ko,
        program.summary.en,
        "",
        f"근거 Legal basis: {program.legal_reference.ko} / {program.legal_reference.en}",
        f"기준일 Reference date: {program.reference_date} (24:00)",
        f"지역 Area: {area}",
        f"지급 단위 Unit: {unit_ko} / {unit_en}",
        f"지급 수단 Payout: {payouts}",
        f"예산 Budget: {won(program.budget_krw)}",
        "",
        "누가 Who:",
        f"  거주상태 status: {', '.join(program.eligibility.statuses)}",
    ]
    if program.eligibility.registered_on_or_before_reference_date:
        lines.append("  기준일까지 전입 registered in the area by the reference date")
    for c in program.eligibility.conditions:
        lines.append(f"  {c.title.ko} / {c.title.en} [{_test(c)}]")
    lines += ["", "언제 When (신청 기간 application windows):"]
    for p in program.populations:
        visas = f" ({', '.join(p.visa_types)})" if p.visa_types else ""
        lines.append(f"  {p.title.ko} / {p.title.en}{visas}: {p.window.start} ~ {p.window.end}")
    lines += ["", "얼마 How much:"]
    for i in program.instalments:
        due = (
            "신청 시 on application"
            if i.due.event == "application"
            else f"{i.due.instalment}회차 {i.due.months}개월 후 {i.due.months} months after "
            f"instalment {i.due.instalment}"
        )
        lines.append(f"  {i.number}. {i.title.ko} / {i.title.en} — {due}")
        for r in i.requires:
            ko, en = REQUIRES[r]
            lines.append(f"     조건 requires: {ko} / {en} ({r})")
        lines += _amount_lines(i.amount, program)
    lines += [
        "",
        f"격리 기준 Quarantine threshold: {program.quarantine_threshold:.2%}; "
        f"파일당 최대 건수 max records per payment file: {program.max_records_per_file:,}",
        f"규칙 SHA-256 rule set: {program.sha256}",
        "",
        *rules_section(program),
    ]
    return "\n".join(lines) + "\n"
