"""Payment attempts and their states, from decision records and imported results (issue 15).

Pure functions over frames; the ledger (`flows.inputs.ledger`) reads the files, the results
import (`flows.run.results`) writes them. The states are lifecycle.md's:

    ISSUED ──approve──> RELEASED ──result──> SETTLED            (final: paid in money)
       │                    │       └──────> REJECTED(reason)   (money never left: owed again)
       └──void──> VOIDED    └─────────────-> RETURNED(reason)   (left, came back later: owed again)

Every PAID enrollment decision record is one attempt (`payment_id`, `attempt`); its state is its
run's release (`flows.audit.release`: ISSUED while the run waits for approval, RELEASED once
approved, VOIDED if rejected), then the latest result imported for it. A payment is owed again
when its newest attempt is REJECTED, RETURNED or VOIDED (`owed_again`).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from flows.audit.rotation import ROTATION

ISSUED, RELEASED, SETTLED, REJECTED, RETURNED, VOIDED = (
    "ISSUED",
    "RELEASED",
    "SETTLED",
    "REJECTED",
    "RETURNED",
    "VOIDED",
)
STATES = (ISSUED, RELEASED, SETTLED, REJECTED, RETURNED, VOIDED)
IN_FLIGHT = "IN_FLIGHT"  # a result line that says "still in progress": recorded, changes nothing
FAILED = (REJECTED, RETURNED, VOIDED)  # owed again
# A committed run's attempts are ISSUED until its release is approved (issue 18).
AT_COMMIT = ISSUED
RESULTS = "results_import"  # the trigger of a results import's run record in the chain
APPROVAL = "approval"  # the trigger of a release decision (approve or reject a run's payments)
REVIEW = "review_import"  # the trigger of an import of officers' review decisions
# Ledger events that decide and pay nobody: not runs to compare with, cross-check or total.
EVENTS = (ROTATION, RESULTS, APPROVAL, REVIEW)


def paying_runs(runs: pl.DataFrame) -> pl.DataFrame:
    """Return the committed runs that decided and paid (not dry runs, rotations or imports)."""
    if not runs.height:
        return runs
    return runs.filter(
        (pl.col("status") == "committed") & ~pl.col("dry_run") & ~pl.col("trigger").is_in(EVENTS)
    ).sort("finished_at", "run_id")


ATTEMPT_SCHEMA = pl.Schema(
    {
        "payment_id": pl.String(),
        "attempt": pl.Int64(),
        "instruction_id": pl.String(),
        "run_id": pl.String(),
        "run_month": pl.String(),
        "person_key": pl.String(),
        "instalment": pl.Int64(),
        "amount_krw": pl.Int64(),
        "payout": pl.String(),
        "payout_key": pl.String(),
        "payment_file": pl.String(),
        "reissue_of": pl.String(),
    }
)

# One row per result line an import accepted: the trail's `audit/results/` files.
EVENT_SCHEMA = pl.Schema(
    {
        "seq": pl.Int64(),  # order of the line within its import
        "payment_id": pl.String(),
        "attempt": pl.Int64(),
        "instruction_id": pl.String(),
        "state": pl.String(),  # SETTLED, REJECTED, RETURNED or IN_FLIGHT
        "reason_code": pl.String(),
        "details_wrong": pl.Boolean(),
        "amount_krw": pl.Int64(),
        "result_file": pl.String(),
        "result_sha256": pl.String(),
        "result_format": pl.String(),
        "result_line": pl.Int64(),
        "processed_at": pl.Datetime("us", "UTC"),
    }
)


def instruction_id(payment_id: pl.Expr, attempt: pl.Expr) -> pl.Expr:
    """Return `<payment_id>-<attempt>`: the pain.001 `InstrId` of an attempt."""
    return pl.concat_str(payment_id, pl.lit("-"), attempt.cast(pl.String))


def issued(paying: pl.LazyFrame) -> pl.LazyFrame:
    """Return the attempts (ATTEMPT_SCHEMA) of PAID enrollment decision records.

    Records written before attempts existed have no `attempt`: theirs is attempt 1.
    """
    attempt = pl.col("attempt").fill_null(1).cast(pl.Int64)
    return paying.filter(
        (pl.col("source_kind") == "enrollment") & (pl.col("outcome") == "PAID")
    ).select(
        "payment_id",
        attempt=attempt,
        instruction_id=instruction_id(pl.col("payment_id"), attempt),
        run_id=pl.col("run_id").cast(pl.String),
        run_month=pl.col("run_month").cast(pl.String),
        person_key="person_key",
        instalment=pl.col("instalment").cast(pl.Int64),
        amount_krw="amount_krw",
        payout="payout",
        payout_key=pl.coalesce("account_key", "card_key"),
        payment_file="payment_file",
        reissue_of="reissue_of",
    )


def empty_events() -> pl.DataFrame:
    """Return an events frame with no results."""
    return pl.DataFrame(schema=EVENT_SCHEMA)


def final_results(events: pl.LazyFrame, *columns: str) -> pl.LazyFrame:
    """Return, per instruction id, its newest result that is not IN_FLIGHT: `state`, `columns`.

    `events` carry `_order` (the import's place in the chain, then `seq`).
    """
    return (
        events.filter(pl.col("state") != IN_FLIGHT)
        .sort("_order")
        .group_by("instruction_id")
        .agg(pl.col("state", *columns).last())
    )


def states(attempts: pl.DataFrame, events: pl.DataFrame, released: pl.DataFrame) -> pl.DataFrame:
    """Return every attempt with its current state, reason and the result that set it.

    The latest result that is not IN_FLIGHT decides (`final_results`); an attempt with none is
    in its run's release state (`released`: run_id, attempt_state; flows.audit.release).
    """
    final = final_results(
        events.lazy(),
        "reason_code",
        "details_wrong",
        "result_file",
        "result_line",
        "processed_at",
        "result_run_id",
    ).collect()
    return (
        attempts.join(final, on="instruction_id", how="left")
        .join(released.select("run_id", "attempt_state"), on="run_id", how="left")
        .with_columns(
            state=pl.coalesce("state", "attempt_state", pl.lit(AT_COMMIT)),
            details_wrong=pl.col("details_wrong").fill_null(False),
        )
        .drop("attempt_state")
    )


def owed_again(current: pl.DataFrame) -> pl.DataFrame:
    """Return the payments owed again (REISSUE_SCHEMA of flows.decide.rules).

    A payment is owed again when its newest attempt failed (REJECTED, RETURNED, VOIDED); the
    details a result called wrong (`details_wrong`) on any of its attempts are never paid again.
    """
    newest = current.sort("attempt").group_by("payment_id").agg(pl.all().last())
    wrong = (
        current.filter(pl.col("state").is_in(FAILED) & pl.col("details_wrong"))
        .group_by("payment_id")
        .agg(wrong_keys=pl.col("payout_key").drop_nulls().unique().sort())
    )
    return (
        newest.filter(pl.col("state").is_in(FAILED))
        .join(wrong, on="payment_id", how="left")
        .select(
            "person_key",
            "instalment",
            "payment_id",
            last_attempt="attempt",
            last_instruction_id="instruction_id",
            wrong_keys=pl.col("wrong_keys").fill_null(pl.lit([], pl.List(pl.String))),
            amount_krw="amount_krw",
        )
        .sort("payment_id")
    )


def failed_attempts(current: pl.DataFrame) -> pl.DataFrame:
    """Return (payment_id, attempt) of every attempt that failed: not paid in money."""
    return current.filter(pl.col("state").is_in(FAILED)).select("payment_id", "attempt")


# Why a result line is refused (`transitions`): flows.run.results turns each into its message.
UNKNOWN, AMOUNT, VOIDED_ATTEMPT, NOT_RELEASED, DUPLICATE, CONFLICT = (
    "unknown",
    "amount",
    "voided",
    "not_released",
    "duplicate",
    "conflict",
)


def transitions(lines: pl.DataFrame, current: pl.DataFrame) -> pl.DataFrame:
    """Return each result line with the state it moves its attempt to, or the fault refusing it.

    `lines`: the lines of an import in order (flows.results.formats RESULT_SCHEMA, with
    `seq`); `current`: `states` of the program's attempts. Adds `state` (what the line records:
    a REJECTED after a SETTLED is a RETURNED, lifecycle.md), `was` (the attempt's state before
    the line), `issued_krw` and `fault` (null when allowed, else one of UNKNOWN, AMOUNT,
    VOIDED_ATTEMPT, NOT_RELEASED, DUPLICATE, CONFLICT). Vectorised: each line is checked against
    the state the line before it (in this import, or the ledger) left its attempt in.
    """
    known = current.select(
        "instruction_id",
        _amount="amount_krw",
        _state="state",
        _result_file="result_file",
        _result_line="result_line",
    )
    final = pl.col("status") != IN_FLIGHT
    joined = (
        lines.join(known, on="instruction_id", how="left", maintain_order="left")
        .with_columns(_final=final)
        .with_columns(
            # the raw status of the previous final line of the same attempt in this import
            _before=pl.when(final)
            .then(pl.col("status"))
            .forward_fill()
            .shift(1)
            .over("instruction_id", order_by="seq")
        )
    )
    # what the previous final line of this attempt (in this import) left it in
    before = (
        pl.when(pl.col("_before").is_not_null() & pl.col("_before").ne(IN_FLIGHT))
        .then(pl.col("_before"))
        .otherwise(pl.col("_state"))
    )
    status = pl.col("status")
    returned_settlement = (before == RETURNED) & (status == SETTLED)
    fault = (
        pl.when(pl.col("_state").is_null())
        .then(pl.lit(UNKNOWN))
        .when(pl.col("amount_krw") != pl.col("_amount"))
        .then(pl.lit(AMOUNT))
        .when(before == VOIDED)
        .then(pl.lit(VOIDED_ATTEMPT))
        .when(before == ISSUED)
        .then(pl.lit(NOT_RELEASED))
        .when(~pl.col("_final") | returned_settlement)
        # a pending line changes nothing; a settlement read after its return (another file,
        # another order) is what the return implies: both recorded, neither changes the state
        .then(pl.lit(None, pl.String))
        .when(
            ((before == SETTLED) & (status == SETTLED))
            | (status == before)
            | ((before == RETURNED) & (status == REJECTED))
        )
        .then(pl.lit(DUPLICATE))
        .when(before.is_in([REJECTED, RETURNED]))
        .then(pl.lit(CONFLICT))
        .otherwise(pl.lit(None, pl.String))
    )
    state = (
        pl.when((before == SETTLED) & (status == REJECTED))
        .then(pl.lit(RETURNED))
        .when((status == RETURNED) & (before == RELEASED))
        .then(pl.lit(RETURNED))
        .when(returned_settlement)
        .then(pl.lit(RETURNED))
        .otherwise(status)
    )
    return joined.with_columns(fault=fault, state=state, issued_krw="_amount", was=before).drop(
        "_amount", "_state", "_result_file", "_result_line", "_final", "_before"
    )


def reconcile(
    current: pl.DataFrame, released: pl.DataFrame, due_days: int, today: dt.date
) -> pl.DataFrame:
    """Return each attempt's state with `in_flight`, `overdue` and `owed_again` flags.

    `released` (run_id, released_on: the Seoul day its run was released, null while it waits
    for approval): a released attempt with no result `due_days` after that day is overdue.
    `owed_again`: the attempt failed and is its payment's newest (a later run pays it again).
    """
    newest = current.group_by("payment_id").agg(_newest=pl.col("attempt").max())
    return (
        current.join(released, on="run_id", how="left")
        .join(newest, on="payment_id", how="left")
        .with_columns(in_flight=pl.col("state").is_in([ISSUED, RELEASED]))
        .with_columns(
            overdue=(
                (pl.col("state") == RELEASED)
                & (pl.col("released_on") + pl.duration(days=due_days) < pl.lit(today))
            ).fill_null(False),
            owed_again=pl.col("state").is_in(FAILED) & (pl.col("attempt") == pl.col("_newest")),
        )
        .drop("_newest")
    )


FIGURES = ("issued", "settled", "rejected", "returned", "voided", "in_flight", "overdue")


def totals(attempts: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Return, per group of `by` and state: people (`<state>`), `<state>_attempts`, `<state>_krw`.

    `issued` counts every attempt; the states after it split it (in flight, settled, ...). A
    person paid again after a failed attempt counts once per state their attempts are in.
    """
    state = pl.col("state")
    picks = {
        "issued": pl.col("attempt").is_not_null(),
        "settled": state == SETTLED,
        "rejected": state == REJECTED,
        "returned": state == RETURNED,
        "voided": state == VOIDED,
        "in_flight": pl.col("in_flight"),
        "overdue": pl.col("overdue"),
    }
    aggs = []
    for name, pick in picks.items():
        aggs += [
            pick.sum().alias(f"{name}_attempts"),
            pl.col("person_key").filter(pick).n_unique().alias(name),
            pl.col("amount_krw").filter(pick).sum().alias(f"{name}_krw"),
        ]
    grouped = attempts.group_by(by).agg(aggs) if by else attempts.select(aggs)
    return grouped.sort(by) if by else grouped


def reasons(attempts: pl.DataFrame) -> pl.DataFrame:
    """Return the failed attempts per state and reason code: attempts and won."""
    return (
        attempts.filter(pl.col("state").is_in([REJECTED, RETURNED]))
        .group_by("state", "reason_code")
        .agg(attempts=pl.len(), won=pl.col("amount_krw").sum())
        .sort("state", "attempts", "reason_code", descending=[False, True, False])
    )
