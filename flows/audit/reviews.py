"""Officers' review decisions on held applications, as frames (issue 18, lifecycle.md).

Pure functions: the ledger (`flows.inputs.ledger`) reads the trail, `flows.run.review` reads
the officer's sheet and writes the trail. An application waits for an officer while its newest
decision record is HELD_FOR_REVIEW (the review queue). An officer's decision is recorded by a
review import (`audit/reviews/`) and applied by the next run that decides the application
again; once that run has decided it otherwise, the item is closed. A recorded decision is
changed only by a later one that says which it revises (`revises`: the review import that
recorded it), never by editing.
"""

from __future__ import annotations

import re
import unicodedata

import polars as pl

from flows.decide.codes import BY_CODE, Outcome
from flows.decide.rules import APPROVE, REJECT

# One row per decision a review import accepted: the trail's `audit/reviews/` files.
REVIEW_SCHEMA = pl.Schema(
    {
        "seq": pl.Int64(),  # order of the decision within its import
        "application_id": pl.String(),
        "person_key": pl.String(),  # the beneficiary's keyed hash, as in the decision records
        "decision": pl.String(),  # approve or reject
        "reason": pl.String(),
        "officer": pl.String(),
        "decided_at": pl.Datetime("us", "UTC"),  # when the import recorded it
        "revises": pl.String(),  # the review import whose decision this one replaces, or null
        "held_run_id": pl.String(),  # the run whose decision record held the application
        "held_reason": pl.String(),  # what the rule needs to see (a reason code)
        "review_file": pl.String(),
        "review_sha256": pl.String(),
        "review_line": pl.Int64(),
    }
)
DECISIONS = (APPROVE, REJECT)
# What an officer may write in `decision` (any case, spaces around): the Korean words too.
WORDS = {"approve": APPROVE, "approved": APPROVE, "승인": APPROVE}
WORDS |= {"reject": REJECT, "rejected": REJECT, "반려": REJECT}

# Why a line of a review sheet is refused (`check_lines`): flows.run.review words each.
(
    CONTROL,
    FORMULA,
    OTHER_PROGRAM,
    NO_ID,
    REPEATED,
    BAD_DECISION,
    NO_OFFICER,
    RRN_IN_TEXT,
    UNKNOWN,
    CLOSED,
    NOT_REVISED,
    WRONG_REVISION,
) = (
    "control",
    "formula",
    "other_program",
    "no_id",
    "repeated",
    "bad_decision",
    "no_officer",
    "rrn_in_text",
    "unknown",
    "closed",
    "not_revised",
    "wrong_revision",
)
# Something shaped like a resident registration number (6 digits, 7 digits, up to 3 characters
# between them: a dash of any kind, a dot, spaces): never recorded, never quoted. Matched in
# `plain` text, so full-width digits and a zero-width character inside are found too.
RRN_LIKE = r"\d{6}\D{0,3}\d{7}"
# What no cell may hold: control characters (C0, C1: an escape sequence or a forged log line),
# invisible format characters (Unicode Cf: a zero-width space) and line or paragraph separators.
CONTROL_CHARS = r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]"
# Text a spreadsheet would run as a formula (flows.pay.credit.FORMULA_START), once `plain`.
FORMULA_LIKE = r"^[=+\-@\t\r]"
# The columns of a sheet's line the checks read (flows.inputs.review_sheet.LINE_COLUMNS).
TEXT_COLUMNS = ("program", "application_id", "decision", "reason", "officer", "revises")


def plain(text: str) -> str:
    """Return text as the checks see it: NFKC-normalised, format characters (Cf) dropped."""
    normal = unicodedata.normalize("NFKC", text)
    return "".join(c for c in normal if unicodedata.category(c) != "Cf").strip()


def plain_expr(column: str) -> pl.Expr:
    """Return a text column as `plain` does (NFKC, no Cf characters, stripped)."""
    return pl.col(column).str.normalize("NFKC").str.replace_all(r"\p{Cf}", "").str.strip_chars()


def rrn_in(text: str) -> bool:
    """Return whether text holds something shaped like a resident registration number."""
    return re.search(RRN_LIKE, plain(text)) is not None


def control_in(text: str) -> bool:
    """Return whether text holds a control, format or line-separator character."""
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text.strip())


def first_column(test: dict[str, pl.Expr]) -> pl.Expr:
    """Return the name of the first column whose test holds (null when none does)."""
    found = pl.lit(None, pl.String)
    for name, holds in reversed(test.items()):
        found = pl.when(holds.fill_null(False)).then(pl.lit(name)).otherwise(found)
    return found


