"""The review queue: export held applications for officers, import their decisions (issue 18).

`export_queue` writes the program's open queue (applications whose newest decision record is
HELD_FOR_REVIEW) as an XLSX and a CSV an officer fills in (`flows.inputs.review_sheet`):
masked identity only, what the rule needs to see, the application id, and empty columns
`decision`, `reason`, `officer`, `revises`. It reads the trail and writes no ledger event.

`import_reviews` records a filled-in sheet's decisions as a ledger event of its own, like a
results import (`flows.run.results`): a signed run record (`trigger = review_import`) whose one
output, `audit/reviews/program=P/run_id=R/reviews.parquet`, holds every decision it accepted
(`flows.audit.reviews.REVIEW_SCHEMA`), under the program's lock, chain and anchor checked
first, crash safe. A sheet is accepted whole or not at all: the first line refused (see
`refuse`) refuses it with one line naming the file and line, and nothing is recorded. A sheet
imported before (the same SHA-256) is skipped and said so. The next run applies the decisions
(`flows.decide.rules`: `review.approved`, `review.rejected`).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows.audit import attempts as tried
from flows.audit import records as audit
from flows.audit import reviews as review
from flows.errors import InputRejected, UsageError, masked_value
from flows.i18n import _
from flows.run import flow as disburse_flow
from flows.run import paths as layout
from flows.run.flow import (
    commit,
    event_record,
    ledger_event,
    load_program_or_usage,
    new_run_id,
    open_chain,
    signing_key,
)
from flows.run.publish import Staging
from flows.run.results import imported_before, other_program

SHEET_KIND = "review_sheet"  # the `kind` of a review sheet in the import's run record `inputs`


class ReviewParams(BaseModel):
    """Which filled-in review sheet to record, under which output root."""

    model_config = ConfigDict(extra="forbid")

    out: Path
    file: Path
    program: str | None = None  # from the file when not given; refused when they differ
    operator: str = Field(default="unknown", min_length=1)
    reason: str | None = None
    programs_dir: Path | None = None


class ReviewSummary(BaseModel):
    """What a review import recorded, for the command line."""

    run_id: str | None  # None: nothing recorded (imported before, or no decision in it)
    program: str
    message: str
    decisions: dict[str, int] = Field(default_factory=dict)  # approve / reject: lines
    page: str | None = None


class Reviewed(BaseModel):
    """A program's applications and their recorded review decisions, read from the trail."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    latest: pl.DataFrame  # flows.audit.reviews.latest_applications, under the current key
    newest: pl.DataFrame  # flows.audit.reviews.newest_reviews


def reviewed(out: Path, program: str, runs: pl.DataFrame) -> Reviewed:
    """Return the program's applications and recorded decisions (files checked as a run does)."""
    from flows.inputs.ledger import ledger_files, person_keys_now, review_decisions, scan_decisions

    committed = runs.filter((pl.col("status") == "committed") & ~pl.col("dry_run"))
    files = ledger_files(out, committed) if committed.height else []
    if not files:
        raise UsageError(
            _(
                "bad usage: program {program} has no committed run under {out}: "
                "there is no application to review; check --program and --out"
            ).format(program=program, out=out)
        )
    order = runs.with_row_index("_seq").select("run_id", pl.col("_seq").cast(pl.Int64))
    scanned = review.latest_applications(scan_decisions(files), order)
    latest = person_keys_now(out, runs, committed, scanned).collect()
    recorded = review_decisions(out, runs, committed)
    empty = pl.LazyFrame(schema=review.REVIEW_SCHEMA).with_columns(
        review_run_id=pl.lit(None, pl.String), _order=pl.lit(None, pl.Int64)
    )
    newest = review.newest_reviews(recorded if recorded is not None else empty).collect()
    return Reviewed(latest=latest, newest=newest)


def export_queue(
    out: Path, program_id: str, to: Path | None = None, programs_dir: Path | None = None
) -> tuple[int, list[Path]]:
    """Write the program's open review queue as XLSX and CSV; return its size and the files.

    The files go to `to` (default `OUT/review/<program>/`), named for the program and the
    moment: `review-<program>-<UTC time>.xlsx` and `.csv`.
    """
    from flows.inputs.ledger import run_records
    from flows.inputs.review_sheet import write_csv, write_xlsx

    out = out.resolve()
    program = load_program_or_usage(program_id, programs_dir)
    runs = run_records(out, program.id)
    if not runs.height:
        raise UsageError(
            _("bad usage: program {id} has no runs under {out}").format(id=program.id, out=out)
        )
    seen = reviewed(out, program.id, runs)
    newest = seen.newest.select("application_id", "decision", "officer", "review_run_id")
    rows = review.queue(seen.latest.lazy(), newest.lazy(), program.id)
    folder = to or out / "review" / program.id
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"review-{program.id}-{disburse_flow.now():%Y%m%dT%H%M%SZ}"
    xlsx, csv = folder / f"{stem}.xlsx", folder / f"{stem}.csv"
    write_xlsx(rows, xlsx, program.id)
    write_csv(rows, csv)
    return rows.height, [xlsx, csv]


