"""The `import-results` Prefect flow: record the bank's and card operator's results (issue 15).

An import is a ledger event of its own: a signed run record in the program's chain
(`trigger = results_import`) whose one output, `audit/results/program=P/run_id=R.parquet`, holds
every line it accepted with the state it moved its attempt to (`flows.audit.attempts`). Like a
rotation it takes the program's lock, finishes what a crash left and checks the chain and its
anchor first, and commits through the same staging, so a crash leaves it done or not done.

A result file is accepted whole or not at all (lifecycle.md): the first line that names an
attempt this program never issued, disagrees with its amount, repeats or contradicts a recorded
result, or answers a voided attempt refuses every file of the import (exit 3), and nothing is
recorded. A file imported before (the same SHA-256) is skipped and said so.
"""

from __future__ import annotations

import datetime as dt
from contextlib import ExitStack
from functools import cached_property
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows.audit import attempts as tried
from flows.audit import records as audit
from flows.audit import release
from flows.errors import InputRejected, UsageError
from flows.i18n import _
from flows.inputs.ledger import payment_states
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

RESULT_KIND = "result"  # the `kind` of a result file in the import's run record `inputs`


class ImportParams(BaseModel):
    """Which result files to record for which program."""

    model_config = ConfigDict(extra="forbid")

    program: str = Field(min_length=1)
    out: Path
    files: list[Path] = Field(min_length=1)
    operator: str = Field(default="unknown", min_length=1)
    reason: str | None = None
    programs_dir: Path | None = None


class ImportSummary(BaseModel):
    """What an import recorded, for the command line."""

    run_id: str | None  # None: nothing new (every file was imported before)
    program: str
    message: str
    states: dict[str, int] = Field(default_factory=dict)  # lines per state recorded
    skipped: list[str] = Field(default_factory=list)  # files imported before, and by which import
    page: str | None = None  # the program page, rebuilt after the import (flows.run.page)


@flow(name="import-results", log_prints=False, validate_parameters=True)
def import_results(params: ImportParams) -> ImportSummary:
    """Record result files of a program's payments as a signed ledger event."""
    return ledger_event(_import, params)


def imported_before(runs: pl.DataFrame, trigger: str = tried.RESULTS) -> dict[str, tuple[str, str]]:
    """Return {SHA-256: (file, import run id)} of every file a committed import read.

    `trigger`: the kind of import (results, or review decisions).
    """
    if not runs.height:
        return {}
    found: dict[str, tuple[str, str]] = {}
    imports = runs.filter(
        (pl.col("trigger") == trigger) & (pl.col("status") == "committed")
    ).select("run_id", "inputs")
    for row in imports.iter_rows(named=True):
        for item in row["inputs"]:
            found.setdefault(item["sha256"], (item["file"], row["run_id"]))
    return found


def read_lines(
    files: list[Path], before: dict[str, tuple[str, str]]
) -> tuple[pl.DataFrame, list[dict[str, object]], list[str]]:
    """Read every result file; return the new files' lines in order, their inputs, and skips."""
    from flows.inputs.ledger import sha256_file
    from flows.results.formats import read_result_file

    frames, inputs, skipped = [], [], []
    seen: dict[str, str] = {}
    for path in files:
        if not path.is_file():
            raise UsageError(_("bad usage: result file {path} does not exist").format(path=path))
        sha = sha256_file(path)  # a file imported before is skipped unread
        if sha in before:
            name, by = before[sha]
            skipped.append(
                _("{name} was imported before by {by} (as {name2}): skipped").format(
                    name=path.name, by=by, name2=name
                )
            )
            continue
        if sha in seen:
            skipped.append(
                _("{name} is the same file as {value}: read once").format(
                    name=path.name, value=seen[sha]
                )
            )
            continue
        seen[sha] = path.name
        lines = read_result_file(path)
        frames.append(lines)
        inputs.append(
            {
                "kind": RESULT_KIND,
                "file": path.name,
                "sha256": sha,
                "rows": lines.height,
                "encoding": None,
                "skipped_by_run": None,
                "rows_closed": None,
            }
        )
    if not frames:
        return pl.DataFrame(), inputs, skipped
    lines = pl.concat(frames, how="vertical_relaxed").with_row_index("seq")
    return lines.with_columns(pl.col("seq").cast(pl.Int64)), inputs, skipped


