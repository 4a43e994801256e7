"""Detect identifiers that a spreadsheet turned into numbers, and reject the file: never guess.

Excel opens a CSV, reads `0503124123456` as the number 503124123456 and saves it back without
its leading zero, or as `5.03124E+11`; a 16-digit card number loses its last digit to Excel's
15-digit precision and is written `9.41E+15`; bank code `004` becomes `4`. Padding the zeros
back would be a guess (and a guessed RRN pays the wrong person), so a file that shows these
marks is rejected, naming the file, row and column, and the operator re-exports it with the
column typed as text.
"""

from __future__ import annotations

import polars as pl

from flows.errors import InputRejected, masked_value
from flows.i18n import _
from flows.inputs.ingest import COLUMNS, Kind

# What a number looks like after a spreadsheet wrote it: 9.00101E+12, 4148057000.0
NUMBER_FORMS = r"^(\d+(\.\d+)?[eE][+-]?\d+|\d+\.\d*)$"
DIGIT7_2000S = ["3", "4", "7", "8"]  # people born 2000-2009 are the RRNs that start with 0


def registry_rrn_lost_zero() -> pl.Expr:
    """Return true for a 12-digit registry RRN that is the row's birth date minus its leading 0.

    The row's own `birth_date` tells the two apart: a number that lost its leading zero starts
    with digits 2-6 of the birth date (YYMMDD without its 0), a number with a dropped last digit
    (a typo, quarantined as RRN_FORMAT) still starts with the whole YYMMDD.
    """
    born = pl.col("p_birth_date")
    return (
        pl.col("rrn").str.contains(r"^\d{12}$")
        & (born.dt.year() >= 2000)
        & (born.dt.year() <= 2009)
        & (pl.col("rrn").str.slice(0, 5) == born.dt.strftime("%y%m%d").str.slice(1, 5))
        & pl.col("rrn").str.slice(5, 1).is_in(DIGIT7_2000S)
    )


def lost_zero_in_file(short: pl.Expr, column: str) -> pl.Expr:
    """Return true on `short` rows of a file in which no value of `column` kept a leading 0.

    A spreadsheet drops the zero of every value that had one, so a file with short values and
    no zero-led full-width value is what a spreadsheet wrote; where zero-led values survived,
    a short value is a typo and only its row is quarantined.
    """
    return short & ~pl.col(f"_zero_led_{column}")


def zero_led(column: str, width: int) -> pl.Expr:
    """Return, per file, whether some value of `column` is `width` characters starting with 0."""
    return (
        (pl.col(column).str.starts_with("0") & (pl.col(column).str.len_bytes() == width))
        .any()
        .alias(f"_zero_led_{column}")
    )


ZERO_LED: dict[Kind, list[pl.Expr]] = {
    "registry": [],
    "enrollment": [zero_led("rrn", 13), zero_led("applicant_rrn", 13), zero_led("bank_code", 3)],
}


def rough(column: str) -> pl.Expr:
    """Return a cheap superset of `spreadsheet_damage`: a dot or an E, or a short identifier."""
    value = pl.col(column)
    suspect = value.str.contains(r"[.eE]")
    if column in ("rrn", "applicant_rrn"):
        suspect = suspect | (value.str.len_bytes() == 12)
    if column == "bank_code":
        suspect = suspect | (value.str.len_bytes() <= 2)
    return suspect.fill_null(False)


def enrollment_rrn_lost_zero(column: str) -> pl.Expr:
    """Return true for a 12-digit RRN that a leading 0 would make a real 2000s RRN."""
    value = pl.col(column)
    real_date = (
        pl.concat_str(pl.lit("200"), value.str.slice(0, 5))
        .str.to_date("%Y%m%d", strict=False)
        .is_not_null()
    )
    short = value.str.contains(r"^\d{12}$") & value.str.slice(5, 1).is_in(DIGIT7_2000S)
    return lost_zero_in_file(short & real_date, column)


LOST_ZERO: dict[Kind, dict[str, pl.Expr]] = {
    "registry": {"rrn": registry_rrn_lost_zero()},
    "enrollment": {
        "rrn": enrollment_rrn_lost_zero("rrn"),
        "applicant_rrn": enrollment_rrn_lost_zero("applicant_rrn"),
        # every code of the bank table starts with 0
        "bank_code": lost_zero_in_file(pl.col("bank_code").str.contains(r"^\d{1,2}$"), "bank_code"),
    },
}


def spreadsheet_damage(column: str, kind: Kind) -> pl.Expr:
    """Return true where a value of `column` shows a spreadsheet's number conversion."""
    damaged = pl.col(column).str.contains(NUMBER_FORMS)
    if column in LOST_ZERO[kind]:
        damaged = damaged | LOST_ZERO[kind][column]
    return damaged.fill_null(False)


CHECKED: dict[Kind, tuple[str, ...]] = {
    "registry": ("rrn", "household_id", "admin_code"),
    "enrollment": ("rrn", "applicant_rrn", "card_id", "bank_code", "account_no"),
}


def reject_spreadsheet_numbers(frame: pl.DataFrame, kind: Kind) -> None:
    """Raise InputRejected for the first row whose identifier a spreadsheet turned into a number.

    `frame` holds normalised strings with `source_file` and `source_row`.
    """
    columns = [c for c in CHECKED[kind] if c in frame.columns]
    suspects = (
        frame.lazy()
        .with_row_index("_i")
        .filter(pl.any_horizontal(rough(c) for c in columns))
        .collect()
    )
    if suspects.height == 0:  # the usual case: one cheap pass over the delivery
        return
    if ZERO_LED[kind]:
        per_file = frame.lazy().group_by("source_file").agg(ZERO_LED[kind]).collect()
        suspects = suspects.join(per_file, on="source_file", how="left")
    flags = [spreadsheet_damage(c, kind).alias(f"_bad_{c}") for c in columns]
    hits = (
        suspects.lazy()
        .with_columns(flags)
        .filter(pl.any_horizontal(f"_bad_{c}" for c in columns))
        .sort("_i")
        .head(1)
        .collect()
    )
    if hits.height == 0:
        return
    row = hits.row(0, named=True)
    column = next(c for c in columns if row[f"_bad_{c}"])
    value = str(row[column])
    korean = COLUMNS[kind][column]
    raise InputRejected(
        row["source_file"],
        _(
            "column {column} ({korean}) holds {masked_value!r}, which a "
            "spreadsheet made of a number: leading zeros or digits are lost, "
            "and jiwon never guesses them back"
        ).format(column=column, korean=korean, masked_value=masked_value(value)),
        _(
            "Export the file again with this column typed as text (Excel: "
            "import the CSV with Data > From Text/CSV and set the column to "
            "Text); do not retype the values."
        ),
        row=int(row["source_row"]),
    )


__all__ = ["reject_spreadsheet_numbers"]