def sheet_program(lines: pl.DataFrame, named: str | None, file: str) -> str:
    """Return the program a sheet is for: its document property, else its rows' first.

    Refused when it holds what looks like an RRN or a control character: it would be quoted.
    """
    programs = lines["program"].drop_nulls()
    if not named and not programs.len():
        raise InputRejected(
            file,
            _("names no program (its program column is blank)"),
            _(
                "Export the queue again with `jiwon review export` and fill in "
                "that file; nothing of this sheet was recorded."
            ),
        )
    program = named or str(programs[0])
    if review.rrn_in(program) or review.control_in(program):
        raise InputRejected(
            file,
            _(
                "names its program with what looks like a resident registration "
                "number or with a control character (not quoted here)"
            ),
            _(
                "Export the queue again with `jiwon review export` and fill in "
                "that file; nothing of this sheet was recorded."
            ),
        )
    return program


@flow(name="import-reviews", log_prints=False, validate_parameters=True)
def import_reviews(params: ReviewParams) -> ReviewSummary:
    """Record an officer's review decisions as a signed ledger event."""
    return ledger_event(_import, params)


def refuse(out: Path, program: str, file: str, checked: pl.DataFrame) -> None:
    """Raise InputRejected for the first line of a sheet that may not be recorded."""
    faulty = checked.filter(pl.col("fault").is_not_null()).sort("line")
    if not faulty.height:
        return
    row = faulty.row(0, named=True)
    at, fault, application = row["line"], row["fault"], row["application_id"]
    # A refused cell is quoted masked (digits past the sixth starred): messages reach logs.
    shown = {c: masked_value(str(row[c])) for c in ("program", "decision", "revises")}
    typed = masked_value(str(application))  # an application id the trail may not know
    if fault == review.RRN_IN_TEXT:
        raise InputRejected(
            file,
            _(
                "column {rrn_column} holds what looks like a resident "
                "registration number (not quoted here)"
            ).format(rrn_column=row["rrn_column"]),
            _(
                "Remove it (the trail keeps masked identities only); nothing of "
                "this sheet was recorded."
            ),
            line=at,
        )
    if fault == review.CONTROL:
        raise InputRejected(
            file,
            _(
                "column {control_column} holds a control or invisible character "
                "(a line break, tab, escape code or zero-width space)"
            ).format(control_column=row["control_column"]),
            _("Retype the cell as one line of plain text; nothing of this sheet was recorded."),
            line=at,
        )
    if fault == review.FORMULA:
        raise InputRejected(
            file,
            _(
                "column {formula} holds a formula or text starting with =, +, - "
                "or @ (never evaluated)"
            ).format(formula=row["formula"]),
            _("Type the value as plain text (no formula); nothing of this sheet was recorded."),
            line=at,
        )
    if fault == review.OTHER_PROGRAM:
        raise InputRejected(
            file,
            _("is a row of program {program}, not {program2} (a row for another program)").format(
                program=shown["program"], program2=program
            ),
            _(
                "Import each program's decisions in the sheet exported for it; "
                "nothing of this sheet was recorded."
            ),
            line=at,
        )
    if fault == review.REPEATED:
        raise InputRejected(
            file,
            _("application {typed} appears more than once in the sheet (duplicate id)").format(
                typed=typed
            ),
            _("Keep one row per application; nothing of this sheet was recorded."),
            line=at,
        )
    if fault == review.NO_ID:
        raise InputRejected(
            file,
            _("has a decision but no application id"),
            _(
                "Fill in the decision on the application's own row of the "
                "exported sheet; nothing of this sheet was recorded."
            ),
            line=at,
        )
    if fault == review.BAD_DECISION:
        raise InputRejected(
            file,
            _("decision {decision!r} is neither approve nor reject (승인 or 반려)").format(
                decision=shown["decision"]
            ),
            _(
                "Write approve or reject (승인 or 반려), or leave the row blank to "
                "decide later; nothing of this sheet was recorded."
            ),
            line=at,
        )
    if fault == review.NO_OFFICER:
        raise InputRejected(
            file,
            _("the decision on application {application} names no officer (blank officer)").format(
                application=application
            ),
            _(
                "Write the deciding officer's name in the officer column; "
                "nothing of this sheet was recorded."
            ),
            line=at,
        )
    if fault == review.UNKNOWN:
        ids = checked.filter(pl.col("fault") == review.UNKNOWN)["application_id"]
        owner = other_program(out, program, ids, "application_id")
        if owner is not None:
            raise InputRejected(
                file,
                _(
                    "application {typed} is an application of program {owner}, not "
                    "{program} (a sheet edited into another program)"
                ).format(typed=typed, owner=owner, program=program),
                _(
                    "Import the sheet exported for that program; nothing of this "
                    "sheet was recorded."
                ),
                line=at,
            )
        raise InputRejected(
            file,
            _(
                "application {typed} is no application program {program} decided "
                "(unknown application id)"
            ).format(typed=typed, program=program),
            _(
                "Check the id against the exported sheet, and --out; nothing of "
                "this sheet was recorded."
            ),
            line=at,
        )
    if fault == review.CLOSED:
        raise InputRejected(
            file,
            _(
                "application {application} is closed (a run decided it "
                "{outcome}): a decision on a closed item is refused"
            ).format(application=application, outcome=row["outcome"]),
            _(
                "Export the queue again and decide only the applications it "
                "lists; nothing of this sheet was recorded."
            ),
            line=at,
        )
    if fault == review.NOT_REVISED:
        raise InputRejected(
            file,
            _(
                "application {application} already has a recorded decision "
                "({recorded}, review {recorded_review})"
            ).format(
                application=application,
                recorded=row["recorded"],
                recorded_review=row["recorded_review"],
            ),
            _(
                "To change it, write that review id in the revises column; "
                "nothing of this sheet was recorded."
            ),
            line=at,
        )
    raise InputRejected(
        file,
        _(
            "revises {revises!r} is not the recorded decision of application "
            "{application} (that is {value})"
        ).format(
            revises=shown["revises"],
            application=application,
            value=row["recorded_review"] or "none",
        ),
        _(
            "Write the review id the exported sheet shows for it, or leave "
            "revises blank; nothing of this sheet was recorded."
        ),
        line=at,
    )


