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

import os
import shutil
from pathlib import Path

import polars as pl

from flows.audit import release
from flows.errors import LedgerUntrusted, RunHalted
from flows.i18n import _
from flows.inputs.ledger import sha256_file
from flows.run import paths as layout

PARTIAL = ".partial"
MARKER = ".release-"  # + the approval event's id: written in a partial folder before it commits
JOURNAL = ".released"  # run ids whose release was renamed into place, one per line


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


def build(out: Path, program: str, run: dict[str, object], event_id: str) -> Path:
    """Copy a run's sealed payment files into its partial outbox folder; return the folder.

    The folder is marked with the id of the approval event about to release it (`settle`
    finishes only a partial folder of the latest event, so marked).

    Refuses (exit 4) when a payment file is missing or differs from its run record, and when
    the run already has an outbox folder (something put it there: no run is released twice).
    """
    run_id = str(run["run_id"])
    if released_dir(out, program, run_id).exists():
        raise RunHalted(
            _(
                "release refused: {released_dir} already exists but run {run_id} "
                "was never released; nothing was released. Someone put files in "
                "the outbox: find out who, remove the folder, and approve again."
            ).format(released_dir=released_dir(out, program, run_id), run_id=run_id)
        )
    partial = partial_dir(out, program, run_id)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    for item in payment_outputs(run, program):
        source = out / item["file"]
        if not source.is_file() or sha256_file(source) != item["sha256"]:
            shutil.rmtree(partial)
            what = _("is missing") if not source.is_file() else _("differs from its run record")
            raise LedgerUntrusted(
                _(
                    "release refused: payment file {file} of run {run_id} {what}; "
                    "nothing was released. The file was changed or removed after the "
                    "run committed: run `jiwon audit verify`, find out who changed "
                    "it, and do not send it."
                ).format(file=item["file"], run_id=run_id, what=what)
            )
        shutil.copy2(source, partial / source.name)
    (partial / f"{MARKER}{event_id}").write_bytes(b"")
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
    journal(out, program, run_id)
    for mark in target.glob(f"{MARKER}*"):  # done: only the payment files are to be sent
        mark.unlink()
    return target


def journaled(out: Path, program: str) -> set[str]:
    """Return the run ids whose release was renamed into the outbox (`JOURNAL`)."""
    path = out / layout.outbox_dir(program) / JOURNAL
    return set(path.read_text(encoding="utf-8").split()) if path.is_file() else set()


def journal(out: Path, program: str, run_id: str) -> None:
    """Note that a run's release was renamed into place: its files never come back (settle)."""
    path = out / layout.outbox_dir(program) / JOURNAL
    with path.open("a", encoding="utf-8") as f:
        f.write(run_id + "\n")
        f.flush()
        os.fsync(f.fileno())


def sealed_copy(folder: Path, run: dict[str, object], program: str) -> bool:
    """Return whether `folder` holds exactly the payment files `run` sealed, unchanged."""
    sealed = {Path(o["file"]).name: o["sha256"] for o in payment_outputs(run, program)}
    files = folder.iterdir() if folder.is_dir() else iter(())
    found = {f.name: f for f in files if not f.name.startswith(".")}
    return set(found) == set(sealed) and all(sha256_file(found[n]) == h for n, h in sealed.items())


def settle(out: Path, program: str, runs: pl.DataFrame) -> list[str]:
    """Finish a release a crash interrupted, delete any other partial folder; say what was done.

    Called with the program's lock held and its records checked (`open_chain`), before the
    event being opened adds its record. A crash can only leave the partial folder of the
    latest event: it is renamed into place when that event is the approval that released its
    run (the folder carries that event's mark), the run was never renamed into place before
    (`JOURNAL`) and has no outbox folder, and its files are still exactly the sealed ones. Any
    other partial folder (an older one, one put there by hand, a copy of files sent before)
    is deleted: a released run never reaches the outbox twice.
    """
    folder = out / layout.outbox_dir(program)
    state = release.walk(runs)
    last = str(runs["run_id"][-1]) if runs.height else None
    renamed = journaled(out, program)
    notes: list[str] = []
    for entry in state.values():  # killed between the rename and its journal line
        recorded = entry.event_id == last and entry.run_id not in renamed
        if recorded and released_dir(out, program, entry.run_id).is_dir():
            journal(out, program, entry.run_id)
    partials = sorted(folder.glob(f".*{PARTIAL}")) if folder.is_dir() else []
    if not partials:
        return notes
    renamed = journaled(out, program)
    by_id = {str(r["run_id"]): r for r in runs.to_dicts()}
    for partial in partials:
        run_id = partial.name.removeprefix(".").removesuffix(PARTIAL)
        done = state.get(run_id)
        latest = (
            done is not None
            and done.release == release.RELEASED
            and done.event_id is not None
            and done.event_id == last
            and (partial / f"{MARKER}{last}").is_file()
            and run_id not in renamed
            and not released_dir(out, program, run_id).exists()
        )
        if latest and sealed_copy(partial, by_id[run_id], program):
            finish(out, program, run_id)
            notes.append(
                _("finished releasing run {run_id} to {released_dir}").format(
                    run_id=run_id, released_dir=released_dir(out, program, run_id)
                )
            )
            continue
        shutil.rmtree(partial)
        why = (
            _("its files differ from what the run sealed")
            if latest
            else _("no release being recorded when it was left")
        )
        notes.append(
            _("removed a partial outbox folder of run {run_id}: {why}").format(
                run_id=run_id, why=why
            )
        )
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
        if entry.name.endswith(PARTIAL):
            found.append(
                _(
                    "{relative_to}: an unfinished release (a crash, or put there by "
                    "hand): the next command of the program finishes it if it is the "
                    "latest approval's, else removes it; nothing in it is to be sent"
                ).format(relative_to=entry.relative_to(out))
            )
            continue
        if entry.name.startswith("."):
            continue
        run = state.get(entry.name)
        if run is None or run.release != release.RELEASED:
            phrase = _("no paying run") if run is None else release.shown(run)
            found.append(
                _(
                    "{relative_to}: outbox files of {phrase}: released without an "
                    "approval the trail records"
                ).format(relative_to=entry.relative_to(out), phrase=phrase)
            )
            continue
        outputs = payment_outputs(by_id[run.run_id], program)
        sealed = {Path(o["file"]).name: o["sha256"] for o in outputs}
        for f in sorted(entry.iterdir()):
            if f.name.startswith(MARKER):
                continue  # the mark of the approval that released it
            if sealed.get(f.name) != sha256_file(f):
                found.append(
                    _(
                        "{relative_to}: not a payment file its run record sealed (added "
                        "or edited in the outbox)"
                    ).format(relative_to=f.relative_to(out))
                )
    return found
