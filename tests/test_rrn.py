"""RRN expressions: birth date and century, old-scheme check digit, masks, age."""

from __future__ import annotations

import datetime as dt

import polars as pl

from flows.checks import rrn


def one(expr: pl.Expr, **columns: object) -> object:
    return pl.DataFrame({k: [v] for k, v in columns.items()}).select(expr).item()


def test_birth_date_uses_digit7_for_the_century() -> None:
    assert one(rrn.birth_date(), rrn="7503121000000") == dt.date(1975, 3, 12)
    assert one(rrn.birth_date(), rrn="1205054000000") == dt.date(2012, 5, 5)
    assert one(rrn.birth_date(), rrn="9901019000000") == dt.date(1899, 1, 1)
    assert one(rrn.birth_date(), rrn="9902301000000") is None  # 30 February


def test_check_digit_accepts_valid_korean_and_foreign_numbers() -> None:
    assert one(rrn.check_digit_ok(), rrn="7503121123458")
    assert not one(rrn.check_digit_ok(), rrn="7503121123459")
    # foreign variant: (13 - sum % 11) % 10
    body = "920303613131"
    total = sum(int(d) * w for d, w in zip(body, rrn.WEIGHTS, strict=True))
    assert one(rrn.check_digit_ok(), rrn=body + str((13 - total % 11) % 10))


def test_checksum_is_not_checked_for_numbers_born_from_2020_10_05() -> None:
    frame = pl.DataFrame({"rrn": ["2102033918273", "2010043918273"]}).with_columns(
        p_rrn_birth=rrn.birth_date()
    )
    assert frame.select(rrn.checksum_warning().alias("w"))["w"].to_list() == [False, True]


def test_masks_keep_birth_date_sex_digit_and_outer_name_characters() -> None:
    assert one(rrn.masked(), rrn="7503121123459") == "750312-1******"
    assert one(rrn.masked(), rrn="75031211234") is None
    names = pl.DataFrame({"name": ["김민수", "윤아", "남궁민수", "김", None]})
    assert names.select(rrn.masked_name())["name"].to_list() == [
        "김*수",
        "윤*",
        "남**수",
        "*",
        None,
    ]


def test_age_on_counts_completed_years_on_the_reference_date() -> None:
    day = dt.date(2024, 12, 26)
    born = pl.DataFrame({"b": [dt.date(2005, 12, 26), dt.date(2005, 12, 27), dt.date(2006, 1, 1)]})
    assert born.select(rrn.age_on(pl.col("b"), day).alias("age"))["age"].to_list() == [19, 18, 18]
