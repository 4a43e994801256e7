"""The `rotate-key` Prefect flow: rotate a program's personal-data key or signing key on purpose.

A rotation is a ledger event of its own: a signed run record in the program's chain that pays
nobody (`flows.audit.rotation`, decision note 0014). It takes the program's lock, finishes what a
crash left and checks the chain and its anchor exactly as a run does, then commits through the
same staging and anchor steps, so a crash at any moment leaves it done or not done.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows.audit import keyprint, signing
from flows.audit import records as audit
from flows.audit.rotation import (
    PII,
    ROTATION,
    SIGNING,
    key_pairs,
    known_persons,
    map_persons,
)
from flows.checks.validate import normalise
from flows.errors import JiwonError, RunHalted, UsageError
from flows.i18n import _
from flows.inputs.ingest import list_delivery, read_file
from flows.inputs.ledger import ledger_files, person_keys_now
from flows.run import flow as disburse_flow
from flows.run import paths as layout
from flows.run.flow import (
    commit,
    event_record,
    ledger_event,
    load_program_or_usage,
    new_run_id,
    open_chain,
    pii_key,
    previous_pii_key,
    previous_signing_key,
    signing_key,
)
from flows.run.publish import Staging, discard
from rules.program import Program

SHOWN = 3  # masked identities named when persons are missing from the extracts


class RotateParams(BaseModel):
    """Which key of which program to rotate, and where the RRNs for a personal-data key are."""

    model_config = ConfigDict(extra="forbid")

    program: str = Field(min_length=1)
    out: Path
    key: Literal["pii", "signing"]
    registry: Path | None = Field(default=None, description="registry extracts (pii key)")
    enrollments: Path | None = Field(default=None, description="enrollment extracts (pii key)")
    operator: str = Field(default="unknown", min_length=1)
    reason: str | None = None
    programs_dir: Path | None = None


class RotationSummary(BaseModel):
    """What a rotation did, for the command line."""

    run_id: str
    program: str
    key: str
    message: str
    persons: int = 0


@flow(name="rotate-key", log_prints=False, validate_parameters=True)
def rotate_key(params: RotateParams) -> RotationSummary:
    """Rotate a program's personal-data key or signing key, recorded as a signed ledger event."""
    return ledger_event(_rotate, params)


@dataclass(frozen=True)
class Change:
    """What a rotation changes, as its run record says it."""

    detail: dict[str, Any]  # the `rotation` object of the record's parameters
    fingerprint: str | None  # the program's personal-data key fingerprint from now on
    message: str
    inputs: list[dict[str, Any]] = field(default_factory=list)


def _rotate(params: RotateParams, held: ExitStack) -> RotationSummary:
    started = disburse_flow.now()
    run_id = new_run_id(started)
    out = params.out.resolve()
    program = load_program_or_usage(params.program, params.programs_dir)
    # Both keys are read, and told apart, before the chain is touched.
    signer = signing_key()
    old_signer, old_pii = None, ""
    if params.key == "signing":
        old_signer = previous_signing_key()
        same = signing.key_id(old_signer) == signing.key_id(signer)
        names = ("JIWON_SIGNING_KEY", "JIWON_SIGNING_KEY_PREVIOUS")
    else:
        old_pii = previous_pii_key()
        same = old_pii == pii_key()
        names = ("JIWON_PII_KEY", "JIWON_PII_KEY_PREVIOUS")
    if same:
        raise UsageError(
            _(
                "bad usage: {value} and {value2} hold the same key: put the new key in {value}"
            ).format(value=names[0], value2=names[1])
        )
    runs, head = open_chain(out, program.id, run_id, started, signer, held, old_signer)
    if not runs.height:
        raise UsageError(
            _(
                "bad usage: program {id} has no runs under {out}: there is "
                "nothing to rotate; its first run simply uses the new key"
            ).format(id=program.id, out=out)
        )
    known = keyprint.program_fingerprints(runs)
    committed = runs.filter(pl.col("status") == "committed", ~pl.col("dry_run"))
    run_month = (
        str(committed["run_month"].max()) if committed.height else str(runs["run_month"][-1])
    )
    staging = Staging(out, program.id, run_month, run_id)
    try:
        if old_signer is not None:
            change = signing_change(program, runs, known, old_signer, signer)
        else:
            change = pii_change(params, program, runs, committed, known, old_pii, staging)
    except JiwonError:
        discard(staging.root)  # nothing was staged for the chain: nothing to recover
        raise
    record = event_record(
        program,
        run_id,
        started,
        run_month,
        ROTATION,
        params.operator,
        params.reason,
        {"rotation": change.detail},
        change.message,
        change.inputs,
        change.fingerprint,
    )
    commit(record, staging, head, signer, old_signer)
    get_run_logger().info(
        _("rotation {run_id} of {program}: {message}").format(
            run_id=run_id, program=program.id, message=change.message
        )
    )
    return RotationSummary(
        run_id=run_id,
        program=program.id,
        key=params.key,
        message=change.message,
        persons=int(change.detail.get("persons") or 0),
    )


