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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import polars as pl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prefect import Task, flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Failed
from prefect.task_runners import TaskRunner
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.audit import keyprint, signing, whatif
from flows.audit import records as audit
from flows.audit.anchor import (
    ChainHead,
    anchor_name,
    anchor_problem,
    check_anchor,
    settle_anchor,
    write_anchor,
)
from flows.audit.tally import Tally, combine
from flows.decide.rules import RunContext
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
from flows.i18n import N_, _
from flows.inputs import reference, welfare
from flows.inputs.ingest import InputFile, chunks, list_delivery
from flows.inputs.ledger import (
    Ledger,
    Reread,
    check_records,
    read_ledger,
    run_records,
    untrusted,
)
from flows.pay import credit as payments
from flows.pay.render import BankFormat
from flows.report import artifacts
from flows.report import html as report_html
from flows.report import markdown as report
from flows.run import outbox, prefetch, steps
from flows.run import paths as layout
from flows.run.lock import program_lock
from flows.run.progress import Stage
from flows.run.publish import Staging, discard, recover, staged_runs, write_public_key
from flows.run.runners import Runner, flow_api_url, task_runner
from flows.run.steps import BucketJob, Spilled
from flows.run.stores import DiskStore, MemoryStore, Store
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
SIGNING_BLOCK_ENV = "JIWON_SIGNING_KEY_BLOCK"
PII_KEY_PREVIOUS_ENV = "JIWON_PII_KEY_PREVIOUS"
SIGNING_KEY_PREVIOUS_ENV = "JIWON_SIGNING_KEY_PREVIOUS"
P = ParamSpec("P")
R = TypeVar("R")


class DisburseParams(BaseModel):
    """What an operator or a schedule asks a run to do (validated by Prefect via pydantic)."""

    model_config = ConfigDict(extra="forbid")

    program: str = Field(min_length=1, description=_("program id, a folder under rules/programs"))
    registry: Path = Field(description=_("folder of registry extract files"))
    enrollments: Path = Field(description=_("folder of enrollment extract files"))
    out: Path = Field(description=_("output root"))
    dry_run: bool = Field(
        default=False, description=_("compute everything, pay and publish nothing")
    )
    operator: str = Field(default="unknown", min_length=1)
    reason: str | None = Field(default=None, description=_("why the run was started"))
    trigger: Literal["scheduled", "manual", "rerun"] = "manual"
    run_month: str | None = Field(
        default=None,
        pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
        description=_("YYYY-MM; default: the current month in Seoul"),
    )
    welfare: Path | None = Field(
        default=None,
        description=_("folder of welfare-status extract files (programs that need it)"),
    )
    programs_dir: Path | None = Field(
        default=None, description=_("folder of program folders; default: rules/programs")
    )
    bank_file: BankFormat = Field(
        default="fixed_width",
        description=_("bank payouts as the bulk-transfer file (fixed_width) or ISO 20022 pain.001"),
    )
    partitions: int | Literal["auto"] | None = Field(
        default=None,
        description=_(
            "decide in this many buckets on disk (auto: one per ~1,000,000 "
            "registry rows); none: the store decides (see `store`)"
        ),
    )
    store: Literal["auto", "memory", "disk"] = Field(
        default="auto",
        description=_(
            "where the work in progress lives: memory (one bucket), disk "
            "(buckets of --partitions, default auto) or auto: memory up to "
            "~1,000,000 registry rows, else disk"
        ),
    )
    runner: Runner = Field(
        default="local", description=_("where the run's spill and decide tasks run: local or dask")
    )
    dask_address: str | None = Field(
        default=None, description=_("Dask scheduler address (runner dask; none: a local cluster)")
    )
    await_approval: bool = Field(
        default=False,
        description=_(
            "after committing, pause for an approver's decision in the "
            "Prefect UI (served deployments); `jiwon approve` decides it too"
        ),
    )
    approval_wait_s: int = Field(
        default=7 * 24 * 3600,
        ge=1,
        description=_(
            "how long a paused run waits for the decision before it stops "
            "waiting (the run stays pending: `jiwon approve` still decides "
            "it)"
        ),
    )

    @model_validator(mode="after")
    def _rerun_needs_reason(self) -> DisburseParams:
        if self.trigger == "rerun" and not (self.reason or "").strip():
            raise ValueError(_("a rerun needs --reason: say why it is run again"))
        if isinstance(self.partitions, int) and self.partitions < 1:
            raise ValueError(_("--partitions must be at least 1 (or auto)"))
        if self.store == "memory" and self.runner != "local":
            raise ValueError(_("--store memory runs in this process: drop --runner dask"))
        if self.store == "memory" and self.partitions not in (None, 1):
            raise ValueError(_("--store memory decides in one bucket: drop --partitions"))
        if self.dask_address and self.runner != "dask":
            raise ValueError(_("--dask-address needs --runner dask"))
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


