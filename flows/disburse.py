"""The `disburse` Prefect flow: registry and enrollment extracts in, payment files and audit out.

The flow is a thin layer: each task wraps one pure stage function, and every read of the clock,
the environment or the file system happens here, at the edge.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import polars as pl
from prefect import Task, flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Failed
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows import (
    artifacts,
    audit,
    keyprint,
    layout,
    partitioned,
    payments,
    payouts,
    report,
    report_html,
    validate,
    welfare,
    whatif,
)
from flows.decide import Decisions, RunContext, decide
from flows.errors import (
    InputRejected,
    JiwonError,
    LedgerUntrusted,
    RunHalted,
    TrailDamaged,
    Unexpected,
    UsageError,
    scrub,
)
from flows.ingest import Delivery, InputFile, empty_delivery, list_delivery, read_delivery
from flows.ledger import Ledger, check_records, last_run_sha256, read_ledger, run_records
from flows.lock import program_lock
from flows.partitioned import BucketJob, Spilled
from flows.payouts import BankFormat
from flows.publish import Staging, discard, recover
from flows.runners import Runner, flow_api_url, task_runner
from flows.tally import Tally, combine, tally
from rules.program import PROGRAMS_DIR, Program, ProgramError, load_program
from rules.reference import vocabulary

SEOUL = ZoneInfo("Asia/Seoul")


class _RefusalsWithoutTraceback(logging.Filter):
    """Log a refusal jiwon explains in one line (JiwonError) without a Python traceback.

    Prefect logs a failed task or flow run with its traceback; for an input rejected or a run
    halted that is 30 lines of noise around the one line the operator needs, in the terminal and
    in the Prefect UI alike. Unexpected errors keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], JiwonError):
            record.exc_info, record.exc_text = None, None
        return True


for _name in ("prefect.task_runs", "prefect.flow_runs"):
    logging.getLogger(_name).addFilter(_RefusalsWithoutTraceback())
PII_KEY_ENV = "JIWON_PII_KEY"
P = ParamSpec("P")
R = TypeVar("R")


class DisburseParams(BaseModel):
    """What an operator or a schedule asks a run to do (validated by Prefect via pydantic)."""

    model_config = ConfigDict(extra="forbid")

    program: str = Field(min_length=1, description="program id, a folder under rules/programs")
    registry: Path = Field(description="folder of registry extract files")
    enrollments: Path = Field(description="folder of enrollment extract files")
    out: Path = Field(description="output root")
    dry_run: bool = Field(default=False, description="compute everything, pay and publish nothing")
    operator: str = Field(default="unknown", min_length=1)
    reason: str | None = Field(default=None, description="why the run was started")
    trigger: Literal["scheduled", "manual", "rerun"] = "manual"
    run_month: str | None = Field(
        default=None,
        pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
        description="YYYY-MM; default: the current month in Seoul",
    )
    welfare: Path | None = Field(
        default=None, description="folder of welfare-status extract files (programs that need it)"
    )
    programs_dir: Path | None = Field(
        default=None, description="folder of program folders; default: rules/programs"
    )
    bank_file: BankFormat = Field(
        default="fixed_width",
        description="bank payouts as the bulk-transfer file (fixed_width) or ISO 20022 pain.001",
    )
    partitions: int | Literal["auto"] | None = Field(
        default=None,
        description="decide in this many buckets, file by file (auto: one per ~1,000,000 "
        "registry rows); none: the whole delivery in memory at once",
    )
    runner: Runner = Field(
        default="local", description="where a partitioned run's tasks run: local or dask"
    )
    dask_address: str | None = Field(
        default=None, description="Dask scheduler address (runner dask; none: a local cluster)"
    )

    @model_validator(mode="after")
    def _rerun_needs_reason(self) -> DisburseParams:
        if self.trigger == "rerun" and not (self.reason or "").strip():
            raise ValueError("a rerun needs --reason: say why it is run again")
        if isinstance(self.partitions, int) and self.partitions < 1:
            raise ValueError("--partitions must be at least 1 (or auto)")
        if self.partitions is None and (self.runner != "local" or self.dask_address):
            raise ValueError("--runner dask and --dask-address need --partitions")
        return self


