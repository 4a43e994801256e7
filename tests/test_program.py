"""The strict program loader: every error names the file and the key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from rules.program import ProgramError, load_program, parse_program

REAL = Path(__file__).resolve().parents[1] / "rules/programs/paju-livelihood-2025/program.yaml"


def test_load_program_reads_paju_livelihood_amount_and_windows() -> None:
    program = load_program("paju-livelihood-2025")
    assert program.amount_krw == 100_000
    assert program.reference_date == dt.date(2024, 12, 26)
    assert [p.window.start for p in program.populations] == [
        dt.date(2025, 1, 21),
        dt.date(2025, 3, 4),
    ]
    assert len(program.sha256) == 64
    assert "4148057000" in program.admin_codes()


def test_parse_program_rejects_an_unknown_key() -> None:
    text = REAL.read_bytes() + b"bonus_krw: 5\n"
    with pytest.raises(ProgramError, match=r"p\.yaml: bonus_krw: Extra inputs are not permitted"):
        parse_program(text, "p.yaml")


def test_parse_program_rejects_a_duplicate_key_with_its_line() -> None:
    text = REAL.read_bytes() + b"budget_krw: 1\n"
    with pytest.raises(ProgramError, match=r"p\.yaml: duplicate key 'budget_krw' at line \d+"):
        parse_program(text, "p.yaml")


def test_parse_program_rejects_an_impossible_date() -> None:
    text = REAL.read_bytes().replace(b"reference_date: 2024-12-26", b"reference_date: 2024-02-30")
    with pytest.raises(ProgramError, match="reference_date"):
        parse_program(text, "p.yaml")


def test_parse_program_rejects_a_window_that_ends_before_it_starts() -> None:
    text = REAL.read_bytes().replace(b"end: 2025-02-28", b"end: 2025-01-01")
    with pytest.raises(ProgramError, match="window ends"):
        parse_program(text, "p.yaml")


def test_amount_uses_the_value_in_force_on_the_day() -> None:
    program = load_program("paju-livelihood-2025")
    with pytest.raises(ProgramError, match="no amount is in force"):
        program.amount.on(dt.date(2020, 1, 1))


def test_load_program_lists_known_programs_for_an_unknown_id() -> None:
    with pytest.raises(
        ProgramError, match=r"known programs: consumption-coupon-2025, .*, paju-livelihood-2025"
    ):
        load_program("paju-lottery")