def other_program(
    out: Path, program: str, ids: pl.Series, column: str = "payment_id"
) -> str | None:
    """Return the program under `out` whose decision records carry one of `ids` in `column`."""
    root = out / "audit/decisions"
    for folder in sorted(root.glob("program=*")) if root.is_dir() else []:
        name = folder.name.removeprefix("program=")
        if name == program:
            continue
        found = (
            pl.scan_parquet(folder / "**/*.parquet", hive_partitioning=False)
            .filter(pl.col(column).is_in(ids.implode()))
            .select(pl.len())
            .collect()
            .item()
        )
        if found:
            return name
    return None


def refuse(out: Path, program: str, checked: pl.DataFrame) -> None:
    """Raise InputRejected for the first line of an import that may not be recorded."""
    faulty = checked.filter(pl.col("fault").is_not_null())
    if not faulty.height:
        return
    line = faulty.row(0, named=True)
    file, at, instruction, fault = (
        line["result_file"],
        line["line"],
        line["instruction_id"],
        line["fault"],
    )
    if fault == tried.UNKNOWN:
        owner = other_program(out, program, faulty["payment_id"])
        if owner is not None:
            raise InputRejected(
                file,
                _(
                    "instruction {instruction} is a payment of program {owner}, not "
                    "{program} (a result file of another program)"
                ).format(instruction=instruction, owner=owner, program=program),
                _(
                    "Import it with --program set to the program that paid it; "
                    "nothing of this import was recorded."
                ),
                line=at,
            )
        raise InputRejected(
            file,
            _(
                "instruction {instruction} names an attempt program {program} "
                "never issued (unknown instruction id)"
            ).format(instruction=instruction, program=program),
            _(
                "Check --program and --out, or ask the bank or card operator "
                "which file they answered; nothing of this import was recorded."
            ),
            line=at,
        )
    if fault == tried.AMOUNT:
        raise InputRejected(
            file,
            _(
                "instruction {instruction} says {amount_krw:,} won for an "
                "attempt of {issued_krw:,} won (amount mismatch)"
            ).format(
                instruction=instruction,
                amount_krw=line["amount_krw"],
                issued_krw=line["issued_krw"],
            ),
            _(
                "Ask the bank or card operator for a corrected file; nothing of "
                "this import was recorded."
            ),
            line=at,
        )
    if fault == tried.VOIDED_ATTEMPT:
        raise InputRejected(
            file,
            _("instruction {instruction} is a result for a voided attempt").format(
                instruction=instruction
            ),
            _(
                "Ask the bank or card operator why they processed a voided "
                "payment; nothing of this import was recorded."
            ),
            line=at,
        )
    if fault == tried.NOT_RELEASED:
        raise InputRejected(
            file,
            _("instruction {instruction} is a result for an attempt not released yet").format(
                instruction=instruction
            ),
            _("Check that the file answers a released run; nothing of this import was recorded."),
            line=at,
        )
    if fault == tried.DUPLICATE:
        raise InputRejected(
            file,
            _(
                "instruction {instruction} repeats a result already recorded "
                "(duplicate: the attempt is {was})"
            ).format(instruction=instruction, was=line["was"]),
            _(
                "Remove the repeated line, or import only the files not imported "
                "yet; nothing of this import was recorded."
            ),
            line=at,
        )
    raise InputRejected(
        file,
        _(
            "instruction {instruction} says {state} for an attempt already "
            "{was} (conflicting results)"
        ).format(instruction=instruction, state=line["state"], was=line["was"]),
        _(
            "Ask the bank or card operator which result holds and for a "
            "corrected file; nothing of this import was recorded."
        ),
        line=at,
    )