@dataclass
class Found:
    """What the run learnt about its inputs so far: a refused run's record lists it too."""

    inputs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# The deliveries by name in progress and log lines (the kind itself is data: "registry").
KINDS = {"registry": N_("registry"), "enrollment": N_("enrollment")}


def stage(fn: Callable[P, R]) -> Task[P, R]:
    """Wrap a stage function as a Prefect task (no caching: inputs are large frames)."""
    wrapped: Task[P, R] = task(name=fn.__name__.replace("_", "-"), cache_policy=NO_CACHE)(fn)
    return wrapped


spill_chunk = stage(steps.spill_chunk)
shuffle_buckets = stage(steps.shuffle)
decide_bucket = stage(steps.decide_bucket)


@stage
def read_welfare(
    params: DisburseParams, program: Program
) -> tuple[pl.DataFrame | None, list[dict[str, Any]]]:
    """Read the welfare-status extract of a program that needs one (refuse it otherwise)."""
    if not program.needs_welfare_extract:
        if params.welfare is not None:
            raise UsageError(
                _(
                    "bad usage: program {id} does not use a welfare-status extract; drop --welfare"
                ).format(id=program.id)
            )
        return None, []
    if params.welfare is None:
        raise UsageError(
            _(
                "bad usage: program {id} needs the welfare-status extract: pass --welfare DIR"
            ).format(id=program.id)
        )
    return welfare.read_welfare(params.welfare, vocabulary(), program.reference_date)


def work_store(params: DisburseParams, registry_files: list[Path], work: Path) -> tuple[Store, int]:
    """Return where the run keeps its work in progress, and in how many buckets it decides.

    In memory, one bucket, unless the operator asks for buckets, Dask or the disk, or the
    registry is larger than about one bucket (`steps.BUCKET_ROWS` rows): then on disk, in the
    run's staging folder, in the buckets asked for (auto: one per ~1,000,000 registry rows).
    """
    if steps.decides_in_memory(params.store, params.partitions, params.runner, registry_files):
        return MemoryStore(), 1
    return DiskStore(work), steps.choose_buckets(params.partitions or "auto", registry_files)


def warm_inputs(params: DisburseParams) -> None:
    """Read a run's delivery and check its registry early, if the run decides in memory.

    For `jiwon run` to call in a thread while Prefect starts the run (`flows.run.prefetch`);
    the run's spill takes what this made for files still unchanged. May raise: dropped.
    """
    program = load_program(params.program, params.programs_dir or PROGRAMS_DIR)
    registry_files = list_delivery(params.registry, "registry")
    if steps.decides_in_memory(params.store, params.partitions, params.runner, registry_files):
        prefetch.warm(program, registry_files, list_delivery(params.enrollments, "enrollment"))


def spill(
    runner: TaskRunner[Any],
    kind: steps.Kind,
    files: list[Path],
    program: Program,
    store: Store,
    buckets: int,
    reread: Reread,
) -> list[Spilled]:
    """Validate a delivery chunk by chunk on the run's task runner; return what each file held."""
    grouped = chunks(files)
    parameters = {
        "paths": [paths for _, paths in grouped],
        "first": [first for first, _ in grouped],
        "kind": unmapped(kind),
        "program": unmapped(program),
        "store": unmapped(store),
        "buckets": unmapped(buckets),
        "reread": unmapped(reread),
    }
    futures = runner.map(spill_chunk, parameters)  # type: ignore[arg-type]
    done: list[Spilled] = []
    name = _("validating {kind} files").format(kind=_(KINDS[kind]))
    with Stage(name, len(files), get_run_logger()) as stage:
        for future in futures:  # in order; each chunk's files as it is validated
            chunk: list[Spilled] = future.result()
            done += chunk
            stage.advance(len(chunk), rows=sum(s.rows for s in chunk))
    return done