def latest_applications(decided: pl.LazyFrame, order: pl.DataFrame) -> pl.LazyFrame:
    """Return each application's newest decision record (enrollment rows, by chain order).

    `order` (run_id, _seq): each run's place in the chain.
    """
    return (
        decided.filter(pl.col("source_kind") == "enrollment")
        .select(
            pl.col("run_id").cast(pl.String),
            "application_id",
            "person_key",
            "rrn_masked",
            "name_masked",
            "outcome",
            "reason_codes",
            "source_file",
            "source_row",
        )
        .join(order.lazy(), on="run_id", how="inner")
        .sort("_seq")
        .group_by("application_id")
        .agg(pl.all().last())
        .drop("_seq")
    )


def newest_reviews(recorded: pl.LazyFrame) -> pl.LazyFrame:
    """Return each application's newest recorded decision (`recorded` carries `_order`), with
    `review_ids`: the ids of every decision recorded on it (ids jiwon made, never an RRN)."""
    return (
        recorded.sort("_order")
        .group_by("application_id")
        .agg(pl.all().last(), review_ids=pl.col("review_run_id"))
        .drop("_order")
    )


def needs_text(code: pl.Expr) -> pl.Expr:
    """Return what the holding rule needs an officer to see, in Korean and English."""
    said = {c: f"{BY_CODE[c].ko} / {BY_CODE[c].en}" for c in BY_CODE}
    return code.replace_strict(said, default=code, return_dtype=pl.String)


def queue(latest: pl.LazyFrame, newest: pl.LazyFrame, program: str) -> pl.DataFrame:
    """Return the open review queue: held applications, each with a decision recorded for it.

    `latest`: `latest_applications`; `newest`: `newest_reviews`. A decision
    recorded and not applied yet is shown (`recorded_*`): a new one must say it revises it.
    """
    held = latest.filter(pl.col("outcome") == Outcome.HELD_FOR_REVIEW.value).with_columns(
        held_reason=pl.col("reason_codes").list.last()
    )
    recorded = newest.select(
        "application_id",
        recorded_decision=pl.concat_str(
            pl.col("decision"), pl.lit(" ("), pl.col("officer"), pl.lit(")")
        ),
        recorded_review=pl.col("review_run_id"),
    )
    return (
        held.join(recorded, on="application_id", how="left")
        .select(
            program=pl.lit(program),
            application_id="application_id",
            rrn_masked="rrn_masked",
            name_masked="name_masked",
            held_reason="held_reason",
            needs=needs_text(pl.col("held_reason")),
            source_file="source_file",
            source_row="source_row",
            held_by_run="run_id",
            recorded_decision="recorded_decision",
            recorded_review="recorded_review",
            decision=pl.lit(None, pl.String),
            reason=pl.lit(None, pl.String),
            officer=pl.lit(None, pl.String),
            revises=pl.lit(None, pl.String),
        )
        .sort("source_file", "source_row", "application_id")
        .collect()
    )


def decision_word(column: str = "decision") -> pl.Expr:
    """Return an officer's decision as approve or reject (null: blank, or not a decision word)."""
    word = pl.col(column).str.strip_chars().str.to_lowercase()
    return word.replace_strict(WORDS, default=None, return_dtype=pl.String)