@dataclass
class RunSummary:
    """What the command line prints after a run."""

    run_id: str
    program: str
    status: str
    dry_run: bool
    counts: dict[str, int]
    total_paid_krw: int
    message: str
    out: str
    paths: dict[str, str] = field(default_factory=dict)
    payments: int = 0
    changes: list[str] = field(default_factory=list)  # a dry run: what a real run would change


def stage(fn: Callable[P, R]) -> Task[P, R]:
    """Wrap a pure stage function as a Prefect task (no caching: inputs are large frames)."""
    wrapped: Task[P, R] = task(name=fn.__name__.replace("_", "-"), cache_policy=NO_CACHE)(fn)
    return wrapped


@stage
def read_extracts(folder: Path, kind: Literal["registry", "enrollment"]) -> Delivery:
    """Read one delivery folder."""
    return read_delivery(list_delivery(folder, kind), kind)


def skip_consumed(delivery: Delivery, consumed: dict[str, str]) -> Delivery:
    """Drop enrollment files a committed run already consumed; list them as skipped."""
    files = [
        InputFile(**{**f.__dict__, "skipped_by_run": consumed.get(f.sha256)})
        for f in delivery.files
    ]
    skipped = [f.sha256 for f in files if f.skipped_by_run]
    frame = delivery.frame.filter(~pl.col("source_sha256").is_in(skipped))
    return Delivery(delivery.kind, frame, files, delivery.fullwidth)


@stage
def validate_registry(delivery: Delivery, program: Program) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Check every registry row; quarantine failures with reasons."""
    return validate.validate_delivery(delivery, program)


@stage
def validate_enrollments(delivery: Delivery, program: Program) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Check every enrollment row; quarantine failures with reasons."""
    return validate.validate_delivery(delivery, program)


@stage
def decide_outcomes(
    registry: pl.DataFrame,
    enrollment: pl.DataFrame,
    ledger: Ledger,
    ctx: RunContext,
    welfare_status: pl.DataFrame | None = None,
) -> Decisions:
    """Deduplicate, check eligibility and applications, and choose the payees."""
    progress = ledger.progress(ctx.program, ctx.run_month)
    return decide(registry, enrollment, progress, ctx, welfare_status)


@stage
def read_welfare(
    params: DisburseParams, program: Program
) -> tuple[pl.DataFrame | None, list[dict[str, Any]]]:
    """Read the welfare-status extract of a program that needs one (refuse it otherwise)."""
    if not program.needs_welfare_extract:
        if params.welfare is not None:
            raise UsageError(
                f"bad usage: program {program.id} does not use a welfare-status extract; "
                "drop --welfare"
            )
        return None, []
    if params.welfare is None:
        raise UsageError(
            f"bad usage: program {program.id} needs the welfare-status extract: pass --welfare DIR"
        )
    return welfare.read_welfare(params.welfare, vocabulary(), program.reference_date)


@stage
def build_outputs(
    decisions: Decisions, ctx: RunContext, bank_format: BankFormat = "fixed_width"
) -> tuple[list[payments.PaymentFile], pl.DataFrame]:
    """Render the payment files of every payout channel and the decision records."""
    files, assigned = payouts.payment_files(decisions.payees, ctx, bank_format)
    records = audit.decision_records(decisions, ctx, assigned)
    lossy = payouts.lossy_holder_names(decisions.payees, bank_format)
    return files, payouts.with_holder_warnings(records, lossy)


def check_budget(program: Program, ledger: Ledger, total: int) -> None:
    """Halt when this run would take the program past its budget ceiling."""
    if ledger.paid_total_krw + total > program.budget_krw:
        raise RunHalted(
            f"run halted: paying {total:,} won now after {ledger.paid_total_krw:,} won already "
            f"paid exceeds the budget of {program.budget_krw:,} won; nothing was paid. Check the "
            f"inputs, or raise budget_krw in the program file if the council raised it."
        )


