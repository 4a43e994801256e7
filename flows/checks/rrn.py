"""Polars expressions over resident registration numbers: date, century, checksum, masks."""

from __future__ import annotations

import datetime as dt

import polars as pl

NEW_SCHEME_FROM = dt.date(2020, 10, 5)  # numbers issued since then carry random digits 8-13
WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
_CENTURY = {
    "1": "19",
    "2": "19",
    "5": "19",
    "6": "19",
    "3": "20",
    "4": "20",
    "7": "20",
    "8": "20",
    "9": "18",
    "0": "18",
}


def birth_date(rrn: str = "rrn") -> pl.Expr:
    """Return the birth date digits 1-7 encode; null unless 13 digits forming a real date."""
    century = pl.col(rrn).str.slice(6, 1).replace_strict(_CENTURY, default=None)
    return pl.when(pl.col(rrn).str.contains(r"^\d{13}$")).then(
        pl.concat_str(century, pl.col(rrn).str.slice(0, 6)).str.to_date("%Y%m%d", strict=False)
    )


def check_digit_ok(rrn: str = "rrn") -> pl.Expr:
    """Return whether digit 13 is the old-scheme check digit (Korean or foreign variant).

    Integer arithmetic on the number (one parse per row, no per-digit string slices); null
    unless the value is 13 digits. Evaluate it lazily: polars then computes the number once.
    """
    number = pl.when(pl.col(rrn).str.contains(r"^\d{13}$")).then(
        pl.col(rrn).str.to_integer(strict=False)
    )

    def digit(i: int) -> pl.Expr:  # i-th digit from the left, 0-based
        return (number // 10 ** (12 - i)) % 10

    total = pl.sum_horizontal(digit(i) * w for i, w in enumerate(WEIGHTS))
    foreign = digit(6).is_between(5, 8)
    base = pl.when(foreign).then(13).otherwise(11)
    return digit(12) == (base - total % 11) % 10


def checksum_warning(rrn: str = "rrn", born: str = "p_rrn_birth") -> pl.Expr:
    """Return true for an old-scheme number (born before 2020-10-05) whose check digit is wrong."""
    return (pl.col(born) < NEW_SCHEME_FROM) & ~check_digit_ok(rrn)


def masked(rrn: str = "rrn") -> pl.Expr:
    """Return `900101-1******` for a 13-digit number, null for anything else (never leak)."""
    ok = pl.col(rrn).str.contains(r"^\d{13}$")
    return pl.when(ok).then(
        pl.concat_str(
            pl.col(rrn).str.slice(0, 6), pl.lit("-"), pl.col(rrn).str.slice(6, 1), pl.lit("******")
        )
    )


def masked_name(name: str = "name") -> pl.Expr:
    """Return the name with its middle masked: first and, from three characters, last kept."""
    n = pl.col(name).str.len_chars()
    first = pl.col(name).str.slice(0, 1)
    return (
        pl.when(n >= 3)
        .then(
            pl.concat_str(
                first, pl.lit("*").repeat_by(n - 2).list.join(""), pl.col(name).str.slice(-1, 1)
            )
        )
        .when(n == 2)
        .then(pl.concat_str(first, pl.lit("*")))
        .when(n == 1)
        .then(pl.lit("*"))
    )


def age_on(born: pl.Expr, day: dt.date) -> pl.Expr:
    """Return completed years of age on `day` for a birth-date expression."""
    had_birthday = (born.dt.month() < day.month) | (
        (born.dt.month() == day.month) & (born.dt.day() <= day.day)
    )
    return day.year - born.dt.year() - pl.when(had_birthday).then(0).otherwise(1)