def check_budget(program: Program, ledger: Ledger, total: int) -> None:
    """Halt when this run would take the program past its budget ceiling."""
    if ledger.paid_total_krw + total > program.budget_krw:
        raise RunHalted(
            _(
                "run halted: paying {total:,} won now after {paid_total_krw:,} "
                "won already paid exceeds the budget of {budget_krw:,} won; "
                "nothing was paid. Check the inputs, or raise budget_krw in the "
                "program file if the council raised it."
            ).format(
                total=total, paid_total_krw=ledger.paid_total_krw, budget_krw=program.budget_krw
            )
        )


def settle(total_paid_krw: int, files_total: int, dry_run: bool) -> tuple[str, str]:
    """Return the run's status and note; refuse a run whose payment files and audit disagree."""
    if total_paid_krw != files_total:
        raise RuntimeError(
            f"payment files total {files_total} but the audit says "
            f"{total_paid_krw}: refusing to commit"
        )
    if not dry_run:
        return "committed", ""
    return "dry_run", _("dry run: nothing was paid or published but this record and report")


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
            _(
                "bad usage: --run-month {run_month} is before the month of the "
                "program's reference date ({reference_date}); give {start} or "
                "later"
            ).format(run_month=run_month, reference_date=program.reference_date, start=start)
        )
    committed = (
        runs.filter(pl.col("status") == "committed", ~pl.col("dry_run")) if runs.height else runs
    )
    if committed.height and run_month < (last := str(committed["run_month"].max())):
        raise UsageError(
            _(
                "bad usage: --run-month {run_month} is before {last}, the month "
                "of the program's last committed run: runs of a program go "
                "forward in time; rerun it as --run-month {last} or later"
            ).format(run_month=run_month, last=last)
        )


def pii_key() -> str:
    """Return the deployment's personal-data key; refuse to run without one."""
    return long_key(
        PII_KEY_ENV,
        _(
            "a real run refuses to start without the deployment's secret "
            "key. Set it from your secret store; `jiwon demo` uses a demo "
            "key."
        ),
    )


def previous_pii_key() -> str:
    """Return the personal-data key a rotation retires (JIWON_PII_KEY_PREVIOUS)."""
    return long_key(
        PII_KEY_PREVIOUS_ENV,
        _(
            "rotating the personal-data key needs the key the program's runs "
            "used there, and the new key in {pii_key_env} "
            '(docs/operators.md, "Rotating keys").'
        ).format(pii_key_env=PII_KEY_ENV),
    )


def long_key(name: str, why: str) -> str:
    """Return the secret in environment variable `name`; UsageError (saying `why`) when it is
    missing or shorter than 16 characters."""
    key = os.environ.get(name, "")
    if len(key) < 16:
        raise UsageError(
            _("{name} is not set (or shorter than 16 characters): {why}").format(name=name, why=why)
        )
    return key


def previous_signing_key() -> Ed25519PrivateKey:
    """Return the signing key a rotation retires (JIWON_SIGNING_KEY_PREVIOUS)."""
    text = os.environ.get(SIGNING_KEY_PREVIOUS_ENV, "")
    if not text:
        raise UsageError(
            _(
                "{signing_key_previous_env} is not set: rotating the signing key "
                "needs the key that signed the program's runs there, and the new "
                'key in {signing_key_env} (docs/operators.md, "Rotating keys").'
            ).format(
                signing_key_previous_env=SIGNING_KEY_PREVIOUS_ENV,
                signing_key_env=signing.SIGNING_KEY_ENV,
            )
        )
    try:
        return signing.private_key(text)
    except signing.SigningKeyError as e:
        raise UsageError(
            _("{signing_key_previous_env} {e}").format(
                signing_key_previous_env=SIGNING_KEY_PREVIOUS_ENV, e=e
            )
        ) from None