def settle(record: audit.RunRecord, params: DisburseParams, files_total: int) -> None:
    """Refuse a run whose payment files and audit disagree; else mark it committed or dry run."""
    if record.total_paid_krw != files_total:
        raise RuntimeError(
            f"payment files total {files_total} but the audit says "
            f"{record.total_paid_krw}: refusing to commit"
        )
    if not params.dry_run:
        record.status = "committed"
        return
    record.status = "dry_run"
    note = "dry run: nothing was paid or published but this record and report"
    record.message = "; ".join(filter(None, [record.message, note]))


def now() -> dt.datetime:
    """Return the time a run starts and commits at (the one clock the flow reads; tests set it)."""
    return dt.datetime.now(dt.UTC)


def check_run_month(run_month: str, program: Program, runs: pl.DataFrame) -> None:
    """Refuse a run month before the program's reference date or its last committed run.

    A later instalment falls due counting from the month that paid the one before, so runs of a
    program go forward in time: rerunning an earlier month after a later one committed, or a
    month before the program began, would bring due dates forward (0010).
    """
    start = program.reference_date.strftime("%Y-%m")
    if run_month < start:
        raise UsageError(
            f"bad usage: --run-month {run_month} is before the month of the program's reference "
            f"date ({program.reference_date}); give {start} or later"
        )
    committed = (
        runs.filter(pl.col("status") == "committed", ~pl.col("dry_run")) if runs.height else runs
    )
    if committed.height and run_month < (last := str(committed["run_month"].max())):
        raise UsageError(
            f"bad usage: --run-month {run_month} is before {last}, the month of the program's last "
            "committed run: runs of a program go forward in time; rerun it as "
            f"--run-month {last} or later"
        )


def pii_key() -> str:
    """Return the deployment's personal-data key; refuse to run without one."""
    key = os.environ.get(PII_KEY_ENV, "")
    if len(key) < 16:
        raise UsageError(
            f"{PII_KEY_ENV} is not set (or shorter than 16 characters): a real run refuses to "
            f"start without the deployment's secret key. Set it from your secret store; "
            f"`jiwon demo` uses a demo key."
        )
    return key


def code_version() -> str:
    """Return the installed jiwon version."""
    try:
        return importlib.metadata.version("jiwon")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def quarantine_csv(report_frame: pl.DataFrame) -> bytes:
    """Return the quarantine report as UTF-8-with-BOM CSV that Excel opens, formulas defused."""
    text_columns = [c for c, t in report_frame.schema.items() if t == pl.String]
    safe = report_frame.with_columns(payments.formula_safe(c) for c in text_columns)
    return b"\xef\xbb\xbf" + safe.write_csv().encode("utf-8")


@flow(name="disburse", log_prints=False, validate_parameters=True)
def disburse(params: DisburseParams) -> RunSummary:
    """Pay one program's eligible, enrolled residents exactly once, and record why for every row.

    A rejection an operator can act on ends the flow run Failed with that one-line message and no
    traceback; calling the flow raises it again (the CLI maps it to its exit status).
    """
    try:
        with ExitStack() as held:  # the program lock, released however the run ends
            return _disburse(params, held)
    except JiwonError as e:
        get_run_logger().error(str(e))
        return Failed(message=str(e), data=e)  # type: ignore[return-value]
    except Exception as e:
        # An unexpected error's text may quote an input cell: Prefect stores what is raised here
        # (logs, state), so only a scrubbed copy leaves the flow. JIWON_DEBUG=1 keeps the original.
        if os.environ.get("JIWON_DEBUG"):
            raise
        raise Unexpected(scrub(f"{type(e).__name__}: {e}")) from None


