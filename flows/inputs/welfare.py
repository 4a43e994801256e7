"""Read the welfare-status extract (복지 자격 자료), the third input of programs that need it.

The extract is reference data for amounts, not a list of people to decide: it yields no decision
records, its files are recorded with their SHA-256 in the run record, and any bad row rejects the
file (exit 3) naming the file, the row and the fix, because a guessed status pays a wrong amount.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pandera.polars as pa
import polars as pl

from flows.decide.codes import describe
from flows.errors import InputRejected, masked_value
from flows.i18n import _
from flows.inputs.ingest import (
    csv_text,
    decode_to_utf8,
    delivery_files,
    read_csv_strings,
    read_parquet_strings,
)
from schemas.welfare import WELFARE_COLUMNS, welfare_schema


def status_map(vocabulary: dict[str, Any]) -> dict[str, str]:
    """Return label -> status id for every accepted English id and Korean label."""
    mapping: dict[str, str] = {}
    for status, labels in vocabulary["welfare_statuses"].items():
        mapping[status] = status
        mapping.update({label: status for label in labels})
    return mapping


def read_welfare_file(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Read one CSV or Parquet welfare file as strings, with English column names."""
    raw = path.read_bytes()
    sha256 = hashlib.sha256(raw).hexdigest()
    if path.suffix.lower() == ".parquet":
        # read as a registry file: an rrn stored as a number is refused the same way
        frame, encoding = read_parquet_strings(raw, path.name, "registry"), "parquet"
    else:
        utf8, encoding = decode_to_utf8(raw, path.name)
        frame, _sums = read_csv_strings(csv_text(utf8), path.name)
    aliases = {ko: en for en, ko in WELFARE_COLUMNS.items()}
    frame = frame.rename(
        {c: aliases.get(c.replace("\ufeff", "").strip(), c.strip().lower()) for c in frame.columns}
    )
    missing = [c for c in WELFARE_COLUMNS if c not in frame.columns]
    if missing:
        raise InputRejected(
            path.name,
            _("missing required column(s) {join} of the welfare extract").format(
                join=", ".join(missing)
            ),
            _(
                "Ask for an extract with rrn (주민등록번호), welfare_status (복지자격), "
                "as_of (기준일)."
            ),
        )
    info = {
        "kind": "welfare",
        "file": path.name,
        "sha256": sha256,
        "rows": frame.height,
        "encoding": encoding,
        "skipped_by_run": None,
        "rows_closed": 0,
    }
    return frame.select(list(WELFARE_COLUMNS)).with_columns(source_file=pl.lit(path.name)), info


def normalise_welfare(frame: pl.DataFrame, vocabulary: dict[str, Any]) -> pl.DataFrame:
    """Trim values, strip RRN hyphens, map Korean status labels to ids, parse as_of."""
    trimmed = frame.with_columns(pl.col(c).str.strip_chars() for c in WELFARE_COLUMNS)
    return trimmed.with_columns(
        rrn=pl.col("rrn").str.replace_all(r"[-\s]", ""),
        welfare_status=pl.col("welfare_status").replace(status_map(vocabulary)),
        p_as_of=pl.coalesce(
            pl.col("as_of").str.to_date("%Y-%m-%d", strict=False),
            pl.col("as_of").str.to_date("%Y%m%d", strict=False),
        ),
    )


def read_welfare(
    folder: Path, vocabulary: dict[str, Any], reference_date: dt.date
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Return (rrn, welfare_status) of every file in `folder` and the files' descriptions.

    Raises InputRejected for a missing folder, a bad row (with its 1-based row number), an RRN
    listed twice, or an as_of that is not the program's reference date.
    """
    if not folder.is_dir():
        raise InputRejected(
            str(folder),
            _("is not a folder of welfare-status extract files"),
            _("Pass --welfare with the folder the welfare office delivered."),
        )
    paths = delivery_files(folder)
    if not paths:
        raise InputRejected(
            str(folder), _("holds no welfare files (.csv or .parquet)"), _("Deliver the extract.")
        )
    frames, files = [], []
    for path in paths:
        frame, info = read_welfare_file(path)
        frames.append(frame.with_columns(source_row=pl.int_range(1, pl.len() + 1)))
        files.append(info)
    frame = normalise_welfare(pl.concat(frames), vocabulary)
    statuses = list(vocabulary["welfare_statuses"])  # bounded: a vocabulary list, not a column
    try:
        welfare_schema(statuses).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as e:
        first = (
            e.failure_cases.filter(pl.col("index").is_not_null()).sort("index").row(0, named=True)
        )
        row = frame.row(int(first["index"]), named=True)
        value = str(first["failure_case"])
        shown = masked_value(value) if first["column"] == "rrn" else value  # messages reach logs
        raise InputRejected(
            row["source_file"],
            _("welfare row check {check} failed: {en} (value {shown!r})").format(
                check=first["check"], en=describe(first["check"]).en, shown=shown
            ),
            _("Ask the welfare office to correct the extract and deliver it again."),
            row=int(row["source_row"]),
        ) from None
    wrong = frame.filter(pl.col("p_as_of") != reference_date)
    if wrong.height:
        row = wrong.row(0, named=True)
        raise InputRejected(
            row["source_file"],
            _("as_of {as_of} is not the program's reference date {reference_date}").format(
                as_of=row["as_of"], reference_date=reference_date
            ),
            _("Ask for the welfare extract of the program's reference date."),
            row=int(row["source_row"]),
        )
    return frame.select("rrn", "welfare_status"), files