def signing_key() -> Ed25519PrivateKey:
    """Return the city's signing key: from JIWON_SIGNING_KEY, or the Prefect Secret block named
    by JIWON_SIGNING_KEY_BLOCK; refuse to run without one (decision note 0013)."""
    text = os.environ.get(signing.SIGNING_KEY_ENV, "")
    block = os.environ.get(SIGNING_BLOCK_ENV, "")
    where = signing.SIGNING_KEY_ENV
    if not text and block:
        from prefect.blocks.system import Secret

        try:
            text = str(Secret.load(block).get())  # type: ignore[union-attr]
        except ValueError:
            raise UsageError(
                _(
                    "{signing_block_env} names the Prefect Secret block {block!r}, "
                    "which the Prefect API does not have: create it (see "
                    "docs/operators.md) or set {signing_key_env}"
                ).format(
                    signing_block_env=SIGNING_BLOCK_ENV,
                    block=block,
                    signing_key_env=signing.SIGNING_KEY_ENV,
                )
            ) from None
        where = f"the Prefect Secret block {block!r}"
    if not text:
        raise UsageError(
            _(
                "{signing_key_env} is not set: a real run refuses to start "
                "without the city's signing key, which signs every run record. "
                "Set it (or {signing_block_env}) from your secret store; `jiwon "
                "keys new` makes one; `jiwon demo` uses a demo key."
            ).format(signing_key_env=signing.SIGNING_KEY_ENV, signing_block_env=SIGNING_BLOCK_ENV)
        )
    try:
        return signing.private_key(text)
    except signing.SigningKeyError as e:
        raise UsageError(
            _(
                "{where} {e}: give the 64 hex digits `jiwon keys new` printed, or an Ed25519 PEM"
            ).format(where=where, e=e)
        ) from None


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
            summary = _disburse(params, held)
        if params.await_approval:  # the lock is released: the approval takes it again
            wait_for_release(params, summary)
        return summary
    except JiwonError as e:
        get_run_logger().error(str(e))
        return Failed(message=str(e), data=e)  # type: ignore[return-value]
    except Exception as e:
        # An unexpected error's text may quote an input cell: Prefect stores what is raised here
        # (logs, state), so only a scrubbed copy leaves the flow. JIWON_DEBUG=1 keeps the original.
        if os.environ.get("JIWON_DEBUG"):
            raise
        raise Unexpected(scrub(f"{type(e).__name__}: {e}")) from None


def wait_for_release(params: DisburseParams, summary: RunSummary) -> None:
    """Pause for the run's release in the Prefect UI; a failure to wait only warns (committed)."""
    from flows.run.approve import await_release

    try:
        await_release(params, summary.run_id, summary.status, summary.total_paid_krw)
    except Exception as e:  # the run is committed and pending: `jiwon approve` decides it
        get_run_logger().warning(
            _(
                "run {run_id} committed but cannot wait for its release in the Prefect UI "
                "({error}); decide it with `jiwon approve`"
            ).format(run_id=summary.run_id, error=scrub(f"{type(e).__name__}: {e}"))
        )


def _disburse(params: DisburseParams, held: ExitStack) -> RunSummary:
    log = get_run_logger()
    started = now()
    this_month = started.astimezone(SEOUL).strftime("%Y-%m")
    run_month = params.run_month or this_month
    if run_month > this_month:
        raise UsageError(
            _(
                "bad usage: --run-month {run_month} is after the current month "
                "{this_month} (Asia/Seoul): a run pays for this month or an "
                "earlier one; give a month up to {this_month}"
            ).format(run_month=run_month, this_month=this_month)
        )
    run_id = new_run_id(started)
    key = pii_key()
    signer = signing_key()
    out = params.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    program = load_program_or_usage(params.program, params.programs_dir)
    runs, head = open_chain(out, program.id, run_id, started, signer, held)
    check_run_month(run_month, program, runs)
    ctx = RunContext(
        run_id,
        program,
        run_month,
        started,
        key,
        default_welfare_status=vocabulary()["welfare_status_default"],
    )
    known_keys = keyprint.program_fingerprints(runs)
    fingerprint = keyprint.fingerprint_like(key, known_keys)
    # Who, when, with what: the run record's fields known before any input is read.
    begun = audit.RunRecord(
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
        key_fingerprint=fingerprint,
    )
    staging = Staging(out, program.id, run_month, run_id)
    found = Found()
    try:
        keyprint.check_key(key, fingerprint, known_keys, program.id)
        summary = _run(params, ctx, begun, staging, out, found, runs, head, signer)
    except (TrailDamaged, LedgerUntrusted):
        # No run record: it could not be chained to a trail that cannot be read.
        discard(staging.root)
        raise
    except JiwonError as e:
        status = "halted" if isinstance(e, RunHalted) else "rejected"
        staging.drop("payments", "audit")  # a refused run pays nobody and decides nothing
        refused = replace(begun, status=status, message=str(e), inputs=found.inputs)
        commit(refused, staging, head, signer)
        raise
    log.info(
        _("run {run_id} {status}: {counts}").format(
            run_id=run_id, status=summary.status, counts=summary.counts
        )
    )
    return summary