def _disburse(params: DisburseParams, held: ExitStack) -> RunSummary:
    log = get_run_logger()
    started = now()
    this_month = started.astimezone(SEOUL).strftime("%Y-%m")
    run_month = params.run_month or this_month
    if run_month > this_month:
        raise UsageError(
            f"bad usage: --run-month {run_month} is after the current month {this_month} "
            "(Asia/Seoul): a run pays for this month or an earlier one; give a month up to "
            f"{this_month}"
        )
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    key = pii_key()
    out = params.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        program = load_program(params.program, params.programs_dir or PROGRAMS_DIR)
    except ProgramError as e:
        raise UsageError(str(e)) from None
    held.enter_context(program_lock(out, program.id, run_id, started.isoformat()))
    for note in recover(out, program.id):
        log.warning(note)
    runs = run_records(out, program.id)
    check_records(out, runs, program.id)  # a trail that cannot be trusted is not extended
    check_run_month(run_month, program, runs)
    ctx = RunContext(
        run_id,
        program,
        run_month,
        started,
        key,
        default_welfare_status=vocabulary()["welfare_status_default"],
    )
    record = audit.RunRecord(
        run_id=run_id,
        flow_run_id=str(flow_run.get_id() or ""),
        program=program.id,
        run_month=run_month,
        reference_date=program.reference_date,
        trigger=params.trigger,
        operator=params.operator,
        reason=params.reason,
        dry_run=params.dry_run,
        status="failed",
        started_at=started,
        finished_at=started,
        code_version=code_version(),
        rule_set_id=program.id,
        rule_set_sha256=program.sha256,
        parameters=json.dumps(
            {
                "run": params.model_dump(mode="json"),
                "program": program.parameters(),
            },
            ensure_ascii=False,
            sort_keys=True,
        ),
        message="",
    )
    known_keys = keyprint.program_fingerprints(runs)
    record.key_fingerprint = keyprint.fingerprint_like(key, known_keys)
    staging = Staging(out, program.id, run_month, run_id)
    try:
        keyprint.check_key(key, record.key_fingerprint, known_keys, program.id)
        summary = _run(params, ctx, record, staging, out)
    except (TrailDamaged, LedgerUntrusted):
        # No run record: it could not be chained to a trail that cannot be read.
        discard(staging.root)
        raise
    except JiwonError as e:
        record.status = "halted" if isinstance(e, RunHalted) else "rejected"
        record.message = str(e)
        _commit(record, staging, ledger_sha=last_run_sha256(out, program.id))
        raise
    log.info("run %s %s: %s", run_id, summary.status, summary.counts)
    return summary


def _run(
    params: DisburseParams, ctx: RunContext, record: audit.RunRecord, staging: Staging, out: Path
) -> RunSummary:
    if params.partitions is not None:
        return _run_partitioned(params, ctx, record, staging, out)
    log = get_run_logger()
    program = ctx.program
    ledger = read_ledger(out, program.id)
    registry = read_extracts(params.registry, "registry")
    record.inputs = [_input(f) for f in registry.files]
    enrollment = skip_consumed(read_extracts(params.enrollments, "enrollment"), ledger.consumed)
    record.inputs += [_input(f) for f in enrollment.files]
    welfare_status, welfare_files = read_welfare(params, program)
    record.inputs += welfare_files
    if enrollment.frame.height == 0:
        record.message = (
            "every enrollment file was already consumed by an earlier committed "
            "run: nobody new is paid by this run"
        )
        log.warning(record.message)
        enrollment = Delivery("enrollment", empty_delivery("enrollment").frame, enrollment.files)
    log.info(
        "read %d registry and %d enrollment rows", registry.frame.height, enrollment.frame.height
    )
    reg_checked, reg_quarantine = validate_registry(registry, program)
    enr_checked, enr_quarantine = validate_enrollments(enrollment, program)
    quarantine = pl.concat([reg_quarantine, enr_quarantine])
    try:
        validate.check_quarantine_rate(registry, reg_checked, program.quarantine_threshold)
        validate.check_quarantine_rate(enrollment, enr_checked, program.quarantine_threshold)
    except RunHalted:
        _stage_quarantine(staging, quarantine, program.id, ctx.run_id)
        raise
    decisions = decide_outcomes(reg_checked, enr_checked, ledger, ctx, welfare_status)
    files, records = build_outputs(decisions, ctx, params.bank_file)
    total = sum(f.total_krw for f in files)
    check_budget(program, ledger, total)
    counted = tally(records)
    record.counts = counted.counts
    record.total_paid_krw = counted.paid_krw
    settle(record, params, total)
    if not params.dry_run:
        _stage_payments(staging, files, ctx)
        staging.write(
            layout.decisions_dir(program.id, ctx.run_month, ctx.run_id) / "decisions.parquet",
            audit.decisions_parquet(records, ctx),
        )
        _stage_quarantine(staging, quarantine, program.id, ctx.run_id)
    return _finish(
        params,
        ctx,
        record,
        staging,
        counted,
        quarantine,
        files,
        ledger.last_run_sha256,
    )