def check_lines(
    lines: pl.DataFrame, latest: pl.DataFrame, newest: pl.DataFrame, program: str
) -> pl.DataFrame:
    """Return each decided line of a sheet with the fault refusing it (null when allowed).

    `lines` (line, program, application_id, decision, reason, officer, revises, formula: the
    first column holding a formula, or null) are the sheet's rows that are not blank; rows
    with no decision are left out (still open) unless something else in them is refused.
    `latest`: `latest_applications` of the program; `newest`: `newest_reviews`. Adds `word`
    (approve or reject), `fault`, the application's `outcome`, `person_key`, `held_run_id`,
    `held_reason`, and its recorded decision (`recorded_review`, `recorded`).

    Every text column is checked on every line, decided or not, before anything else (the
    refusal then names the column, never quotes the cell): `rrn_column` names the first holding
    something shaped like an RRN (`RRN_LIKE`, in `plain` text), `control_column` the first
    holding a control or invisible character, and `formula` also names the first whose `plain`
    text starts like a formula (the value is stored stripped, so ' =1' would start with '=').
    """
    known = latest.select(
        "application_id",
        "outcome",
        "person_key",
        held_run_id="run_id",
        held_reason=pl.col("reason_codes").list.last(),
    )
    recorded = newest.select(
        "application_id",
        recorded_review="review_run_id",
        recorded=pl.concat_str(pl.col("decision"), pl.lit(" by "), pl.col("officer")),
        recorded_reviews="review_ids",
    )
    blank = pl.col("decision").str.strip_chars().fill_null("") == ""
    revises = pl.col("revises").str.strip_chars()
    checked = (
        lines.with_columns(
            word=decision_word(),
            _first=pl.col("line").min().over("application_id"),
            _rows=pl.len().over("application_id"),
        )
        .join(known, on="application_id", how="left", maintain_order="left")
        .join(recorded, on="application_id", how="left", maintain_order="left")
    )
    # An id the trail already holds is no RRN: a known application, a review recorded on it
    # (a review id's time and random digits can look like one: 20261129T153827Z-e2446425).
    own = {
        "application_id": pl.col("outcome").is_not_null(),
        "revises": pl.col("recorded_reviews").list.contains(revises),
    }
    rrn = {
        c: plain_expr(c).str.contains(RRN_LIKE) & ~own.get(c, pl.lit(False)).fill_null(False)
        for c in TEXT_COLUMNS
    }
    control = {c: pl.col(c).str.strip_chars().str.contains(CONTROL_CHARS) for c in TEXT_COLUMNS}
    formula_text = {c: plain_expr(c).str.contains(FORMULA_LIKE) for c in TEXT_COLUMNS}
    checked = checked.with_columns(
        rrn_column=first_column(rrn),
        control_column=first_column(control),
        formula=pl.coalesce(pl.col("formula"), first_column(formula_text)),
    )
    fault = (
        pl.when(pl.col("rrn_column").is_not_null())
        .then(pl.lit(RRN_IN_TEXT))
        .when(pl.col("control_column").is_not_null())
        .then(pl.lit(CONTROL))
        .when(pl.col("formula").is_not_null())
        .then(pl.lit(FORMULA))
        .when(pl.col("program").is_not_null() & (pl.col("program") != program))
        .then(pl.lit(OTHER_PROGRAM))
        .when(
            pl.col("application_id").is_not_null()
            & (pl.col("_rows") > 1)
            & (pl.col("line") != pl.col("_first"))
        )
        .then(pl.lit(REPEATED))
        .when(blank)
        .then(pl.lit(None, pl.String))
        .when(pl.col("application_id").is_null())
        .then(pl.lit(NO_ID))
        .when(pl.col("word").is_null())
        .then(pl.lit(BAD_DECISION))
        .when(pl.col("officer").str.strip_chars().fill_null("") == "")
        .then(pl.lit(NO_OFFICER))
        .when(pl.col("outcome").is_null())
        .then(pl.lit(UNKNOWN))
        .when(pl.col("outcome") != Outcome.HELD_FOR_REVIEW.value)
        .then(pl.lit(CLOSED))
        .when(pl.col("recorded_review").is_not_null() & revises.is_null())
        .then(pl.lit(NOT_REVISED))
        .when(revises.is_not_null() & (revises != pl.col("recorded_review")).fill_null(True))
        .then(pl.lit(WRONG_REVISION))
    )
    return (
        checked.with_columns(fault=fault)
        .filter(pl.col("fault").is_not_null() | ~blank)
        .drop("_first", "_rows")
    )


def records(checked: pl.DataFrame, decided_at: object, file: str, sha256: str) -> pl.DataFrame:
    """Return the accepted lines of one sheet as REVIEW_SCHEMA rows (`decided_at`: UTC)."""
    return checked.select(
        seq=pl.int_range(pl.len(), dtype=pl.Int64),
        application_id="application_id",
        person_key="person_key",
        decision="word",
        reason=pl.col("reason").str.strip_chars(),
        officer=pl.col("officer").str.strip_chars(),
        decided_at=pl.lit(decided_at, pl.Datetime("us", "UTC")),
        revises=pl.col("revises").str.strip_chars(),
        held_run_id="held_run_id",
        held_reason="held_reason",
        review_file=pl.lit(file),
        review_sha256=pl.lit(sha256),
        review_line=pl.col("line").cast(pl.Int64),
    ).cast(dict(REVIEW_SCHEMA))  # type: ignore[arg-type]
