"""The `approve-release` Prefect flow: a second person releases or rejects a run's payments.

A committed run's payment files wait (pending) until enough distinct approvers who are not its
operator approve it (`approval:` in the program file; `flows.audit.release`). Each decision is a
ledger event of its own: a signed run record in the program's chain (`trigger = approval`) that
names the run, the decision, the approver and the reason. Like a results import it takes the
program's lock, finishes what a crash left and checks the chain and its anchor first.

The approval that completes the count releases the files to `OUT/outbox/<program>/<run_id>/`
(`flows.run.outbox`: built before the event is recorded, renamed into place after it, so a
crash leaves it released or not). A rejection voids every attempt of the run: its payments are
owed again and a later run pays them.
"""

from __future__ import annotations

import itertools
import os
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from prefect import flow, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flows.audit import attempts as tried
from flows.audit import release
from flows.errors import JiwonError, RunHalted, UsageError
from flows.i18n import _
from flows.run import flow as disburse_flow
from flows.run import outbox
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

if TYPE_CHECKING:
    from flows.run.flow import DisburseParams

# How often a paused run asks the server whether it was resumed (seconds).
PAUSE_POLL_S = int(os.environ.get("JIWON_PAUSE_POLL_S", "5"))


class ApproveParams(BaseModel):
    """Who decides what about which run's payment files."""

    model_config = ConfigDict(extra="forbid")

    program: str = Field(min_length=1)
    out: Path
    run_id: str = Field(min_length=1)
    approver: str = Field(min_length=1)
    reject: bool = False
    reason: str | None = None
    programs_dir: Path | None = None

    @model_validator(mode="after")
    def _rejection_says_why(self) -> ApproveParams:
        self.approver = release.canonical(self.approver)  # as recorded and compared
        if not self.approver:
            raise ValueError(_("approver must name a person"))
        if self.reject and not (self.reason or "").strip():
            raise ValueError(_("a rejection needs --reason: say why the payments must not go out"))
        return self


class ApprovalSummary(BaseModel):
    """What a decision recorded, for the command line and the Prefect UI."""

    event_id: str
    run_id: str
    program: str
    decision: str
    release: str  # the run's release after the decision: pending, released or voided
    message: str
    outbox: str | None = None


@flow(name="approve-release", log_prints=False, validate_parameters=True)
def approve_release(params: ApproveParams) -> ApprovalSummary:
    """Record an approval or rejection of a committed run's payment files."""
    return ledger_event(_approve, params)


def refuse(params: ApproveParams, runs: pl.DataFrame, target: release.Release | None) -> None:
    """Raise the one-line refusal of a decision the four-eyes rules do not allow."""
    run_id, who = params.run_id, params.approver
    if target is None:
        known = runs.filter(pl.col("run_id") == run_id)
        if not known.height:
            raise UsageError(
                _(
                    "bad usage: program {program} has no run {run_id} under {out}; "
                    "`jiwon results status` lists its runs"
                ).format(program=params.program, run_id=run_id, out=params.out)
            )
        row = known.row(0, named=True)
        what = row["status"] if row["status"] != "committed" else row["trigger"]
        what = "a dry run" if row["dry_run"] else what
        raise UsageError(
            _(
                "bad usage: run {run_id} is {what}, not a committed run that "
                "pays: it has no payment files to approve"
            ).format(run_id=run_id, what=what)
        )
    if target.release == release.RELEASED:
        raise RunHalted(
            _(
                "approval refused: run {run_id} is already {shown}; nothing was "
                "recorded. Its files are in the outbox: a released run cannot be "
                "recalled here (ask the bank or card operator, then import their "
                "results)."
            ).format(run_id=run_id, shown=release.shown(target))
        )
    if target.release == release.VOIDED:
        raise RunHalted(
            _(
                "approval refused: run {run_id} is {shown}; nothing was "
                "recorded. Its payments are owed again: the next run pays them "
                "and needs its own approval."
            ).format(run_id=run_id, shown=release.shown(target))
        )
    if release.same_person(who, target.operator):
        raise RunHalted(
            _(
                "approval refused: {who} started run {run_id} and may not "
                "approve it (four eyes); nothing was recorded. Another person "
                "must approve or reject it."
            ).format(who=who, run_id=run_id)
        )
    if not params.reject and any(release.same_person(who, a) for a in target.approvers):
        raise RunHalted(
            _(
                "approval refused: {who} already approved run {run_id}, which "
                "needs {needed} distinct approvers; nothing was recorded. "
                "Another person must give the next approval."
            ).format(who=who, run_id=run_id, needed=target.needed)
        )


