"""pandera schema of a welfare-status extract row (복지 자격 자료), keyed by RRN.

The extract lists residents with a welfare status on the program's reference date; everybody else
has the default status (rules/vocabulary.yaml `welfare_status_default`). A row that fails a check
rejects the file: the extract decides amounts, so a guess would pay the wrong amount.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas._check import digits, rule, text

WELFARE_COLUMNS = {"rrn": "주민등록번호", "welfare_status": "복지자격", "as_of": "기준일"}


def welfare_schema(statuses: list[str]) -> pa.DataFrameSchema:
    """Return the schema of a normalised welfare row (`welfare_status` already mapped to its id)."""
    return pa.DataFrameSchema(
        name="WelfareRow",
        columns={
            "rrn": text(
                "주민등록번호, 13 digits after normalisation",
                rule("RRN_FORMAT", digits("rrn", 13), "13 digits"),
                rule("WELFARE_RRN_REPEATED", ~pl.col("rrn").is_duplicated(), "one row per RRN"),
            ),
            "welfare_status": text(
                "복지자격: " + ", ".join(statuses),
                rule(
                    "WELFARE_STATUS_UNKNOWN",
                    pl.col("welfare_status").is_in(statuses),
                    "a known welfare status",
                ),
            ),
            "as_of": text(
                "기준일, the date the extract describes",
                rule("WELFARE_AS_OF_INVALID", pl.col("p_as_of").is_not_null(), "a date"),
            ),
            "p_as_of": pa.Column(pl.Date, nullable=True, description="parsed as_of"),
        },
        strict=False,
    )
