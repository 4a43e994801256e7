"""Program data at national size, shown small: blocks seen through a program one at a time.

The timings and memory of national-size generation are measured by the benchmark
(docs/performance.md), not here.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from fixtures.generate import Faults
from fixtures.programs import (
    ProgramData,
    generate_for_program,
    generate_program_blocks,
    write_program_blocks,
)
from flows.cli import app
from rules.program import load_program

ROWS, BLOCK = 7_500, 2_500  # three blocks of 2,500 residents
RELIEF = load_program("national-relief-2020")
COUPON = load_program("consumption-coupon-2025")
runner = CliRunner()


def blocks_of(program_id: str) -> list[ProgramData]:
    program = load_program(program_id)
    return list(generate_program_blocks(ROWS, program, seed=3, scope="national", block_rows=BLOCK))


@pytest.fixture(scope="module")
def relief() -> list[ProgramData]:
    return blocks_of("national-relief-2020")


@pytest.fixture(scope="module")
def coupon() -> list[ProgramData]:
    return blocks_of("consumption-coupon-2025")


def digits(column: str) -> pl.Expr:
    return pl.col(column).str.replace_all(r"[-\s]", "")


def registry_of(blocks: list[ProgramData]) -> pl.DataFrame:
    return pl.concat(
        [b.population.registry.with_columns(block=pl.lit(i)) for i, b in enumerate(blocks)]
    )


def applications_of(blocks: list[ProgramData]) -> pl.DataFrame:
    return pl.concat(
        [b.population.enrollments.with_columns(block=pl.lit(i)) for i, b in enumerate(blocks)]
    )


def test_program_blocks_keep_households_whole_and_rrns_unique_across_blocks(
    relief: list[ProgramData],
) -> None:
    registry = registry_of(relief)
    assert [b.population.registry.height for b in relief] == [2_500] * 3
    blocks_per_household = registry.group_by("household_id").agg(pl.col("block").n_unique())
    assert blocks_per_household["block"].max() == 1
    assert registry.select(digits("rrn")).is_duplicated().sum() == 0
    assert registry["as_of"].unique().to_list() == ["2020-03-29"]
    assert registry["admin_code"].str.slice(0, 2).n_unique() > 10  # every 시도, not only Paju


def test_household_program_blocks_are_applied_for_by_heads(relief: list[ProgramData]) -> None:
    relation = registry_of(relief).select(rrn=digits("rrn"), relation="relation")
    applied = applications_of(relief).select(rrn=digits("rrn"), block="block")
    known = applied.join(relation, on="rrn")
    heads = (known["relation"] == "본인").mean()
    assert heads is not None and heads > 0.9
    assert known["block"].unique().sort().to_list() == [0, 1, 2]


def test_person_program_blocks_are_applied_for_by_everyone(coupon: list[ProgramData]) -> None:
    relation = registry_of(coupon).select(rrn=digits("rrn"), relation="relation")
    known = applications_of(coupon).select(rrn=digits("rrn")).join(relation, on="rrn")
    heads = (known["relation"] == "본인").mean()
    assert heads is not None and heads < 0.6


def test_every_blocks_applications_are_moved_into_the_programs_window(
    relief: list[ProgramData],
) -> None:
    window = RELIEF.populations[0].window
    for data in relief:
        day = data.population.enrollments["applied_at"].str.slice(0, 10)
        inside = day.is_between(window.start.isoformat(), window.end.isoformat()).mean()
        assert inside is not None and inside > 0.95


def test_welfare_rows_are_drawn_in_every_block_once_per_registered_person(
    coupon: list[ProgramData],
) -> None:
    welfare = pl.concat([b.welfare for b in coupon if b.welfare is not None])
    assert all(b.welfare is not None and b.welfare.height > 0 for b in coupon)
    assert welfare["rrn"].is_duplicated().sum() == 0
    registered = registry_of(coupon).select(rrn=digits("rrn"))["rrn"]
    assert welfare["rrn"].is_in(registered.implode()).all()
    assert welfare["as_of"].unique().to_list() == ["2025-06-18"]


def test_one_paju_block_equals_the_single_block_generator() -> None:
    whole = generate_for_program(2_000, RELIEF, seed=5, faults=Faults())
    (block,) = generate_program_blocks(2_000, RELIEF, seed=5, faults=Faults(), block_rows=2_000)
    assert_frame_equal(block.population.registry, whole.population.registry)
    assert_frame_equal(block.population.enrollments, whole.population.enrollments)


def test_written_program_blocks_keep_each_blocks_files_and_one_welfare_header(
    tmp_path: Path, coupon: list[ProgramData]
) -> None:
    written = write_program_blocks(coupon, tmp_path)
    assert [p.name for p in written["welfare"]] == ["welfare.csv"]
    welfare = pl.read_csv(written["welfare"][0], infer_schema=False)
    assert welfare.height == sum(b.welfare.height for b in coupon if b.welfare is not None)
    names = {p.name for p in written["enrollments"]}
    assert {"enrollments_online_0000.csv", "enrollments_online_0002.csv"} <= names


def test_fixtures_generate_writes_a_household_program_in_blocks(tmp_path: Path) -> None:
    args = ["fixtures", "generate", "--rows", "3000", "--block-rows", "1000", "--scope"]
    args += ["national", "--program", "national-relief-2020", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    files = sorted(p.name for p in (tmp_path / "enrollments").glob("*.csv"))
    assert files == [f"enrollments_{c}_{b:04d}.csv" for c in ("office", "online") for b in range(3)]


def test_fixtures_generate_refuses_a_city_program_at_national_scope(tmp_path: Path) -> None:
    args = ["fixtures", "generate", "--rows", "100", "--scope", "national", "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--program", "paju-livelihood-2025"])
    assert result.exit_code == 2
    assert "pays one city's residents" in result.stderr
