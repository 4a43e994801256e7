"""Decision rules are data: the relation words come from the vocabulary, the rule order is a list.

The words a rule reads (head, spouse, age of majority) are taken from rules/vocabulary.yaml when a
run context is made, and the named rule lists decide() applies are the lists `jiwon programs show`
and docs/programs.md print.
"""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.checks import validate
from flows.cli import app
from flows.decide.rulebook import Rule, first_match
from flows.decide.rules import (
    RunContext,
    decide,
    describing,
    enrollment_rules,
    registry_rules,
    settlement_rules,
)
from rules import reference
from rules.program import Program, load_program
from schemas.enrollment import enrollment_schema
from schemas.registry import registry_schema
from tests.support.frames import application, delivery, person, rrn

FLOWS = Path(__file__).resolve().parents[1] / "flows"
HEAD = rrn("750312", "1")
GROWN_CHILD = rrn("010101", "3", "45678")
TEEN = rrn("080505", "3", "34567")
NOBODY = pl.DataFrame(schema={"person_key": pl.String})


def vocabulary_with(**words: Any) -> dict[str, Any]:
    """Return the shipped vocabulary with `words` changed, `세대주` added as a known relation."""
    vocab = dict(reference.vocabulary())
    vocab["relations"] = [*vocab["relations"], "세대주"]
    return vocab | words


def context(program: Program) -> RunContext:
    return RunContext("run-v", program, "2025-03", dt.datetime(2025, 3, 1, tzinfo=dt.UTC), "k" * 20)


