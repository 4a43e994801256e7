"""Every loader error has a bad program file in tests/programs_bad and a test of its message.

Each bad file starts with `# error: <text>`: loading it must fail with a message that names the
file and contains that text. A program kept only in tests/programs loads, lists and runs with no
change to code.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from flows.decide.attributes import ATTRIBUTE_EXPRESSIONS
from rules.program import ATTRIBUTES, ProgramError, list_programs, load_program, parse_program

HERE = Path(__file__).parent
BAD = sorted((HERE / "programs_bad").glob("*.yaml"))
TEST_PROGRAMS = HERE / "programs"


def expected_error(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# error: "), f"{path.name} must start with '# error: <message>'"
    return first.removeprefix("# error: ")


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_a_bad_program_file_is_refused_with_a_message_naming_the_file_and_the_key(
    path: Path,
) -> None:
    with pytest.raises(ProgramError) as refused:
        parse_program(path.read_bytes(), str(path))
    message = str(refused.value)
    assert message.startswith(f"{path}: ")
    assert expected_error(path) in message
    assert "\n" not in message.split(": ", 1)[0]


def test_there_is_a_bad_file_for_every_kind_of_loader_error() -> None:
    assert len(BAD) >= 25


def test_a_program_whose_id_differs_from_its_folder_is_refused(tmp_path: Path) -> None:
    shutil.copytree(TEST_PROGRAMS / "paju-seniors-2026", tmp_path / "paju-elders-2026")
    with pytest.raises(ProgramError, match="id 'paju-seniors-2026' does not match its folder"):
        load_program("paju-elders-2026", tmp_path)


def test_every_attribute_a_program_may_name_has_an_expression() -> None:
    assert set(ATTRIBUTES) == set(ATTRIBUTE_EXPRESSIONS)


def test_a_program_that_exists_only_in_a_test_folder_loads_without_code_changes() -> None:
    program = load_program("paju-seniors-2026", TEST_PROGRAMS)
    assert program.eligibility.conditions[0].attribute == "age"
    assert [p.id for p in list_programs(TEST_PROGRAMS)] == ["paju-seniors-2026"]


def test_the_five_shipped_programs_load() -> None:
    assert [p.id for p in list_programs()] == [
        "consumption-coupon-2025",
        "national-relief-2020",
        "paju-birth-2025",
        "paju-energy-2023",
        "paju-livelihood-2025",
    ]


def test_the_rule_set_hash_changes_when_a_list_the_program_reads_changes(tmp_path: Path) -> None:
    program = load_program("consumption-coupon-2025")
    text = Path(program.source).read_bytes()
    lists = Path(program.source).parents[2] / "lists/population-decline-counties.csv"
    original = lists.read_bytes()
    try:
        lists.write_bytes(original + b"99999,test,test,test\n")
        changed = parse_program(text, program.source)
    finally:
        lists.write_bytes(original)
    assert changed.sha256 != program.sha256
    assert parse_program(text, program.source).sha256 == program.sha256


def test_an_amount_takes_the_value_in_force_on_the_day_on_both_sides_of_a_change() -> None:
    amount = load_program("paju-seniors-2026", TEST_PROGRAMS).amount
    assert amount.on(dt.date(2026, 6, 30)) == 50_000
    assert amount.on(dt.date(2026, 7, 1)) == 70_000
    with pytest.raises(ProgramError, match="no amount is in force on 2025-12-31"):
        amount.on(dt.date(2025, 12, 31))


def test_the_run_record_parameters_hold_the_values_in_force_on_the_reference_date() -> None:
    params = load_program("consumption-coupon-2025").parameters()
    first = params["instalments"][0]
    assert first["amount"]["by"]["basic_livelihood"] == 400_000
    assert first["add_ons"] == {
        "outside-capital-region": 30_000,
        "population-decline-county": 50_000,
    }
    assert params["budget_krw"] == 9_000_000_000_000


def test_every_instalment_requirement_has_a_korean_and_english_description() -> None:
    from typing import get_args

    from flows.describe import REQUIRES
    from rules.program import Instalment

    (literal, _) = get_args(Instalment.model_fields["requires"].annotation)
    assert set(REQUIRES) == set(get_args(literal))


def test_the_audit_accepts_exactly_the_rule_ids_the_program_guide_lists() -> None:
    import re

    from schemas.audit import RULE_ID

    guide = (HERE.parent / "docs/programs.md").read_text(encoding="utf-8")
    table = guide[guide.index("<!-- rules:") : guide.index("<!-- /rules -->")]
    listed = re.findall(r"`([a-z_.<>0-9-]+)`", table)
    examples = [i.replace("<id>", "born-from-2024").replace("<n>", "2") for i in listed]
    assert all(re.search(RULE_ID, i) for i in examples), examples
    code = (HERE.parent / "flows/decide/rules.py").read_text(encoding="utf-8")
    code += (HERE.parent / "flows/decide/eligibility.py").read_text(encoding="utf-8")
    in_code = set(
        re.findall(
            r'"((?:validate|dedup|match|unit|eligibility|ledger|application|payment)\.[a-z_]+)"',
            code,
        )
    )
    assert in_code <= set(listed), in_code - set(listed)
    assert not re.search(RULE_ID, "eligibility.bogus")
    assert not re.search(RULE_ID, "payment.paid.twice")
