"""Generator at national size, shown small: blocks, every 시도, files per delivery, determinism.

The memory bound and the timings are measured by the benchmark (docs/performance.md), not here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from fixtures.generate import (
    NO_FAULTS,
    Population,
    _unique_rrns,
    generate_blocks,
    generate_population,
    write_blocks,
)
from flows.checks import validate
from flows.cli import app
from flows.inputs.ingest import list_delivery, read_delivery
from rules.admin_codes import load_sido, national_admin_codes
from rules.program import load_program
from rules.reference import vocabulary
from schemas.registry import registry_schema

ROWS, BLOCK = 12_000, 3_500  # four blocks: 3,000 residents each


@pytest.fixture(scope="module")
def blocks() -> list[Population]:
    return list(generate_blocks(ROWS, seed=7, faults=NO_FAULTS, scope="national", block_rows=BLOCK))


@pytest.fixture(scope="module")
def registry(blocks: list[Population]) -> pl.DataFrame:
    return pl.concat(
        [b.registry.with_columns(block=pl.lit(i)) for i, b in enumerate(blocks)], how="vertical"
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, blocks: list[Population]) -> Path:
    out = tmp_path_factory.mktemp("national")
    write_blocks(blocks, out)
    return out


def read_all(folder: Path) -> pl.DataFrame:
    return pl.concat([pl.read_csv(p, infer_schema=False) for p in sorted(folder.glob("*.csv"))])


def test_national_population_is_generated_in_even_blocks_of_whole_households(
    blocks: list[Population], registry: pl.DataFrame
) -> None:
    assert [b.registry.height for b in blocks] == [3_000] * 4
    assert registry.group_by("household_id").agg(pl.col("block").n_unique())["block"].max() == 1


def test_national_population_lives_in_every_sido_with_valid_national_codes(
    registry: pl.DataFrame,
) -> None:
    assert set(registry["admin_code"].str.slice(0, 2)) == set(load_sido()["sido_code"])
    assert set(registry["admin_code"]) <= national_admin_codes()
    assert registry["admin_code"].n_unique() > 1_000
    seoul = registry.filter(pl.col("admin_code").str.starts_with("11"))
    assert seoul["address"].drop_nulls().str.starts_with("서울특별시 ").all()


def test_every_household_has_exactly_one_head_across_blocks(registry: pl.DataFrame) -> None:
    heads = registry.group_by("household_id").agg((pl.col("relation") == "본인").sum())
    assert (heads["relation"] == 1).all()


def test_rrns_household_ids_and_application_ids_are_unique_across_blocks(
    blocks: list[Population], registry: pl.DataFrame
) -> None:
    assert registry["rrn"].str.replace("-", "", literal=True).is_unique().all()
    assert (
        registry.group_by("household_id").agg(pl.col("admin_code").n_unique())["admin_code"].max()
        == 1
    )
    enrollments = pl.concat([b.enrollments for b in blocks])
    assert enrollments["application_id"].is_unique().all()


def test_a_later_block_redraws_every_rrn_an_earlier_block_used() -> None:
    birth = np.full(5_000, 7_000)  # one birth day: collisions would be certain otherwise
    male, foreign = np.ones(5_000, dtype=bool), np.zeros(5_000, dtype=bool)
    first = _unique_rrns(np.random.default_rng(1), birth, male, foreign)
    again = _unique_rrns(np.random.default_rng(1), birth, male, foreign, np.sort(first))
    assert np.unique(first).size == np.unique(again).size == 5_000
    assert not np.isin(again, first).any()


def test_a_national_delivery_is_one_registry_file_per_sigungu_and_enrollments_per_block(
    written: Path, registry: pl.DataFrame
) -> None:
    registry_files = sorted((written / "registry").glob("*.csv"))
    assert len(registry_files) == registry["admin_code"].str.slice(0, 5).n_unique() > 200
    for path in registry_files[:20]:
        codes = pl.read_csv(path, infer_schema=False)["admin_code"]
        assert codes.str.starts_with(path.stem.removeprefix("registry_")).all()
    names = sorted(p.name for p in (written / "enrollments").glob("*.csv"))
    assert names == [f"enrollments_{c}_{b:04d}.csv" for c in ("office", "online") for b in range(4)]


def test_written_files_hold_exactly_the_generated_rows(
    written: Path, blocks: list[Population], registry: pl.DataFrame
) -> None:
    on_disk = read_all(written / "registry").sort("rrn")
    assert on_disk.equals(registry.drop("block").sort("rrn"))
    enrollments = pl.concat([b.enrollments for b in blocks]).sort("application_id")
    assert read_all(written / "enrollments").sort("application_id").equals(enrollments)


def test_block_stream_is_deterministic_per_seed(tmp_path: Path) -> None:
    def write(seed: int, name: str) -> dict[str, list[Path]]:
        stream = generate_blocks(3_000, seed=seed, scope="national", block_rows=1_000)
        return write_blocks(stream, tmp_path / name, encoding="cp949")

    first, second, other = write(5, "a"), write(5, "b"), write(6, "c")
    for kind in ("registry", "enrollments"):
        assert [p.name for p in first[kind]] == [p.name for p in second[kind]]
        assert all(
            a.read_bytes() == b.read_bytes() for a, b in zip(first[kind], second[kind], strict=True)
        )
    assert len(first["registry"]) > 100 and len(first["enrollments"]) == 6
    assert not all(
        a.read_bytes() == c.read_bytes()
        for a, c in zip(first["enrollments"], other["enrollments"], strict=True)
    )


def test_one_block_is_exactly_what_generate_population_makes() -> None:
    (only,) = generate_blocks(2_500, seed=4)
    whole = generate_population(2_500, seed=4)
    assert only.registry.equals(whole.registry)
    assert only.enrollments.equals(whole.enrollments)
    assert only.registry_file is not None and whole.registry_file is not None
    assert only.registry_file.equals(whole.registry_file)


def test_paju_scope_in_blocks_stays_in_pajus_twenty_areas() -> None:
    rows = pl.concat([b.registry for b in generate_blocks(3_000, 2, NO_FAULTS, block_rows=1_000)])
    assert set(rows["admin_code"]) <= set(load_program("paju-livelihood-2025").admin_codes())


def test_national_registry_passes_validation_against_the_national_code_list(
    written: Path,
) -> None:
    program = load_program("paju-livelihood-2025")
    delivery = read_delivery(list_delivery(written / "registry", "registry"), "registry")

    def quarantined(codes: frozenset[str]) -> pl.DataFrame:
        schema = registry_schema(codes, vocabulary())
        rows, _ = validate.validate_registry(
            delivery, schema, vocabulary(), program.reference_date, True
        )
        return rows.filter(pl.col("reason_codes").list.len() > 0)

    assert quarantined(national_admin_codes()).height == 0
    outside_paju = quarantined(program.admin_codes())
    assert outside_paju.height > ROWS * 0.9
    assert outside_paju["reason_codes"].list.contains("ADMIN_CODE_UNKNOWN").all()


def test_cli_generate_national_scope_writes_several_files_per_delivery(tmp_path: Path) -> None:
    args = ["fixtures", "generate", "--rows", "2000", "--out", str(tmp_path), "--scope", "national"]
    result = CliRunner().invoke(app, [*args, "--block-rows", "1000"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "enrollments").glob("*.csv"))) == 4
    assert len(list((tmp_path / "registry").glob("*.csv"))) > 100


def test_cli_generate_refuses_an_unknown_scope(tmp_path: Path) -> None:
    args = ["fixtures", "generate", "--rows", "10", "--out", str(tmp_path), "--scope", "mars"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--scope must be one of paju, national" in result.output