def decided(
    program: Program,
    vocab: dict[str, Any],
    ctx: RunContext,
    registry: list[dict[str, Any]],
    enrollment: list[dict[str, Any]],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate rows with `vocab` and decide them with `ctx`: (registry, enrollment) decisions."""
    schema = registry_schema(program.admin_codes(), vocab)
    reg = validate.validate_registry(
        delivery("registry", registry), schema, vocab, program.reference_date, True
    )[0]
    enr = validate.validate_enrollments(
        delivery("enrollment", enrollment), enrollment_schema(reference.bank_codes(), vocab)
    )[0]
    decisions = decide(reg, enr, NOBODY, ctx)
    return decisions.registry, decisions.enrollment


def test_run_context_reads_the_relation_words_and_age_of_majority_from_the_vocabulary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shipped = context(load_program("paju-livelihood-2025"))
    assert (shipped.head_relation, shipped.spouse_relation, shipped.minor_age_under) == (
        reference.vocabulary()["head_relation"],
        reference.vocabulary()["spouse_relation"],
        reference.vocabulary()["minor_age_under"],
    )
    vocab = vocabulary_with(head_relation="세대주", spouse_relation="처", minor_age_under=18)
    monkeypatch.setattr(reference, "vocabulary", lambda: vocab)
    changed = context(load_program("paju-livelihood-2025"))
    assert (changed.head_relation, changed.spouse_relation, changed.minor_age_under) == (
        "세대주",
        "처",
        18,
    )


def test_another_head_word_in_the_vocabulary_changes_who_may_apply_at_the_office(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    program = load_program("paju-livelihood-2025")
    vocab = vocabulary_with(head_relation="세대주")
    registry = [person(HEAD, relation="세대주"), person(GROWN_CHILD, relation="자녀")]
    enrollment = [application("A1", GROWN_CHILD, applicant=HEAD, channel="office")]
    shipped = context(program)
    monkeypatch.setattr(reference, "vocabulary", lambda: vocab)
    renamed = context(program)

    reg, enr = decided(program, vocab, shipped, registry, enrollment)
    assert enr["outcome"].to_list() == ["PROXY_NOT_ALLOWED"]
    assert enr["reason_codes"].to_list() == [["PROXY_NOT_HEAD"]]
    assert reg["warning_codes"].to_list() == [["HOUSEHOLD_NO_HEAD"]] * 2

    reg, enr = decided(program, vocab, renamed, registry, enrollment)
    assert enr["outcome"].to_list() == ["PAID"]
    assert reg["warning_codes"].to_list() == [[], []]


def test_another_head_word_in_the_vocabulary_changes_whom_a_household_program_pays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    program = load_program("paju-energy-2023")
    vocab = vocabulary_with(head_relation="세대주")
    as_of = {"as_of": "2023-02-06"}
    registry = [
        person(HEAD, relation="본인", **as_of),
        person(GROWN_CHILD, relation="세대주", **as_of),
    ]
    enrollment = [
        application("A1", HEAD, at="2023-03-02T10:00:00"),
        application("A2", GROWN_CHILD, at="2023-03-02T11:00:00"),
    ]
    shipped = context(program)
    monkeypatch.setattr(reference, "vocabulary", lambda: vocab)
    renamed = context(program)

    _, enr = decided(program, vocab, shipped, registry, enrollment)
    assert enr["outcome"].to_list() == ["PAID", "INELIGIBLE"]
    _, enr = decided(program, vocab, renamed, registry, enrollment)
    assert enr["outcome"].to_list() == ["INELIGIBLE", "PAID"]
    assert enr["reason_codes"].to_list()[0] == ["BENEFICIARY_NOT_HOUSEHOLD_HEAD"]


def test_the_age_of_majority_in_the_vocabulary_decides_who_counts_as_a_minor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    program = load_program("paju-livelihood-2025")
    vocab = vocabulary_with()
    registry = [person(HEAD), person(TEEN, relation="자녀")]  # TEEN is 16 on the reference date
    enrollment = [application("A1", TEEN, applicant=HEAD)]  # online, by the head
    shipped = context(program)
    monkeypatch.setattr(reference, "vocabulary", lambda: vocab | {"minor_age_under": 16})
    lowered = context(program)

    _, enr = decided(program, vocab, shipped, registry, enrollment)
    assert enr["outcome"].to_list() == ["PAID"]
    _, enr = decided(program, vocab, lowered, registry, enrollment)
    assert enr["reason_codes"].to_list() == [["PROXY_ADULT_ONLINE"]]


def test_no_relation_word_or_age_of_majority_is_written_into_the_flows_code() -> None:
    vocab = reference.vocabulary()
    words = {vocab["head_relation"], vocab["spouse_relation"]}
    found = []
    for path in FLOWS.rglob("*.py"):
        if path.name == "codes.py":  # descriptions for people, not rules
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            value = node.value if isinstance(node, ast.Constant) else None
            if value in words or (type(value) is int and value == vocab["minor_age_under"]):
                found.append(f"{path.name}:{node.lineno}: {value!r}")
    assert found == []


def test_first_match_gives_each_row_the_first_rule_in_the_list_that_holds() -> None:
    frame = pl.DataFrame({"a": [True, True, False, False], "b": [True, False, True, False]})
    rules = (
        Rule("rule.a", "A", ("CODE_A",), pl.col("a")),
        Rule("rule.b", "B", ("CODE_B", "CODE_C"), pl.col("b")),
    )
    outcome, reasons, rule = first_match(rules)
    got = frame.select(outcome=outcome, reasons=reasons, rule=rule)
    assert got["rule"].to_list() == ["rule.a", "rule.a", "rule.b", None]
    assert got["outcome"].to_list() == ["A", "A", "B", None]
    assert got["reasons"].to_list() == [["CODE_A"], ["CODE_A"], ["CODE_B", "CODE_C"], None]
    swapped = frame.select(rule=first_match(rules[::-1])[2])
    assert swapped["rule"].to_list() == ["rule.b", "rule.a", "rule.b", None]


def test_an_application_failing_several_rules_is_decided_by_the_first_in_the_printed_list() -> None:
    program = load_program("paju-livelihood-2025")
    ctx = context(program)
    registry = [person(HEAD), person(GROWN_CHILD, household="2")]
    # Applied by someone outside the household, online, after the window, to a bank payout the
    # program does not offer: application.proxy, application.window and application.payout fail.
    enrollment = [
        application(
            "A1",
            GROWN_CHILD,
            applicant=HEAD,
            at="2025-03-20T10:00:00",
            payout="bank",
            card_id=None,
            bank_code="004",
            account_no="12345678901",
            account_holder="김민수",
        ),
        application("A2", HEAD, at="2025-03-20T10:00:00"),
        application(
            "A3",
            HEAD,
            at="2025-01-22T11:00:00",
            payout="bank",
            card_id=None,
            bank_code="004",
            account_no="12345678901",
            account_holder="김민수",
        ),
    ]
    vocab = reference.vocabulary()
    _, enr = decided(program, vocab, ctx, registry, enrollment)
    order = [r.id for r in enrollment_rules(ctx)]
    failed = [
        ["application.proxy", "application.window", "application.payout"],
        ["application.window"],
        ["application.payout"],
    ]
    expected = [min(f, key=order.index) for f in failed]
    assert (
        enr["rule_id"].to_list()
        == expected
        == [
            "application.proxy",
            "application.window",
            "application.payout",
        ]
    )


def numbered_ids(text: str, heading: str) -> list[str]:
    """Return the rule ids of the numbered lines under `heading` (nested rules left out)."""
    section = text[text.index(heading) :].splitlines()[1:]
    ids = []
    for line in section:
        if line and not line.startswith(" "):  # the next heading
            break
        head = line.split()
        if head and head[0].rstrip(".").isdigit():
            ids.append(line.split(". ", 1)[1].split(" → ")[0])
    return ids


@pytest.mark.parametrize("program_id", ["paju-birth-2025", "national-relief-2020"])
def test_programs_show_lists_the_rules_in_the_order_decide_applies_them(program_id: str) -> None:
    result = CliRunner().invoke(app, ["programs", "show", program_id])
    assert result.exit_code == 0, result.stderr
    ctx = describing(load_program(program_id))
    assert numbered_ids(result.stdout, "주민등록 행 Registry row:") == [
        r.id for r in registry_rules(ctx)
    ]
    assert numbered_ids(result.stdout, "신청 Application:") == [
        r.id for r in (*enrollment_rules(ctx), *settlement_rules())
    ]


def test_programs_show_names_the_programs_own_eligibility_conditions_in_order() -> None:
    text = CliRunner().invoke(app, ["programs", "show", "paju-birth-2025"]).stdout
    born = text.index(
        "eligibility.condition.born-from-2024 → INELIGIBLE [PROGRAM_CONDITION_NOT_MET]"
    )
    child = text.index("eligibility.condition.child-of-household-head → INELIGIBLE")
    assert text.index("eligibility.status → INELIGIBLE") < born < child
    assert "2024-01-01 이후 출생 / Born on or after 2024-01-01" in text