def _finish(
    params: DisburseParams,
    ctx: RunContext,
    record: audit.RunRecord,
    staging: Staging,
    outcomes: Tally,
    quarantine: pl.DataFrame,
    files: Sequence[payments.FileTotals],
    ledger_sha: str | None,
) -> RunSummary:
    """Write the run's reports, commit it, show it in Prefect and return its summary."""
    log = get_run_logger()
    program = ctx.program
    report_md = report.summary_markdown(record, outcomes.reasons)
    changes: list[str] = []
    if params.dry_run:
        headline, table = whatif.would_change(params.out.resolve(), program.id, outcomes.by_outcome)
        report_md += "\n" + whatif.markdown(headline, table)
        changes = whatif.terminal_lines(headline, table)
        log.info(headline)
    staging.write(layout.reports_dir(program.id, ctx.run_id) / "summary.md", report_md.encode())
    _stage_report_html(staging, record, outcomes.districts, quarantine, files, program)
    _commit(record, staging, ledger_sha)
    publish_artifacts(record, report_md)
    return RunSummary(
        run_id=ctx.run_id,
        program=program.id,
        status=record.status,
        dry_run=params.dry_run,
        counts=record.counts,
        total_paid_krw=record.total_paid_krw,
        message=record.message,
        out=str(params.out.resolve()),
        paths=_paths(params.dry_run, program.id, ctx),
        payments=outcomes.payments,
        changes=changes,
    )


def publish_artifacts(record: audit.RunRecord, report_md: str) -> None:
    """Show the run's counts, total, files and report in the Prefect UI (no personal data)."""
    key = record.program.lower()
    create_table_artifact(
        key=f"{key}-summary",
        table=artifacts.summary_table(record),
        description=f"{record.program} run {record.run_id}: {record.status}",
    )
    create_markdown_artifact(
        key=f"{key}-report",
        markdown=artifacts.report_markdown(record, report_md),
        description=f"{record.program} run {record.run_id}",
    )


def _input(f: InputFile) -> dict[str, Any]:
    return {
        "kind": f.kind,
        "file": f.file,
        "sha256": f.sha256,
        "rows": f.rows,
        "encoding": f.encoding,
        "skipped_by_run": f.skipped_by_run,
    }


def _stage_payments(staging: Staging, files: list[payments.PaymentFile], ctx: RunContext) -> None:
    folder = layout.payments_dir(ctx.program.id, ctx.run_id)
    for f in files:  # payee details (card ids, accounts, holder names): owner-only
        staging.write(folder / f.file, f.content, private=True)
    staging.write(folder / "manifest.json", payments.manifest(files, ctx.run_id, ctx.program.id))


def _stage_report_html(
    staging: Staging,
    record: audit.RunRecord,
    districts: pl.DataFrame,
    quarantine: pl.DataFrame,
    files: Sequence[payments.FileTotals],
    program: Program,
) -> None:
    page = report_html.report_html(
        record,
        districts,
        report_html.district_names(program.city or "national"),  # nationwide: the national list
        quarantine,
        files,
    )
    staging.write(layout.reports_dir(program.id, record.run_id) / "report.html", page.encode())