def new_run_id(started: dt.datetime) -> str:
    """Return a run id: its start (UTC) and 8 random hex digits, in chain and file-name order."""
    return f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def load_program_or_usage(program: str, programs_dir: Path | None) -> Program:
    """Return the program, or the bad-usage error naming what is wrong with its file."""
    try:
        return load_program(program, programs_dir or PROGRAMS_DIR)
    except ProgramError as e:
        raise UsageError(str(e)) from None


def event_record(
    program: Program,
    run_id: str,
    started: dt.datetime,
    run_month: str,
    trigger: str,
    operator: str,
    reason: str | None,
    parameters: dict[str, Any],
    message: str,
    inputs: list[dict[str, Any]],
    key_fingerprint: str | None = None,
) -> audit.RunRecord:
    """Return the record of a ledger event that pays nobody (a key rotation, a results import).

    Committed as written (the event is whole or refused before it is built); `commit` seals it.
    """
    return audit.RunRecord(
        run_id=run_id,
        flow_run_id=str(flow_run.get_id() or ""),
        program=program.id,
        run_month=run_month,
        reference_date=program.reference_date,
        trigger=trigger,
        operator=operator,
        reason=reason,
        dry_run=False,
        status="committed",
        started_at=started,
        finished_at=started,
        code_version=code_version(),
        rule_set_id=program.id,
        rule_set_sha256=program.sha256,
        parameters=json.dumps(parameters, ensure_ascii=False, sort_keys=True),
        message=message,
        inputs=inputs,
        key_fingerprint=key_fingerprint,
    )


def ledger_event(step: Callable[[Any, ExitStack], R], params: Any) -> R:
    """Run a ledger event's step (a key rotation, a results import) inside a Prefect flow.

    Locks and staging it takes are released with `held`; a refusal (JiwonError) is logged and
    returned as the flow run's Failed state, which the caller raises (exit code kept).
    """
    try:
        with ExitStack() as held:
            return step(params, held)
    except JiwonError as e:
        get_run_logger().error(str(e))
        return Failed(message=str(e), data=e)  # type: ignore[return-value]


def open_chain(
    out: Path,
    program: str,
    run_id: str,
    started: dt.datetime,
    signer: Ed25519PrivateKey,
    held: ExitStack,
    signed_by: Ed25519PrivateKey | None = None,
) -> tuple[pl.DataFrame, ChainHead]:
    """Take the program's lock, finish what a crash left, and check the chain before extending it.

    Returns the program's run records (checked) and the head the new record will extend. The
    chain is checked against `signed_by` (default: `signer`; a signing-key rotation checks it
    against the key it retires).
    """
    log = get_run_logger()
    held.enter_context(program_lock(out, program, run_id, started.isoformat()))
    staged = staged_runs(out, program)  # before recovery: a pending anchored run among them?
    for note in recover(out, program):
        log.warning(note)
    runs = run_records(out, program, with_file=True)
    # An untrusted trail stops here, and one cut back behind its anchor, kept outside `out`
    # and on the server.
    check_records(out, runs, program, (signed_by or signer).public_key())
    check_anchor(out, program, runs, staged)
    check_server_anchor(out, program, runs)
    settle_anchor(out, program, runs)  # a pending run recovery rolled back: settled, not a ghost
    for note in outbox.settle(out, program, runs):  # a release a crash interrupted (issue 18)
        log.warning(note)
    write_public_key(out, signer)
    return runs, ChainHead.of(runs)