def _import(params: ImportParams, held: ExitStack) -> ImportSummary:
    started = disburse_flow.now()
    run_id = new_run_id(started)
    out = params.out.resolve()
    program = load_program_or_usage(params.program, params.programs_dir)
    signer = signing_key()
    runs, head = open_chain(out, program.id, run_id, started, signer, held)
    lines, inputs, skipped = read_lines(params.files, imported_before(runs))
    if not inputs:
        message = _("nothing new to import: {skipped}").format(skipped="; ".join(skipped))
        get_run_logger().info(message)
        return ImportSummary(run_id=None, program=program.id, message=message, skipped=skipped)
    current = payment_states(out, program.id, runs, lines["payment_id"])
    paid = runs.filter(pl.col("status") == "committed", pl.col("total_paid_krw") > 0)
    if not paid.height:
        raise UsageError(
            _(
                "bad usage: program {id} has paid nothing under {out} yet: there "
                "is no payment a result could answer; check --program and --out"
            ).format(id=program.id, out=out)
        )
    checked = tried.transitions(lines, current)
    refuse(out, program.id, checked)
    events = checked.select(
        pl.col(c).cast(t) if c != "result_line" else pl.col("line").cast(t).alias(c)
        for c, t in tried.EVENT_SCHEMA.items()
    )
    counts = dict(events.group_by("state").len().iter_rows())
    committed = runs.filter(pl.col("status") == "committed", ~pl.col("dry_run"))
    run_month = str(committed["run_month"].max()) if committed.height else started.strftime("%Y-%m")
    staging = Staging(out, program.id, run_month, run_id)
    staging.write(
        layout.results_file(program.id, run_id),
        audit.parquet_bytes(events, {"jiwon.table": "results", "jiwon.program": program.id}),
    )
    detail = {"lines": events.height, "states": counts, "files": [i["file"] for i in inputs]}
    shown = ", ".join(f"{n:,} {s}" for s, n in sorted(counts.items()))
    message = _("imported {height:,} result line(s) from {len} file(s): {shown}").format(
        height=events.height, len=len(inputs), shown=shown
    )
    if skipped:
        message += "; " + "; ".join(skipped)
    record = event_record(
        program,
        run_id,
        started,
        run_month,
        tried.RESULTS,
        params.operator,
        params.reason,
        {"results": detail},
        message,
        inputs,
    )
    commit(record, staging, head, signer)
    get_run_logger().info(
        _("results import {run_id} of {program}: {message}").format(
            run_id=run_id, program=program.id, message=message
        )
    )
    page = disburse_flow.rebuild_program_page(out, program.id, params.programs_dir)
    return ImportSummary(
        run_id=run_id,
        program=program.id,
        message=message,
        states=counts,
        skipped=skipped,
        page=str(page) if page else None,
    )


class Reconciliation(BaseModel):
    """Where a program's payments stand in money (`jiwon results status`, the program page)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    program: str
    today: dt.date
    attempts: pl.DataFrame  # flows.audit.attempts.reconcile: one row per attempt
    reasons: pl.DataFrame
    owed_again: int  # payments whose newest attempt failed

    # The totals count distinct people per state (seven n_unique over every attempt, 2.8 s at
    # 5.4 million): only `results status` prints them, so the program page does not pay for them.
    @cached_property
    def by_program(self) -> pl.DataFrame:
        """Totals over every attempt of the program (`flows.audit.attempts.totals`)."""
        return tried.totals(self.attempts, [])

    @cached_property
    def by_run(self) -> pl.DataFrame:
        """Totals per run and its release."""
        return tried.totals(self.attempts, ["run_id", "release"])

    @cached_property
    def by_file(self) -> pl.DataFrame:
        """Totals per run and payment file."""
        return tried.totals(self.attempts, ["run_id", "payment_file"])


def reconciliation(
    out: Path, program_id: str, today: dt.date | None = None, programs_dir: Path | None = None
) -> Reconciliation:
    """Return the program's attempts and their totals per program, run and file (read only)."""
    from flows.inputs.ledger import run_records

    program = load_program_or_usage(program_id, programs_dir)
    runs = run_records(out, program.id)
    if not runs.height:
        raise UsageError(
            _("bad usage: program {id} has no runs under {out}").format(id=program.id, out=out)
        )
    current = payment_states(out, program.id, runs)
    released = release.releases(runs).select("run_id", "release", "released_on")
    day = today or disburse_flow.now().astimezone(dt.timezone(dt.timedelta(hours=9))).date()
    rows = tried.reconcile(current, released, program.result_due_days, day)
    return Reconciliation(
        program=program.id,
        today=day,
        attempts=rows,
        reasons=tried.reasons(rows),
        owed_again=int(rows["owed_again"].sum()),
    )
