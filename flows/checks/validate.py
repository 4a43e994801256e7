"""Normalise values, parse them, and run the pandera schemas: every row keeps going, with reasons.

A row that fails a check is not dropped: it gets `quarantined = true` and its reason codes, and
later stages give it the outcome QUARANTINED. File-level gates (mixed `as_of`, quarantine rate)
raise instead, because they make the whole delivery untrustworthy.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandera.polars as pa
import polars as pl

from flows.checks import rrn
from flows.decide.codes import BY_CODE
from flows.decide.polars_engine import ENGINE
from flows.errors import InputRejected, RunHalted
from flows.i18n import _
from flows.inputs.excel import reject_spreadsheet_numbers
from flows.inputs.ingest import Delivery, InputFile, Kind
from rules.program import Program

FULLWIDTH = [chr(0xFF10 + i) for i in range(10)] + ["－", "\u3000"]
ASCII = [str(i) for i in range(10)] + ["-", " "]
ID_COLUMNS = ("rrn", "applicant_rrn", "account_no")
QUARANTINE_SCHEMA = {
    "source_kind": pl.String,
    "source_file": pl.String,
    "source_row": pl.Int64,
    "column": pl.String,
    "value": pl.String,
    "reason_code": pl.String,
    "message_ko": pl.String,
    "message_en": pl.String,
    "extra_columns": pl.String,
}
IGNORED_COLUMN = "COLUMN_IGNORED"


def normalise(frame: pl.LazyFrame, columns: list[str], fullwidth: bool = True) -> pl.LazyFrame:
    """Trim, turn full-width digits and hyphens into ASCII, blanks into nulls, strip RRN hyphens.

    `fullwidth=False` skips the full-width pass when ingest saw no full-width bytes at all.
    """
    cleaned = [
        (pl.col(c).str.replace_many(FULLWIDTH, ASCII) if fullwidth else pl.col(c))
        .str.strip_chars()
        .alias(c)
        for c in columns
    ]
    ids = [pl.col(c).str.replace_all(r"[-\s]", "").alias(c) for c in ID_COLUMNS if c in columns]
    blanks = [pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in columns]
    return frame.with_columns(cleaned).with_columns(ids).with_columns(blanks)


def parse_date(column: str) -> pl.Expr:
    """Return the column as a date from YYYY-MM-DD or YYYYMMDD, null when it is neither."""
    return pl.coalesce(
        pl.col(column).str.to_date("%Y-%m-%d", strict=False),
        pl.col(column).str.to_date("%Y%m%d", strict=False),
    )


def parse_timestamp(column: str) -> pl.Expr:
    """Return an ISO 8601 timestamp in Asia/Seoul (the zone when no offset is given).

    Tried in order: `YYYY-MM-DD[T ]HH:MM:SS[.f]`, `YYYY-MM-DD[T ]HH:MM`, then with an offset or
    `Z`. The later forms see only the rows the first did not parse (the others are null for
    them), so the common form costs one pass and not three (issue 16).
    """
    text = pl.col(column)
    seconds = naive(text).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_unit="us")
    rest = pl.when(seconds.is_null()).then(text)
    with_offset = rest.str.replace("Z$", "+00:00").str.replace(r"\.\d+([+-])", "$1")
    return pl.coalesce(
        seconds.dt.replace_time_zone("Asia/Seoul"),
        naive(rest)
        .str.to_datetime("%Y-%m-%d %H:%M", strict=False, time_unit="us")
        .dt.replace_time_zone("Asia/Seoul"),
        with_offset.str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%:z", strict=False, time_unit="us"
        ).dt.convert_time_zone("Asia/Seoul"),
    )


def naive(text: pl.Expr) -> pl.Expr:
    """Return a timestamp's text with a space for its `T` and no fraction of a second."""
    return text.str.replace("T", " ", literal=True).str.replace(r"\.\d+$", "")