def _run(
    params: DisburseParams,
    ctx: RunContext,
    begun: audit.RunRecord,
    staging: Staging,
    out: Path,
    found: Found,
    runs: pl.DataFrame,
    head: ChainHead,
    signer: Ed25519PrivateKey,
) -> RunSummary:
    """Every run's steps, whichever store holds the work in progress (`flows.run.steps`)."""
    log = get_run_logger()
    program = ctx.program
    ledger = read_ledger(out, program.id, runs)  # the records checked at the start
    if program.needs_welfare_extract or params.welfare is not None:
        welfare_status, welfare_files = read_welfare(params, program)
    else:  # nothing to read or refuse: no task run for it (a Prefect round trip each)
        welfare_status, welfare_files = None, []
    registry_files = list_delivery(params.registry, "registry")
    enrollment_files = list_delivery(params.enrollments, "enrollment")
    store, buckets = work_store(params, registry_files, staging.root / "work")
    if isinstance(store, MemoryStore):
        where = _(
            "{registry} registry and {enrollment} enrollment files, decided in {buckets} "
            "bucket(s) in memory"
        )
    else:
        where = _(
            "{registry} registry and {enrollment} enrollment files, decided in {buckets} "
            "bucket(s) on disk"
        )
    log.info(
        where.format(
            registry=len(registry_files), enrollment=len(enrollment_files), buckets=buckets
        )
    )
    steps.keep_run_inputs(
        store,
        ledger.progress(program, ctx.run_month),
        welfare_status,
        program,
        ledger.reissue,
        ledger.reviews,
    )
    with task_runner(params.runner, params.dask_address, api_url=flow_api_url()) as runner:
        registry = spill(runner, "registry", registry_files, program, store, buckets, Reread())
        enrollment = spill(
            runner, "enrollment", enrollment_files, program, store, buckets, ledger.reread
        )
        found.inputs = [_input(s.info) for s in registry + enrollment] + welfare_files
        warmed = prefetch.taken()
        if warmed:
            log.info(
                _("{files} input files were read early, while Prefect started the run").format(
                    files=warmed
                )
            )
        for kind, spilled in (("registry", registry), ("enrollment", enrollment)):
            rows = sum(s.rows for s in spilled)
            log.info(_("validated {rows} {kind} rows").format(rows=rows, kind=_(KINDS[kind])))
        if not any(s.rows for s in enrollment):
            found.notes.append(
                _(
                    "every application in the enrollment files was already closed by an "
                    "earlier committed run and none waits: nobody new is paid by this run"
                )
            )
            log.warning(found.notes[-1])
        steps.check_snapshot(registry)
        try:
            steps.check_rate("registry", registry, program.quarantine_threshold)
            steps.check_rate("enrollment", enrollment, program.quarantine_threshold)
        except RunHalted:
            stage_quarantine(staging, steps.quarantine(store), program.id, ctx.run_id)
            raise
        steps.keep_registry_schema(store)
        shuffle_buckets(store, [s.info.file for s in registry], buckets)
        jobs = [
            BucketJob(store, b, buckets, ctx, welfare_status is not None) for b in range(buckets)
        ]
        futures = runner.map(decide_bucket, {"job": jobs})  # type: ignore[arg-type]
        tallies: list[Tally] = []
        with Stage(_("deciding buckets"), buckets, log) as stage:
            for future in futures:
                tallies.append(future.result())
                stage.advance(rows=tallies[-1].rows)
    store.discard(*steps.DECIDE_INPUTS)
    totals = combine(tallies)
    log.info(
        _("decided {rows} rows in {buckets} bucket(s)").format(rows=totals.rows, buckets=buckets)
    )
    check_budget(program, ledger, totals.paid_krw)
    folder = layout.payments_dir(program.id, ctx.run_id)

    def stage_file(f: payments.PaymentFile) -> None:
        if not params.dry_run:  # payee details (card ids, accounts, holder names): owner-only
            staging.write(folder / f.file, f.content, private=True)

    files, bank_assigned, lossy = steps.render_payments(store, ctx, params.bank_file, stage_file)
    status, note = settle(totals.paid_krw, sum(f.total_krw for f in files), params.dry_run)
    quarantine = steps.quarantine(store)
    if not params.dry_run:
        staging.write(folder / "manifest.json", payments.manifest(files, ctx.run_id, program.id))
        decisions_dir = layout.decisions_dir(program.id, ctx.run_month, ctx.run_id)
        with Stage(_("writing decision records"), buckets, log) as stage:
            parts = steps.write_decisions(
                lambda name: staging.path(decisions_dir / name),
                store,
                buckets,
                bank_assigned,
                lossy,
                ctx,
                stage.advance,
            )
        for name in parts:
            staging.adopt(decisions_dir / name)
        stage_quarantine(staging, quarantine, program.id, ctx.run_id)
    decided = replace(
        begun,
        status=status,
        message="; ".join(filter(None, [*found.notes, note])),
        inputs=found.inputs,
        counts=totals.counts,
        total_paid_krw=totals.paid_krw,
    )
    return _finish(
        params,
        ctx,
        decided,
        staging,
        totals,
        quarantine,
        files,
        head,
        signer,
        report.payments_markdown(ledger.money_per_run(), ledger.released),
    )


