"""Release a run's payment files to the outbox, atomically and only once (issue 18).

`OUT/outbox/<program>/<run_id>/` holds the payment files of a released run: what is sent to the
bank or card operator. The trail keeps its own copy under `OUT/payments/` (the run record hashes
those). A release is built before the approval that releases it is recorded, as the hidden
folder `outbox/<program>/.<run_id>.partial`, and renamed into place after it:

- approval recorded, partial folder present: the rename did not happen; `settle` does it;
- approval recorded, no partial folder: released (the folder may since have been sent and
  removed by whoever sends it: it is never made again, so nothing is sent twice);
- no approval recorded (refused, crashed, rolled back): `settle` deletes the partial folder.

Each file is checked against the SHA-256 its run record sealed before it is copied: a payment
file edited while it waited is never released.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import polars as pl

from flows.audit import release
from flows.errors import LedgerUntrusted, RunHalted
from flows.run import paths as layout

PARTIAL = ".partial"


def partial_dir(out: Path, program: str, run_id: str) -> Path:
    """Return the hidden folder a release is built in before its approval is recorded."""
    return out / layout.outbox_dir(program) / f".{run_id}{PARTIAL}"


def released_dir(out: Path, program: str, run_id: str) -> Path:
    """Return a released run's folder in the outbox."""
    return out / layout.outbox_dir(program) / run_id


def payment_outputs(run: dict[str, object], program: str) -> list[dict[str, str]]:
    """Return the payment files (and manifest) a run record sealed: file and sha256."""
    folder = f"{layout.payments_dir(program, str(run['run_id'])).as_posix()}/"
    outputs = run["outputs"]
    assert isinstance(outputs, list)
    return [o for o in outputs if str(o["file"]).startswith(folder)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(out: Path, program: str, run: dict[str, object]) -> Path:
    """Copy a run's sealed payment files into its partial outbox folder; return the folder.

    Refuses (exit 4) when a payment file is missing or differs from its run record, and when
    the run already has an outbox folder (something put it there: no run is released twice).
    """
    run_id = str(run["run_id"])
    if released_dir(out, program, run_id).exists():
        raise RunHalted(
            f"release refused: {released_dir(out, program, run_id)} already exists but run "
            f"{run_id} was never released; nothing was released. Someone put files in the "
            "outbox: find out who, remove the folder, and approve again."
        )
    partial = partial_dir(out, program, run_id)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    for item in payment_outputs(run, program):
        source = out / item["file"]
        if not source.is_file() or _sha256(source) != item["sha256"]:
            shutil.rmtree(partial)
            what = "is missing" if not source.is_file() else "differs from its run record"
            raise LedgerUntrusted(
                f"release refused: payment file {item['file']} of run {run_id} {what}; nothing "
                "was released. The file was changed or removed after the run committed: run "
                "`jiwon audit verify`, find out who changed it, and do not send it."
            )
        shutil.copy2(source, partial / source.name)
    for f in partial.iterdir():
        with f.open("rb") as handle:
            os.fsync(handle.fileno())
    return partial


def finish(out: Path, program: str, run_id: str) -> Path | None:
    """Rename a built release into place (after its approval is recorded); None if done before."""
    partial = partial_dir(out, program, run_id)
    if not partial.exists():
        return None
    target = released_dir(out, program, run_id)
    os.replace(partial, target)
    return target


def settle(out: Path, program: str, runs: pl.DataFrame) -> list[str]:
    """Finish releases a crash interrupted and delete unapproved ones; return what was done.

    Called with the program's lock held and its records checked (`open_chain`).
    """
    folder = out / layout.outbox_dir(program)
    partials = sorted(folder.glob(f".*{PARTIAL}")) if folder.is_dir() else []
    if not partials:
        return []
    done = {r.run_id for r in release.walk(runs).values() if r.release == release.RELEASED}
    notes = []
    for partial in partials:
        run_id = partial.name.removeprefix(".").removesuffix(PARTIAL)
        if run_id in done:
            finish(out, program, run_id)
            notes.append(f"finished releasing run {run_id} to {released_dir(out, program, run_id)}")
        else:
            shutil.rmtree(partial)
            notes.append(f"removed an unfinished release of run {run_id} that was never approved")
    return notes


def problems(out: Path, program: str, runs: pl.DataFrame) -> list[str]:
    """Return what is wrong in a program's outbox (`jiwon audit verify`).

    A folder of a run that is not released, or a file that differs from what its run sealed.
    Files sent and removed from the outbox are not a problem.
    """
    folder = out / layout.outbox_dir(program)
    if not folder.is_dir():
        return []
    state = release.walk(runs)
    by_id = {str(r["run_id"]): r for r in runs.to_dicts()}
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        run = state.get(entry.name)
        if run is None or run.release != release.RELEASED:
            phrase = "no paying run" if run is None else release.shown(run)
            found.append(
                f"{entry.relative_to(out)}: outbox files of {phrase}: released without an "
                "approval the trail records"
            )
            continue
        outputs = payment_outputs(by_id[run.run_id], program)
        sealed = {Path(o["file"]).name: o["sha256"] for o in outputs}
        for f in sorted(entry.iterdir()):
            if sealed.get(f.name) != _sha256(f):
                found.append(
                    f"{f.relative_to(out)}: not a payment file its run record sealed (added or "
                    "edited in the outbox)"
                )
    return found