def _stage_quarantine(
    staging: Staging, quarantine: pl.DataFrame, program: str, run_id: str
) -> None:
    if quarantine.height == 0:
        return
    folder = layout.quarantine_dir(program, run_id)
    staging.write(
        folder / "quarantine.parquet",
        audit.parquet_bytes(quarantine, {"jiwon.table": "quarantine"}),
        private=True,
    )
    staging.write(folder / "quarantine.csv", quarantine_csv(quarantine), private=True)


def _commit(record: audit.RunRecord, staging: Staging, ledger_sha: str | None) -> None:
    """Seal the run record over every staged file, stage it, and publish the run."""
    record.finished_at = now()
    record.outputs = [_output(w.path, w.sha256, staging) for w in staging.written]
    record.prev_run_sha256 = ledger_sha
    record.sealed()
    staging.write(
        layout.run_record_file(record.program, record.run_id), audit.run_record_parquet(record)
    )
    staging.publish()


def _output(path: str, sha256: str, staging: Staging) -> dict[str, Any]:
    """Describe a written file; payment files carry their records and total from the manifest."""
    records, total = None, None
    manifest = staging.root / Path(path).parent / "manifest.json"
    if path.startswith("payments/") and manifest.exists() and not path.endswith("manifest.json"):
        body = json.loads(manifest.read_text())
        entry = next(f for f in body["files"] if f["file"] == Path(path).name)
        records, total = entry["records"], entry["total_krw"]
    return {"file": path, "sha256": sha256, "records": records, "total_krw": total}


def _paths(dry_run: bool, program: str, ctx: RunContext) -> dict[str, str]:
    if dry_run:
        return {
            "run record": str(layout.run_record_file(program, ctx.run_id)),
            "report": str(layout.reports_dir(program, ctx.run_id)),
        }
    return {
        "payments": str(layout.payments_dir(program, ctx.run_id)),
        "audit": str(layout.decisions_dir(program, ctx.run_month, ctx.run_id)),
        "run record": str(layout.run_record_file(program, ctx.run_id)),
        "quarantine": str(layout.quarantine_dir(program, ctx.run_id)),
        "report": str(layout.reports_dir(program, ctx.run_id)),
    }


spill_chunk = stage(partitioned.spill_chunk)
shuffle_buckets = stage(partitioned.shuffle)
decide_bucket = stage(partitioned.decide_bucket)


@dataclass
class Decided:
    """What the partitioned stages found: the files spilled and the buckets' totals."""

    registry: list[Spilled]
    enrollment: list[Spilled]
    totals: Tally | None  # None when the run stopped at a file-level gate (see `halted`)
    buckets: int = 0
    halted: RunHalted | None = None  # a file-level gate stopped the run


@flow(name="disburse-partitioned", log_prints=False)
def decide_partitioned(
    params: DisburseParams,
    run_id: str,
    run_month: str,
    decided_at: dt.datetime,
    work: Path,
    consumed: dict[str, str],
    has_welfare: bool,
) -> Decided:
    """Spill every file, bucket the rows and decide every bucket on the run's task runner.

    Its parameters are what the Prefect API records, so they hold no personal data and no key:
    the ledger's progress and the welfare rows wait in `work` (written by the parent flow), and
    the key is read here from the environment, as the parent read it.
    """
    log = get_run_logger()
    try:
        program = load_program(params.program, params.programs_dir or PROGRAMS_DIR)
    except ProgramError as e:
        raise UsageError(str(e)) from None
    ctx = RunContext(
        run_id,
        program,
        run_month,
        decided_at,
        pii_key(),
        default_welfare_status=vocabulary()["welfare_status_default"],
    )
    registry_files = list_delivery(params.registry, "registry")
    enrollment_files = list_delivery(params.enrollments, "enrollment")
    buckets = partitioned.choose_buckets(params.partitions or "auto", registry_files)
    log.info(
        "partitioned run: %d registry and %d enrollment files, %d buckets",
        len(registry_files),
        len(enrollment_files),
        buckets,
    )
    spilled = {}
    for kind, paths in (("registry", registry_files), ("enrollment", enrollment_files)):
        grouped = partitioned.chunks(paths)
        done = spill_chunk.map(
            [files for _, files in grouped],
            [first for first, _ in grouped],
            unmapped(kind),
            unmapped(program),
            unmapped(work),
            unmapped(buckets),
            unmapped(consumed),
        ).result()
        spilled[kind] = [s for chunk in done for s in chunk]
        log.info("validated %d %s rows", sum(x.rows for x in spilled[kind]), kind)
    partitioned.check_snapshot(spilled["registry"])
    decided = Decided(spilled["registry"], spilled["enrollment"], None, buckets)
    try:
        partitioned.check_rate("registry", decided.registry, program.quarantine_threshold)
        partitioned.check_rate("enrollment", decided.enrollment, program.quarantine_threshold)
    except RunHalted as e:
        decided.halted = e
        return decided
    shuffle_buckets(work, [s.info.file for s in decided.registry], buckets)
    empty, _ = validate.validate_delivery(empty_delivery("enrollment"), program)
    partitioned.write_schemas(work, empty)
    jobs = [BucketJob(work, b, ctx, has_welfare) for b in range(buckets)]
    results: list[Tally] = decide_bucket.map(jobs).result()
    decided.totals = combine(results)
    log.info("decided %d rows in %d buckets", decided.totals.rows, buckets)
    return decided