def _approve(params: ApproveParams, held: ExitStack) -> ApprovalSummary:
    log = get_run_logger()
    started = disburse_flow.now()
    event_id = new_run_id(started)
    out = params.out.resolve()
    program = load_program_or_usage(params.program, params.programs_dir)
    signer = signing_key()
    runs, head = open_chain(out, program.id, event_id, started, signer, held)
    target = release.walk(runs).get(params.run_id)
    refuse(params, runs, target)
    assert target is not None
    run = runs.filter(pl.col("run_id") == params.run_id).row(0, named=True)
    decision = release.REJECT if params.reject else release.APPROVE
    approvers = [*target.approvers, params.approver] if not params.reject else target.approvers
    releasing = not params.reject and len(approvers) >= target.needed
    if params.reject:
        after = release.VOIDED
        message = _(
            "rejected run {run_id} ({total_paid_krw:,} won): its attempts "
            "are voided and owed again; reason: {reason}"
        ).format(run_id=params.run_id, total_paid_krw=target.total_paid_krw, reason=params.reason)
    elif releasing:
        after = release.RELEASED
        message = _(
            "approved run {run_id} ({total_paid_krw:,} won): released to the outbox by {join}"
        ).format(
            run_id=params.run_id, total_paid_krw=target.total_paid_krw, join=", ".join(approvers)
        )
    else:
        after = release.PENDING
        message = _(
            "approved run {run_id} ({total_paid_krw:,} won): approval {len} "
            "of {needed}; still pending"
        ).format(
            run_id=params.run_id,
            total_paid_krw=target.total_paid_krw,
            len=len(approvers),
            needed=target.needed,
        )
    if releasing:  # built before the event, renamed after it (flows.run.outbox)
        outbox.build(out, program.id, run, event_id)
    body: dict[str, Any] = {
        "approval": {
            "run_id": params.run_id,
            "decision": decision,
            "approver": params.approver,
            "reason": params.reason,
            "needed": target.needed,
            "approvals": len(approvers),
            "total_paid_krw": target.total_paid_krw,
            "run_operator": target.operator,
        }
    }
    record = event_record(
        program,
        event_id,
        started,
        str(run["run_month"]),
        tried.APPROVAL,
        params.approver,
        params.reason,
        body,
        message,
        [],
    )
    staging = Staging(out, program.id, str(run["run_month"]), event_id)
    commit(record, staging, head, signer)
    folder = outbox.finish(out, program.id, params.run_id) if releasing else None
    log.info(
        _("release decision {event_id} of {program}: {message}").format(
            event_id=event_id, program=program.id, message=message
        )
    )
    disburse_flow.rebuild_program_page(out, program.id, params.programs_dir)
    return ApprovalSummary(
        event_id=event_id,
        run_id=params.run_id,
        program=program.id,
        decision=decision,
        release=after,
        message=message,
        outbox=str(folder) if folder else None,
    )


class ReleaseInput(RunInput):
    """What an approver enters in the Prefect UI to resume a run waiting for release."""

    approver: str = Field(min_length=1, description=_("your name (never the run's operator)"))
    decision: Literal["approve", "reject"] = Field(
        default="approve", description=_("approve: release the payment files; reject: void them")
    )
    reason: str | None = Field(default=None, description=_("why (required to reject)"))


def await_release(params: DisburseParams, run_id: str, status: str, paid_krw: int) -> None:
    """Pause a committed run until an approver releases or rejects it in the Prefect UI.

    Each decision entered is recorded by the `approve-release` flow, as `jiwon approve` does; a
    refused one (the run's own operator, the same approver twice) is logged and the run waits
    again. The wait ends when the run is released or voided (from the UI or the command line)
    or after `approval_wait_s`: the run then stays pending and `jiwon approve` decides it.
    """
    from flows.inputs.ledger import run_records

    if status != "committed" or params.dry_run or not paid_krw:
        return
    log = get_run_logger()
    out = params.out.resolve()
    for n in itertools.count():
        program = load_program_or_usage(params.program, params.programs_dir).id
        target = release.walk(run_records(out, program)).get(run_id)
        if target is None or target.release != release.PENDING:
            shown = release.shown(target) if target else _("not paying")
            log.info(_("run {run_id} is {shown}").format(run_id=run_id, shown=shown))
            return
        log.info(
            _(
                "run {run_id} waits for release: {shown}. Resume this flow run in the Prefect UI "
                "with your name and decision, or run `jiwon approve --program {program} --out "
                "{out} --run-id {run_id} --approver NAME`"
            ).format(run_id=run_id, shown=release.shown(target), program=program, out=out)
        )
        try:
            answer = pause_flow_run(
                wait_for_input=ReleaseInput,
                timeout=params.approval_wait_s,
                poll_interval=PAUSE_POLL_S,
                key=f"release-{run_id.lower()}-{n}",  # lowercase, digits, dashes only
            )
        except FlowPauseTimeout:
            log.warning(
                _(
                    "run {run_id} still waits for release after {seconds} s: decide it with "
                    "`jiwon approve`"
                ).format(run_id=run_id, seconds=params.approval_wait_s)
            )
            return
        try:
            decided = approve_release(
                ApproveParams(
                    program=program,
                    out=out,
                    run_id=run_id,
                    approver=answer.approver,
                    reject=answer.decision == release.REJECT,
                    reason=answer.reason,
                    programs_dir=params.programs_dir,
                )
            )
        except (JiwonError, ValidationError) as e:
            log.error(_("release decision refused: {error}").format(error=e))
            continue
        log.info(
            _("release decision {event_id}: {message}").format(
                event_id=decided.event_id, message=decided.message
            )
        )