def signing_change(
    program: Program,
    runs: pl.DataFrame,
    known: list[tuple[str, str]],
    old: Ed25519PrivateKey,
    new: Ed25519PrivateKey,
) -> Change:
    """Return a signing-key rotation: both public keys, named in the record both sign."""
    if signing.key_id(new) in set(runs["signing_key"].drop_nulls()):
        raise UsageError(
            _(
                "bad usage: the new JIWON_SIGNING_KEY (id {value}…) already "
                "signed runs of {id}: a retired key never comes back; make a new "
                "one with `jiwon keys new`"
            ).format(value=signing.key_id(new)[:12], id=program.id)
        )
    detail = {
        "kind": SIGNING,
        "previous_key_id": signing.key_id(old),
        "previous_public_key": signing.public_pem(old).decode(),
        "new_key_id": signing.key_id(new),
        "new_public_key": signing.public_pem(new).decode(),
    }
    message = _(
        "signing key rotated from {value}… to {value2}…: later runs are "
        "signed with the new key only"
    ).format(value=detail["previous_key_id"][:12], value2=detail["new_key_id"][:12])
    return Change(detail, known[-1][0] if known else None, message)


def pii_change(
    params: RotateParams,
    program: Program,
    runs: pl.DataFrame,
    committed: pl.DataFrame,
    known: list[tuple[str, str]],
    old: str,
    staging: Staging,
) -> Change:
    """Map every person the trail knows from the old key to the new; stage the map.

    Halts (nothing rotated) when a person the ledger paid is in none of the extracts.
    """
    new = pii_key()
    if known and keyprint.fingerprint_like(old, known) != known[0][0]:
        raise UsageError(
            _(
                "bad usage: JIWON_PII_KEY_PREVIOUS is not the key program {id}'s "
                "runs use (its fingerprint differs from run {value}): give the "
                "key the program was paid with"
            ).format(id=program.id, value=known[0][1])
        )
    used = set(runs["key_fingerprint"].drop_nulls()) if "key_fingerprint" in runs.columns else set()
    if keyprint.fingerprint_like(new, known) in used:
        raise UsageError(
            _(
                "bad usage: the new JIWON_PII_KEY was used by earlier runs of "
                "{id}: a retired key never comes back; put a new key in "
                "JIWON_PII_KEY"
            ).format(id=program.id)
        )
    if params.registry is None:
        raise UsageError(
            _(
                "bad usage: rotating the personal-data key needs --registry (and "
                "--enrollments): the extracts whose RRNs are keyed under both "
                "keys"
            )
        )
    paths = [(p, "registry") for p in list_delivery(params.registry, "registry")]
    if params.enrollments is not None:
        paths += [(p, "enrollment") for p in list_delivery(params.enrollments, "enrollment")]
    pairs, inputs = [], []
    for path, kind in paths:
        frame, info = read_file(path, kind)  # type: ignore[arg-type]
        pairs.append(key_pairs(normalise(frame.lazy().select("rrn"), ["rrn"]), old, new))
        inputs.append(
            {
                "kind": f"rotation_{kind}",
                "file": info.file,
                "sha256": info.sha256,
                "rows": info.rows,
                "encoding": info.encoding,
                "skipped_by_run": None,
                "rows_closed": None,
            }
        )
    out = staging.out
    files = ledger_files(out, committed)
    decided = pl.scan_parquet(files, hive_partitioning=True) if files else None
    trail = known_persons(
        None if decided is None else person_keys_now(out, runs, committed, decided)
    )
    mapping, missing = map_persons(pl.concat(pairs), trail)
    if missing.height:
        shown = ", ".join(
            f"{r['rrn_masked']} {r['name_masked'] or ''}".strip()
            for r in missing.head(SHOWN).iter_rows(named=True)
        )
        raise RunHalted(
            _(
                "rotation halted: {height:,} person(s) the ledger of {id} paid "
                "are in none of the given extracts (e.g. {shown}): under the new "
                "key they would look unpaid and be paid again, so the key was "
                "not rotated; nothing was paid. Give --registry/--enrollments "
                "folders that hold them too (the deliveries earlier runs read) "
                "and run again."
            ).format(height=missing.height, id=program.id, shown=shown)
        )
    staging.write(
        layout.rotation_file(program.id, staging.root.name),
        audit.parquet_bytes(mapping, {"jiwon.table": "rotation", "jiwon.program": program.id}),
    )
    paid = int(trail["paid"].sum())
    detail = {
        "kind": PII,
        "previous_key_fingerprint": known[0][0] if known else None,
        "persons": mapping.height,
        "paid_persons": paid,
    }
    message = _(
        "personal-data key rotated: {height:,} person key(s) mapped to "
        "the new key ({paid:,} paid); only the new key is accepted from "
        "now on"
    ).format(height=mapping.height, paid=paid)
    return Change(detail, keyprint.fingerprint_like(new, known), message, inputs)