def _run_partitioned(
    params: DisburseParams, ctx: RunContext, record: audit.RunRecord, staging: Staging, out: Path
) -> RunSummary:
    """The run, decided bucket by bucket (`--partitions`): memory is one file or one bucket."""
    log = get_run_logger()
    program = ctx.program
    ledger = read_ledger(out, program.id)
    welfare_status, welfare_files = read_welfare(params, program)
    work = staging.root / "work"
    runner = task_runner(params.runner, params.dask_address, api_url=flow_api_url())
    partitioned.write_run_inputs(work, ledger.progress(program, ctx.run_month), welfare_status)
    decided = decide_partitioned.with_options(task_runner=runner)(
        params,
        ctx.run_id,
        ctx.run_month,
        ctx.decided_at,
        work,
        ledger.consumed,
        welfare_status is not None,
    )
    record.inputs = [_input(s.info) for s in decided.registry + decided.enrollment]
    record.inputs += welfare_files
    if all(s.info.skipped_by_run for s in decided.enrollment):
        record.message = (
            "every enrollment file was already consumed by an earlier committed "
            "run: nobody new is paid by this run"
        )
        log.warning(record.message)
    quarantine = partitioned.quarantine(work)
    if decided.halted is not None:
        _stage_quarantine(staging, quarantine, program.id, ctx.run_id)
        raise decided.halted
    totals = decided.totals
    assert totals is not None
    check_budget(program, ledger, totals.paid_krw)
    record.counts = totals.counts
    record.total_paid_krw = totals.paid_krw
    folder = layout.payments_dir(program.id, ctx.run_id)

    def stage_file(f: payments.PaymentFile) -> None:
        if not params.dry_run:  # payee details: owner-only, like the quarantine
            staging.write(folder / f.file, f.content, private=True)

    files, bank_assigned, lossy = partitioned.render_payments(
        work, ctx, params.bank_file, stage_file
    )
    settle(record, params, sum(f.total_krw for f in files))
    if not params.dry_run:
        staging.write(folder / "manifest.json", payments.manifest(files, ctx.run_id, program.id))
        decisions_dir = layout.decisions_dir(program.id, ctx.run_month, ctx.run_id)
        parts = partitioned.write_decisions(
            lambda name: staging.path(decisions_dir / name),
            work,
            decided.buckets,
            bank_assigned,
            lossy,
            ctx,
        )
        for name in parts:
            staging.adopt(decisions_dir / name)
        _stage_quarantine(staging, quarantine, program.id, ctx.run_id)
    return _finish(
        params,
        ctx,
        record,
        staging,
        totals,
        quarantine,
        files,
        ledger.last_run_sha256,
    )


__all__ = ["DisburseParams", "InputRejected", "RunSummary", "disburse"]