def _import(params: ReviewParams, held: ExitStack) -> ReviewSummary:
    from flows.inputs.ledger import sha256_file
    from flows.inputs.review_sheet import read_sheet

    started = disburse_flow.now()
    run_id = new_run_id(started)
    out = params.out.resolve()
    path = params.file
    if not path.is_file():
        raise UsageError(_("bad usage: review sheet {path} does not exist").format(path=path))
    lines, named = read_sheet(path)
    program_id = sheet_program(lines, named, path.name)
    if params.program is not None and params.program != program_id:
        raise InputRejected(
            path.name,
            _("is the review sheet of program {program_id}, not {program} (--program)").format(
                program_id=program_id, program=params.program
            ),
            _(
                "Import it with --program set to the program it was exported "
                "for, or leave --program out; nothing of this sheet was recorded."
            ),
        )
    program = load_program_or_usage(program_id, params.programs_dir)
    signer = signing_key()
    runs, head = open_chain(out, program.id, run_id, started, signer, held)
    sha = sha256_file(path)
    before = imported_before(runs, tried.REVIEW).get(sha)
    if before is not None:
        message = _("nothing new to import: {name} was imported before by {value}").format(
            name=path.name, value=before[1]
        )
        get_run_logger().info(message)
        return ReviewSummary(run_id=None, program=program.id, message=message)
    seen = reviewed(out, program.id, runs)
    checked = review.check_lines(lines, seen.latest, seen.newest, program.id)
    refuse(out, program.id, path.name, checked)
    open_rows = lines.height - checked.height
    if not checked.height:
        message = _("{name} decides nothing (every row is blank): nothing was recorded").format(
            name=path.name
        )
        return ReviewSummary(run_id=None, program=program.id, message=message)
    rows = review.records(checked, started, path.name, sha)
    counts = dict(rows.group_by("decision").len().iter_rows())
    paying = runs.filter(pl.col("status") == "committed", ~pl.col("dry_run"))
    run_month = str(paying["run_month"].max()) if paying.height else f"{started:%Y-%m}"
    staging = Staging(out, program.id, run_month, run_id)
    staging.write(
        layout.reviews_file(program.id, run_id),
        audit.parquet_bytes(rows, {"jiwon.table": "reviews", "jiwon.program": program.id}),
    )
    shown = ", ".join(f"{n:,} {d}" for d, n in sorted(counts.items()))
    message = _(
        "recorded {height:,} review decision(s) from {name}: {shown}; "
        "{open_rows:,} row(s) left blank stay open; the next run applies "
        "them"
    ).format(height=rows.height, name=path.name, shown=shown, open_rows=open_rows)
    record = event_record(
        program,
        run_id,
        started,
        run_month,
        tried.REVIEW,
        params.operator,
        params.reason,
        {"reviews": {"decisions": rows.height, "counts": counts, "file": path.name}},
        message,
        [
            {
                "kind": SHEET_KIND,
                "file": path.name,
                "sha256": sha,
                "rows": rows.height,
                "encoding": None,
                "skipped_by_run": None,
                "rows_closed": None,
            }
        ],
    )
    commit(record, staging, head, signer)
    get_run_logger().info(
        _("review import {run_id} of {program}: {message}").format(
            run_id=run_id, program=program.id, message=message
        )
    )
    page = disburse_flow.rebuild_program_page(out, program.id, params.programs_dir)
    return ReviewSummary(
        run_id=run_id,
        program=program.id,
        message=message,
        decisions=counts,
        page=str(page) if page else None,
    )
