"""Stage a run's files and publish them atomically; recover what a crash left behind.

Every file is first written under `OUT/.staging/<run_id>/` with the same relative path it will
have. Publishing renames whole units into place (a rename is atomic on one file system) and the
run record is the commit point: see `flows.run.paths.publish_units`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flows.audit import signing
from flows.i18n import _
from flows.run import paths as layout

STAGING = ".staging"
MARKER = "staged.json"
PENDING = ".pending"  # a staging folder being created: its marker may be incomplete
DONE = ".done"  # a finished staging folder being deleted: nothing in it is needed any more
ABANDONED_AFTER_S = 600  # a pending folder with no readable marker older than this is debris


@dataclass(frozen=True)
class Written:
    """A staged file: its path relative to the output root and its SHA-256."""

    path: str
    sha256: str
    size: int


class Staging:
    """The private folder a run writes into before it commits."""

    def __init__(self, out: Path, program: str, run_month: str, run_id: str) -> None:
        self.out = out
        self.units = layout.publish_units(program, run_month, run_id)
        self.root = out / STAGING / run_id
        # The folder appears with its marker already complete: recovery can always tell whose it is.
        pending = out / STAGING / f"{run_id}{PENDING}"
        pending.mkdir(parents=True, exist_ok=False)
        (pending / MARKER).write_text(
            json.dumps({"program": program, "run_month": run_month, "run_id": run_id})
        )
        os.replace(pending, self.root)
        self.written: list[Written] = []

    def write(self, relative: Path, content: bytes, private: bool = False) -> Written:
        """Write `content` at `relative` inside the staging folder; owner-only when private."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if private:
            target.parent.chmod(0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        written = Written(str(relative), hashlib.sha256(content).hexdigest(), len(content))
        self.written.append(written)
        return written

    def drop(self, *folders: str) -> None:
        """Remove what was staged under `folders` (e.g. a refused run's payment files)."""
        for folder in folders:
            shutil.rmtree(self.root / folder, ignore_errors=True)
        self.written = [w for w in self.written if not w.path.startswith(folders)]

    def path(self, relative: Path, private: bool = False) -> Path:
        """Return where to write `relative` in place (large outputs, streamed); then `adopt` it."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if private:
            target.parent.chmod(0o700)
        return target

    def adopt(self, relative: Path) -> Written:
        """Sync a file written in place at `path(relative)` and record its SHA-256."""
        digest, size = hashlib.sha256(), 0
        with open(self.root / relative, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
                size += len(chunk)
            os.fsync(f.fileno())
        written = Written(str(relative), digest.hexdigest(), size)
        self.written.append(written)
        return written

    def publish(self) -> None:
        """Move each staged unit into place, in order, then remove the staging folder."""
        for unit in self.units:
            move_unit(self.root, self.out, unit)
        discard(self.root)


def move_unit(staging_root: Path, out: Path, unit: Path) -> None:
    """Rename one staged unit into the output root, if it was staged and not yet moved."""
    source = staging_root / unit
    if not source.exists():
        return
    target = out / unit
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def recover(out: Path, program: str | None = None) -> list[str]:
    """Finish or undo runs a crash interrupted; return one line per run repaired.

    A staged run whose run record is published is committed: its remaining units (payments) are
    moved into place. Any other staged run is rolled back: what it had already moved is deleted.
    With `program`, only that program's staged runs are touched (the caller holds its lock, so
    none of them is still running); other programs may be running in the same output root.
    """
    notes: list[str] = []
    staging = out / STAGING
    for root in sorted(staging.glob("*/")) if staging.is_dir() else []:
        if root.name.endswith(DONE):  # crashed while deleting a finished staging folder
            shutil.rmtree(root, ignore_errors=True)
            continue
        run = staged_run(root)
        if run is None:  # crashed while creating it: nothing was staged or moved
            if time.time() - root.stat().st_mtime > ABANDONED_AFTER_S:
                shutil.rmtree(root, ignore_errors=True)
            continue
        if program is not None and run["program"] != program:
            continue
        if root.name.endswith(PENDING):  # crashed before staging began: nothing was moved
            shutil.rmtree(root)
            continue
        units = layout.publish_units(run["program"], run["run_month"], run["run_id"])
        if (out / layout.run_record_file(run["program"], run["run_id"])).exists():
            for unit in units:
                move_unit(root, out, unit)
            notes.append(
                _(
                    "run {run_id}: committed before it was interrupted; released its "
                    "remaining files"
                ).format(run_id=run["run_id"])
            )
        else:
            for unit in units:
                remove(out / unit)
            notes.append(
                _(
                    "run {run_id}: interrupted before commit; removed its partial "
                    "output (nothing was paid)"
                ).format(run_id=run["run_id"])
            )
        discard(root)
    return notes


def staged_runs(out: Path, program: str) -> set[str]:
    """Return the run ids of `program` staged in the output root (by a valid marker).

    A folder is a staged run only if its marker is one a run writes (`staged_run`): an empty
    folder named after a run id does not pass for one.
    """
    staging = out / STAGING
    roots = sorted(staging.iterdir()) if staging.is_dir() else []
    return {
        run["run_id"]
        for root in roots
        if root.is_dir() and (run := staged_run(root)) is not None and run["program"] == program
    }


def discard(root: Path) -> None:
    """Delete a staging folder whose work is done: renamed first, so a crash midway is obvious."""
    done = root.with_name(root.name + DONE)
    os.replace(root, done)
    shutil.rmtree(done, ignore_errors=True)  # what is left is removed by the next recovery


MARKER_FIELDS = {
    "program": re.compile(r"[a-z0-9][a-z0-9-]*"),
    "run_month": re.compile(r"\d{4}-(0[1-9]|1[0-2])"),
    "run_id": re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}"),
}


def staged_run(root: Path) -> dict[str, str] | None:
    """Return a staging folder's marker, or None when it has none (a half-written pending one).

    A marker names the paths recovery moves or deletes, so only one a run could have written is
    believed: a program id, a month and a run id of their forms, the run id being the folder's
    own name. Anything else (planted under the output root) is left alone, never followed.
    """
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or not all(
        isinstance(marker.get(k), str) and pattern.fullmatch(marker[k])
        for k, pattern in MARKER_FIELDS.items()
    ):
        return None
    if root.name.removesuffix(PENDING) != marker["run_id"]:
        return None
    return {k: str(marker[k]) for k in MARKER_FIELDS}


def remove(path: Path) -> None:
    """Delete a published file or folder if it exists."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def write_public_key(out: Path, key: Ed25519PrivateKey) -> Path:
    """Write the signing key's public half beside the trail (`audit/keys/<key id>.pem`), once.

    Public data: anyone may read it. An auditor checks signatures with a copy they trust
    (`jiwon audit verify --public-key`), since whoever can write `out` can replace this one.
    """
    target = out / layout.public_key_file(signing.key_id(key))
    pem = signing.public_pem(key)
    if target.is_file() and target.read_bytes() == pem:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.replace(partial, target)
    return target
