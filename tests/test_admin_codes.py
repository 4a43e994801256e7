"""National administrative codes: the committed list, its coverage and what is marked synthetic."""

from __future__ import annotations

import polars as pl

from rules.admin_codes import (
    NATIONAL_CSV,
    build_national,
    load_sido,
    load_sigungu,
    national_admin_codes,
)
from rules.program import load_admin_codes

NATIONAL = pl.read_csv(NATIONAL_CSV, infer_schema=False)


def test_national_list_is_what_the_builder_makes_from_the_region_files() -> None:
    built = pl.read_csv(build_national().write_csv().encode(), infer_schema=False)
    assert NATIONAL.equals(built), "rules/cities/national.csv is stale: python -m rules.admin_codes"


def test_national_list_covers_every_sido_and_sigungu_with_unique_ten_digit_codes() -> None:
    assert NATIONAL["admin_code"].is_unique().all()
    assert NATIONAL["admin_code"].str.contains(r"^\d{10}$").all()
    assert set(NATIONAL["sido_code"]) == set(load_sido()["sido_code"])
    assert len(set(NATIONAL["sido_code"])) == 17
    assert set(NATIONAL["sigungu_code"]) == set(load_sigungu()["sigungu_code"])
    assert (NATIONAL["admin_code"].str.slice(0, 5) == NATIONAL["sigungu_code"]).all()


def test_national_list_keeps_pajus_real_codes_and_marks_every_other_code_synthetic() -> None:
    paju = set(load_admin_codes("paju"))
    real = NATIONAL.filter(pl.col("synthetic") == "false")
    assert set(real["admin_code"]) == paju
    synthetic = NATIONAL.filter(pl.col("synthetic") == "true")
    assert synthetic["name_ko"].str.starts_with("합성").all()
    assert synthetic.height + real.height == NATIONAL.height


def test_a_national_program_points_at_the_list_with_city_national() -> None:
    codes = load_admin_codes("national")
    assert codes == national_admin_codes()
    assert len(codes) == NATIONAL.height
    assert "4148057000" in codes and "1111051000" in codes
    assert "4148099999" not in codes


def test_capital_region_is_seoul_incheon_and_gyeonggi() -> None:
    capital = load_sido().filter(pl.col("capital_region"))["name_ko"].to_list()
    assert sorted(capital) == ["경기도", "서울특별시", "인천광역시"]