def _finish(
    params: DisburseParams,
    ctx: RunContext,
    record: audit.RunRecord,
    staging: Staging,
    outcomes: Tally,
    quarantine: pl.DataFrame,
    files: Sequence[payments.FileTotals],
    head: ChainHead,
    signer: Ed25519PrivateKey,
    earlier: str = "",
) -> RunSummary:
    """Write the run's reports, commit it, show it in Prefect and return its summary.

    `earlier`: the report's section on earlier runs' payments in money (Markdown).
    """
    log = get_run_logger()
    program = ctx.program
    report_md = report.summary_markdown(record, outcomes.reasons) + earlier
    changes: list[str] = []
    if params.dry_run:
        headline, table = whatif.would_change(params.out.resolve(), program.id, outcomes.by_outcome)
        report_md += "\n" + whatif.markdown(headline, table)
        changes = whatif.terminal_lines(headline, table)
        log.info(headline)
    staging.write(layout.reports_dir(program.id, ctx.run_id) / "summary.md", report_md.encode())
    stage_report_html(staging, record, outcomes.districts, quarantine, files, program)
    committed = commit(record, staging, head, signer)
    publish_artifacts(committed, report_md)
    if committed.status == "committed" and not params.dry_run:
        rebuild_program_page(staging.out, program.id, params.programs_dir)
    return RunSummary(
        run_id=ctx.run_id,
        program=program.id,
        status=committed.status,
        dry_run=params.dry_run,
        counts=committed.counts,
        total_paid_krw=committed.total_paid_krw,
        message=committed.message,
        out=str(params.out.resolve()),
        paths=_paths(params.dry_run, program.id, ctx),
        payments=outcomes.payments,
        changes=changes,
    )


# The program page reads the latest paying run's every registry row into memory (flows/run/page):
# fine for a city, several GB for the country. Above this it is not rebuilt after a run.
PAGE_MAX_RESIDENTS = 6_000_000


def latest_registry_rows(out: Path, program: str) -> int:
    """Return the registry rows the program's latest committed paying run read (0 if none)."""
    from flows.audit.attempts import paying_runs

    paying = paying_runs(run_records(out, program))
    if not paying.height:
        return 0
    inputs = paying["inputs"][-1]
    return sum(int(i["rows"] or 0) for i in inputs if i["kind"] == "registry")


def rebuild_program_page(out: Path, program: str, programs_dir: Path | None = None) -> Path | None:
    """Rebuild the program page after a committed event; a failure only warns (the run stands).

    The page is a view of the trail, rebuilt from it by the next run or import: failing to
    write it must not fail what is already committed.
    """
    from flows.run.page import write_program_page

    log = get_run_logger()
    residents = latest_registry_rows(out, program)
    if residents > PAGE_MAX_RESIDENTS:
        log.warning(
            _(
                "program page of {program} not rebuilt: {residents:,} registry rows are more "
                "than the page reads ({most:,}; it keeps every resident's latest decision in "
                "memory). `jiwon results status` shows the figures; see docs/performance.md."
            ).format(program=program, residents=residents, most=PAGE_MAX_RESIDENTS)
        )
        return None
    try:
        path = write_program_page(out, program, programs_dir=programs_dir)
    except Exception as e:
        log.warning(
            _(
                "program page of {program} not rebuilt (the run stands; the next run or "
                "results import rebuilds it): {error}"
            ).format(program=program, error=scrub(f"{type(e).__name__}: {e}"))
        )
        return None
    log.info(_("program page: {path}").format(path=path))
    return path


def publish_artifacts(record: audit.RunRecord, report_md: str) -> None:
    """Show the run's counts, total, files and report in the Prefect UI (no personal data)."""
    key = record.program.lower()
    create_table_artifact(
        key=f"{key}-summary",
        table=artifacts.summary_table(record),
        description=_("{program} run {run_id}: {status}").format(
            program=record.program, run_id=record.run_id, status=record.status
        ),
    )
    create_markdown_artifact(
        key=f"{key}-report",
        markdown=artifacts.report_markdown(record, report_md),
        description=_("{program} run {run_id}").format(
            program=record.program, run_id=record.run_id
        ),
    )


def _input(f: InputFile) -> dict[str, Any]:
    return {
        "kind": f.kind,
        "file": f.file,
        "sha256": f.sha256,
        "rows": f.rows,
        "encoding": f.encoding,
        "skipped_by_run": f.skipped_by_run,
        "rows_closed": f.rows_closed,
    }


def stage_report_html(
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
        reference.district_names(program.city or "national"),  # nationwide: the national list
        quarantine,
        files,
    )
    staging.write(layout.reports_dir(program.id, record.run_id) / "report.html", page.encode())


