"""`jiwon programs list|show`: what each program pays, to whom and when, in Korean and English."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
TEST_PROGRAMS = Path(__file__).parent / "programs"


def test_programs_list_names_all_five_programs_with_their_reference_dates() -> None:
    result = runner.invoke(app, ["programs", "list"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "consumption-coupon-2025",
        "national-relief-2020",
        "paju-birth-2025",
        "paju-energy-2023",
        "paju-livelihood-2025",
    ]
    assert "긴급재난지원금 / Emergency Disaster Relief Fund" in lines[1]
    assert "2020-03-29, household" in lines[1]


def test_programs_show_says_how_much_to_whom_and_when_in_both_languages() -> None:
    result = runner.invoke(app, ["programs", "show", "national-relief-2020"])
    assert result.exit_code == 0
    text = result.stdout
    assert "세대당 한 번, 세대주에게 지급" in text and "paid once per household" in text
    assert "세대원 수 (household size) 4 이상 or more: 1,000,000원 (1,000,000 won)" in text
    assert "2020-05-11 ~ 2020-08-18" in text
    assert "기준일 Reference date: 2020-03-29" in text


def test_programs_show_lists_add_ons_and_the_second_instalment() -> None:
    coupon = runner.invoke(app, ["programs", "show", "consumption-coupon-2025"]).stdout
    assert "복지 자격 (welfare status) basic_livelihood 기초생활수급자: 400,000원" in coupon
    assert "+ 50,000원 (50,000 won) 농어촌 인구감소지역 거주" in coupon
    assert "instead of outside-capital-region" in coupon
    birth = runner.invoke(app, ["programs", "show", "paju-birth-2025"]).stdout
    assert "12 months after instalment 1" in birth
    assert "still registered in the area when it falls due (registered_in_city)" in birth
    assert "지급 시점에 신청인과 같은 세대" in birth


def test_programs_show_of_an_unknown_program_exits_2_listing_the_known_ones() -> None:
    result = runner.invoke(app, ["programs", "show", "paju-lottery"])
    assert result.exit_code == 2
    assert (
        "unknown program 'paju-lottery'; known programs: consumption-coupon-2025" in result.stderr
    )


def test_programs_from_another_folder_are_listed_and_shown() -> None:
    listed = runner.invoke(app, ["programs", "list", "--programs-dir", str(TEST_PROGRAMS)])
    assert listed.stdout.split()[0] == "paju-seniors-2026"
    shown = runner.invoke(
        app, ["programs", "show", "paju-seniors-2026", "--programs-dir", str(TEST_PROGRAMS)]
    )
    assert "기준일에 65세 이상 / Aged 65 or more on the reference date [나이 (age) ≥ 65]" in (
        shown.stdout
    )
    assert "changes on 2026-07-01" in shown.stdout


def test_fixtures_generate_fits_data_to_a_program_from_another_folder(tmp_path: Path) -> None:
    args = ["fixtures", "generate", "--rows", "50", "--out", str(tmp_path), "--program"]
    result = runner.invoke(app, [*args, "paju-seniors-2026", "--programs-dir", str(TEST_PROGRAMS)])
    assert result.exit_code == 0, result.stderr
    registry = pl.read_csv(next((tmp_path / "registry").glob("*.csv")), infer_schema=False)
    assert registry["as_of"].unique().to_list() == ["2026-01-01"]


def test_fixtures_generate_for_a_program_writes_its_welfare_extract_and_dates(
    tmp_path: Path,
) -> None:
    out = tmp_path / "data"
    args = ["fixtures", "generate", "--rows", "300", "--out", str(out)]
    result = runner.invoke(app, [*args, "--program", "consumption-coupon-2025"])
    assert result.exit_code == 0, result.stderr
    assert (out / "welfare/welfare.csv").is_file()
    registry = pl.read_csv(next((out / "registry").glob("*.csv")), infer_schema=False)
    assert set(registry["as_of"]) == {"2025-06-18"}
    applied = pl.concat(
        pl.read_csv(f, infer_schema=False) for f in (out / "enrollments").glob("*.csv")
    )["applied_at"]
    in_window = applied.str.slice(0, 10).is_between("2025-07-21", "2025-09-12")
    assert in_window.mean() > 0.9