def parse_registry(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Add the parsed `p_*` columns the registry checks compare (`p_as_of`: see check_as_of)."""
    return frame.with_columns(
        p_rrn_birth=rrn.birth_date("rrn"),
        p_birth_date=parse_date("birth_date"),
        p_registered_on=parse_date("registered_on"),
        p_status_changed_on=parse_date("status_changed_on"),
    )


def parse_enrollment(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Add the parsed `p_*` columns the enrollment checks compare."""
    return frame.with_columns(
        p_rrn_birth=rrn.birth_date("rrn"), p_applied_at=parse_timestamp("applied_at")
    )


def failure_cases(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> pl.DataFrame:
    """Run `schema` over every row and return one row per failed check: index, column, code."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as e:
        cases = e.failure_cases
        if cases["index"].null_count():
            broken = cases.filter(pl.col("index").is_null()).row(0, named=True)
            raise RuntimeError(
                f"schema {schema.name} could not run check {broken['check']} on "
                f"column {broken['column']}"  # not its failure case: that can be a value
            ) from None
        return cases.select(
            pl.col("index").cast(pl.UInt32),
            "column",
            pl.col("check").alias("reason_code"),
            pl.col("failure_case").alias("value"),
        )
    return pl.DataFrame(
        schema={
            "index": pl.UInt32,
            "column": pl.String,
            "reason_code": pl.String,
            "value": pl.String,
        }
    )


def attach_reasons(frame: pl.DataFrame, cases: pl.DataFrame) -> pl.DataFrame:
    """Add `reason_codes` (sorted, unique) and `quarantined` to every row from its failures.

    Joins on the row index alone and adds the two columns, so the wide frame is not copied.
    """
    per_row = cases.group_by("index").agg(reason_codes=pl.col("reason_code").unique().sort())
    reasons = (
        pl.DataFrame({"index": pl.int_range(frame.height, dtype=pl.UInt32, eager=True)})
        .join(per_row, on="index", how="left", maintain_order="left")
        .get_column("reason_codes")
    )
    return frame.with_columns(
        reason_codes=reasons.fill_null(pl.lit([], dtype=pl.List(pl.String))),
        quarantined=reasons.is_not_null(),
    )


def quarantine_report(
    frame: pl.DataFrame, cases: pl.DataFrame, delivery: Delivery | None = None
) -> pl.DataFrame:
    """Return one row per failed check, with source file and row, value and messages.

    Each row also carries the values of the file's unknown extra columns (`extra_columns`, JSON),
    and each unknown column gets one line of its own (reason COLUMN_IGNORED, no row) saying that
    it was ignored.
    """
    messages = pl.DataFrame(
        {
            "reason_code": list(BY_CODE),
            "message_ko": [c.ko for c in BY_CODE.values()],
            "message_en": [c.en for c in BY_CODE.values()],
        }
    )
    extra = (
        pl.col("source_extra") if "source_extra" in frame.columns else pl.lit(None, dtype=pl.String)
    )
    sources = frame.select(
        "source_kind", "source_file", "source_row", extra_columns=extra
    ).with_row_index("index")
    failures = cases.join(sources, on="index", how="left")
    ignored = pl.DataFrame(
        [
            {
                "source_kind": f.kind,
                "source_file": f.file,
                "source_row": None,
                "column": column,
                "value": None,
                "reason_code": IGNORED_COLUMN,
                "extra_columns": None,
            }
            for f in (delivery.files if delivery else [])
            if not f.skipped_by_run
            for column in f.ignored_columns
        ],
        schema={
            c: t for c, t in QUARANTINE_SCHEMA.items() if c not in ("message_ko", "message_en")
        },
    )
    return (
        pl.concat([failures.select(ignored.columns), ignored])
        .join(messages, on="reason_code", how="left")
        .select(list(QUARANTINE_SCHEMA))
        .sort("source_kind", "source_file", "source_row", "column", nulls_last=False)
    )


def checksum_warnings(frame: pl.DataFrame) -> pl.DataFrame:
    """Add `warning_codes` with RRN_CHECKSUM_MISMATCH for valid old-scheme numbers that fail it."""
    checksum = (
        pl.when(~pl.col("quarantined") & rrn.checksum_warning("rrn").fill_null(False))
        .then(pl.lit(["RRN_CHECKSUM_MISMATCH"]))
        .otherwise(pl.lit([], dtype=pl.List(pl.String)))
    )
    return frame.lazy().with_columns(warning_codes=checksum).collect(engine=ENGINE)


def check_as_of(frame: pl.DataFrame, reference_date: dt.date, must_equal: bool) -> dt.date:
    """Return the delivery's single `as_of`; reject a blank, mixed, early or wrong one.

    Works on the distinct (file, as_of) pairs, so the dates are parsed a handful of times, not
    once per row; the usual delivery (one value everywhere) costs one comparison per row.
    """
    first = frame["as_of"][0] if frame.height else None
    if first is not None and frame.select(pl.col("as_of").eq_missing(first).all()).item():
        frame = frame.head(1)  # every row holds the same text: checking one row checks them all
    pairs = (
        frame.lazy()
        .group_by("source_file", "as_of")
        .agg(first_row=pl.col("source_row").min())
        .with_columns(p_as_of=parse_date("as_of"))
        .sort("source_file", "first_row")
        .collect(engine=ENGINE)
    )
    per_file = pairs.group_by("source_file", maintain_order=True).agg(
        pl.col("as_of").sort(nulls_last=True), pl.col("p_as_of").drop_nulls().unique()
    )
    for row in per_file.iter_rows(named=True):  # bounded: one row per file
        if len(row["as_of"]) != 1 or len(row["p_as_of"]) != 1:
            values = ", ".join(repr(v) for v in row["as_of"][:5])
            raise InputRejected(
                row["source_file"],
                _("as_of (기준일) must be one date on every row, found {values}").format(
                    values=values
                ),
                _("Ask for a single-snapshot extract."),
            )
    firsts = per_file["p_as_of"].list.first()
    dates = sorted(set(firsts.to_list()))  # bounded: one per file
    if len(dates) > 1:
        raise InputRejected(
            per_file["source_file"][-1],
            _("as_of differs between files of one delivery ({join})").format(
                join=", ".join(map(str, dates))
            ),
            _("Deliver files of a single snapshot together."),
        )
    as_of: dt.date = dates[0]
    if as_of < reference_date or (must_equal and as_of != reference_date):
        rule = _("equal to") if must_equal else _("on or after")
        raise InputRejected(
            per_file["source_file"][0],
            _("as_of {as_of} is not {rule} the program's reference date {reference_date}").format(
                as_of=as_of, rule=rule, reference_date=reference_date
            ),
            _("Ask for the snapshot of the program's reference date."),
        )
    return as_of


def check_quarantine_rate(delivery: Delivery, frame: pl.DataFrame, threshold: float) -> None:
    """Halt when the share of quarantined rows of a delivery exceeds the program's threshold."""
    check_rate(delivery.kind, int(frame["quarantined"].sum()), frame.height, threshold)


def check_rate(kind: str, bad: int, rows: int, threshold: float) -> None:
    """Halt when `bad` of a delivery's `rows` is a share above the program's threshold."""
    if rows and bad / rows > threshold:
        raise RunHalted(
            _(
                "run halted: {bad} of {rows} {kind} rows ({value:.2%}) failed "
                "row checks, above the program's threshold of {threshold:.2%}; "
                "nothing was paid. Fix the rows listed in the quarantine report "
                "and deliver again."
            ).format(bad=bad, rows=rows, kind=kind, value=bad / rows, threshold=threshold)
        )


def empty_quarantine() -> pl.DataFrame:
    """Return a quarantine report with no rows."""
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


def validate_registry(
    delivery: Delivery,
    schema: pa.DataFrameSchema,
    vocabulary: dict[str, Any],
    reference_date: dt.date,
    as_of_must_equal: bool,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return every registry row with reasons and warnings, and the quarantine report."""
    columns = [c for c in delivery.frame.columns if not c.startswith("source_")]
    normalised = normalise(delivery.frame.lazy(), columns, delivery.fullwidth)
    frame = parse_registry(normalised).collect(engine=ENGINE)
    reject_spreadsheet_numbers(frame, "registry")
    as_of = check_as_of(frame, reference_date, as_of_must_equal)
    frame = frame.with_columns(p_as_of=pl.lit(as_of, dtype=pl.Date))  # one date: checked above
    cases = failure_cases(frame, schema)
    checked = checksum_warnings(attach_reasons(frame, cases))
    return checked, quarantine_report(frame, cases, delivery)


def validate_enrollments(
    delivery: Delivery,
    schema: pa.DataFrameSchema,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return every enrollment row with reasons, and the quarantine report."""
    columns = [c for c in delivery.frame.columns if not c.startswith("source_")]
    normalised = normalise(delivery.frame.lazy(), columns, delivery.fullwidth)
    frame = parse_enrollment(normalised).collect(engine=ENGINE)
    reject_spreadsheet_numbers(frame, "enrollment")
    cases = failure_cases(frame, schema)
    checked = attach_reasons(frame, cases).with_columns(
        warning_codes=pl.lit([], dtype=pl.List(pl.String))
    )
    return checked, quarantine_report(frame, cases, delivery)


def validate_delivery(delivery: Delivery, program: Program) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return a delivery's rows checked for `program`, and its quarantine report.

    The one entry point a run validates through, whether it holds the whole delivery or a chunk
    of its files: the schema, vocabulary and snapshot rules come from the program.
    """
    from rules.reference import bank_codes, vocabulary
    from schemas.enrollment import enrollment_schema
    from schemas.registry import registry_schema

    words = vocabulary()
    if delivery.kind == "registry":
        schema = registry_schema(program.admin_codes(), words, program.admin_code_prefixes())
        return validate_registry(
            delivery,
            schema,
            words,
            program.reference_date,
            program.as_of_must_equal_reference_date,
        )
    return validate_enrollments(delivery, enrollment_schema(bank_codes(), words))


def validate_files(
    kind: Kind, frames: list[pl.DataFrame], infos: list[InputFile], program: Program
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate the rows of some files of a delivery together: checked rows and quarantine."""
    return validate_delivery(Delivery.of(kind, frames, infos), program)