def stage_quarantine(staging: Staging, quarantine: pl.DataFrame, program: str, run_id: str) -> None:
    if quarantine.height == 0:
        return
    folder = layout.quarantine_dir(program, run_id)
    staging.write(
        folder / "quarantine.parquet",
        audit.parquet_bytes(quarantine, {"jiwon.table": "quarantine"}),
        private=True,
    )
    staging.write(folder / "quarantine.csv", quarantine_csv(quarantine), private=True)


def commit(
    record: audit.RunRecord,
    staging: Staging,
    head: ChainHead,
    signer: Ed25519PrivateKey,
    cosigner: Ed25519PrivateKey | None = None,
) -> audit.RunRecord:
    """Seal and sign the run record over every staged file, stage it, and publish the run.

    The record links to `head` and finishes after it, even on a machine whose clock is behind
    (the chain's order); the anchor names the new head as pending while publishing, then as
    published. `cosigner` (a signing-key rotation's retiring key) signs it a second time.
    """
    finished = now()
    if head.finished_at is not None:
        finished = max(finished, head.finished_at + dt.timedelta(microseconds=1))
    sealed = replace(
        record,
        finished_at=finished,
        outputs=[_output(w.path, w.sha256, staging) for w in staging.written],
        prev_run_sha256=head.run_sha256,
    ).sealed(signer)
    if cosigner is not None:
        sealed = replace(sealed, cosignature=signing.sign(cosigner, sealed.canonical()))
    staging.write(
        layout.run_record_file(sealed.program, sealed.run_id), audit.run_record_parquet(sealed)
    )
    new = (head.records + 1, sealed.run_id, sealed.run_sha256)
    write_anchor(staging.out, sealed.program, head.anchored(), pending=new)
    staging.publish()
    body = write_anchor(staging.out, sealed.program, new, pending=None)
    copy_anchor_to_server(staging.out, sealed.program, body)
    return sealed


def anchor_variable(out: Path, program: str) -> str:
    """Return the Prefect Variable that keeps a second copy of a program's anchor."""
    return f"jiwon-anchor-{anchor_name(out, program)}"


def check_server_anchor(out: Path, program: str, runs: pl.DataFrame) -> None:
    """Halt unless the chain reaches the anchor's copy on the Prefect server, when it has one.

    A second copy where whoever writes `--out` and the anchor folder cannot: the database of the
    Prefect server the run reports to (decision note 0013). A server without one (a new server, a
    temporary one) is given one at the next commit. It is written only after publishing, so
    it never names a pending run.
    """
    from prefect.variables import Variable

    name = anchor_variable(out, program)
    body = Variable.get(name, default=None)
    if isinstance(body, dict):
        problem = anchor_problem(runs, body, Path(f"Prefect Variable {name}"))
        if problem is not None:
            raise untrusted(problem)


def forget_server_anchor(out: Path, program: str) -> None:
    """Remove the anchor's copy on the Prefect server (the demo, whose trail was removed)."""
    from prefect.variables import Variable

    Variable.unset(anchor_variable(out.resolve(), program))


def copy_anchor_to_server(out: Path, program: str, body: dict[str, Any]) -> None:
    """Keep the anchor's second copy on the Prefect server; a failure only warns (committed)."""
    from prefect.variables import Variable

    try:
        Variable.set(anchor_variable(out, program), body, overwrite=True)
    except Exception as e:  # the run is committed: a missing copy is repaired by the next one
        get_run_logger().warning(
            _(
                "could not copy the anchor to the Prefect server ({error}); the next run copies it"
            ).format(error=type(e).__name__)
        )


def _output(path: str, sha256: str, staging: Staging) -> dict[str, Any]:
    """Describe a written file; payment files carry their records and total from the manifest."""
    records, total = None, None
    manifest = staging.root / Path(path).parent / "manifest.json"
    if path.startswith("payments/") and manifest.exists() and not path.endswith("manifest.json"):
        body = json.loads(manifest.read_text())
        entry = next(f for f in body["files"] if f["file"] == Path(path).name)
        records, total = entry["records"], entry["total_krw"]
    # map persons, result lines, review decisions
    if path.startswith(("audit/rotations/", "audit/results/", "audit/reviews/")):
        records, total = pl.scan_parquet(staging.root / path).select(pl.len()).collect().item(), 0
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


__all__ = ["DisburseParams", "InputRejected", "RunSummary", "disburse"]
