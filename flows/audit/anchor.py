"""The chain's head kept outside the output root, so deleting the newest runs is noticed (0013).

Signatures stop anyone without the city's signing key from adding or editing a run record, but
not from *deleting* the newest ones: a trail cut back to an earlier run is still a valid signed
chain, and the people the deleted runs paid would be paid again. So after every commit the head
of the program's chain (how many records, the last one's id and `run_sha256`) is also written
to an anchor file in a folder that whoever can write `--out` should not be able to write:
`JIWON_ANCHOR_DIR`, by default `$XDG_STATE_HOME/jiwon/anchors` (`~/.local/state/jiwon/anchors`).
One file per program and output root. Before paying, a run checks that the anchored head is
still in the chain at its place; the chain may have grown past it (a run that crashed after
publishing, before writing the anchor), never shrunk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from flows.i18n import N_, _
from flows.inputs.ledger import untrusted

ANCHOR_ENV = "JIWON_ANCHOR_DIR"

# `jiwon audit anchor` adopts a trail verify finds with this problem alone (flows/cli.py).
NO_ANCHOR = N_(
    "there is no anchor at {path} for a trail of {len} run record(s): the anchor outside the "
    "output root is missing (if the trail was moved, or was written before anchors, check it "
    "with `jiwon audit verify` and adopt it with `jiwon audit anchor`)"
)


def anchor_dir() -> Path:
    """Return the folder anchors are kept in (JIWON_ANCHOR_DIR, else the user's state folder)."""
    configured = os.environ.get(ANCHOR_ENV)
    if configured:
        return Path(configured)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "jiwon" / "anchors"


def anchor_name(out: Path, program: str) -> str:
    """Return the name of one program's anchor in one output root (file stem, Prefect Variable)."""
    root = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return f"{program}-{root}"


def anchor_file(out: Path, program: str, folder: Path | None = None) -> Path:
    """Return the anchor of one program's chain in one output root."""
    return (folder or anchor_dir()) / f"{anchor_name(out, program)}.json"


def read_anchor(path: Path) -> dict[str, Any] | None:
    """Return an anchor's content, or None when there is none; LedgerUntrusted if unreadable."""
    if not path.exists():
        return None
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        int(body["records"])
        if body["records"]:
            str(body["run_sha256"]), str(body["run_id"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise untrusted(f"the anchor {path} cannot be read ({type(e).__name__})") from None
    return dict(body)


def anchor_problem(
    runs: pl.DataFrame,
    anchor: dict[str, Any] | None,
    path: Path,
    staged: set[str] | None = None,
) -> str | None:
    """Return why the chain `runs` (oldest first) does not reach the anchored head, or None.

    The anchor names the last head known published (`records`, `run_id`, `run_sha256`; none
    yet: `records` 0) and, while a commit is under way, the head it is publishing (`pending`):
    a run that died between the two may or may not have published its record. With `staged`
    (the run ids staged in the output root before recovery), a pending run that is neither in
    the chain nor staged was published and then deleted.
    """
    shas = runs["run_sha256"].to_list() if runs.height else []
    if anchor is None:
        if not shas:
            return None  # the program's first run: nothing to anchor yet
        return _(NO_ANCHOR).format(path=path, len=len(shas))
    pending = anchor.get("pending")
    if (
        staged is not None
        and isinstance(pending, dict)
        and pending.get("run_sha256") not in shas
        and pending.get("run_id") not in staged
    ):
        return _(
            "the trail was cut back: the anchor at {path} names run {get} as "
            "being published when the last run stopped, and it is neither in "
            "the trail nor staged to be rolled back (it was published, then "
            "deleted)"
        ).format(path=path, get=pending.get("run_id"))
    records = int(anchor["records"])
    if records and (len(shas) < records or shas[records - 1] != anchor["run_sha256"]):
        return _(
            "the trail was cut back or rewritten: the anchor at {path} names "
            "run {run_id} as record {records} of the chain, and the trail "
            "has {len} record(s) without it there (the newest runs were "
            "deleted or replaced)"
        ).format(path=path, run_id=anchor["run_id"], records=records, len=len(shas))
    return None


def check_anchor(
    out: Path, program: str, runs: pl.DataFrame, staged: set[str] | None = None
) -> None:
    """Halt (LedgerUntrusted) unless the program's chain still reaches its anchored head.

    `staged`: the run ids that had a staging folder before recovery (see `anchor_problem`).
    """
    path = anchor_file(out, program)
    problem = anchor_problem(runs, read_anchor(path), path, staged)
    if problem is not None:
        raise untrusted(problem)


def write_anchor(
    out: Path, program: str, head: tuple[int, str, str] | None, pending: tuple[int, str, str] | None
) -> dict[str, Any]:
    """Record the chain's head (records, run_id, run_sha256) outside the output root.

    Written twice per commit: before publishing (the old head, the new one pending) and after
    (the new head). Atomic: a reader sees the old file or the new one. Returns what it wrote.
    """
    path = anchor_file(out, program)
    path.parent.mkdir(parents=True, exist_ok=True)
    records, run_id, run_sha256 = head or (0, None, None)
    body = {
        "program": program,
        "out": str(out.resolve()),
        "records": records,
        "run_id": run_id,
        "run_sha256": run_sha256,
        "pending": None
        if pending is None
        else {"records": pending[0], "run_id": pending[1], "run_sha256": pending[2]},
        "updated_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(body, indent=2), encoding="utf-8")
    os.replace(partial, path)
    return body


@dataclass(frozen=True)
class ChainHead:
    """The program's chain as a run found it, checked, under the lock: what it extends."""

    records: int = 0
    run_id: str | None = None
    run_sha256: str | None = None
    finished_at: dt.datetime | None = None

    @classmethod
    def of(cls, runs: pl.DataFrame) -> ChainHead:
        """Return the head of run records read oldest first (none: the program's first run)."""
        if not runs.height:
            return cls()
        last = runs.row(-1, named=True)
        return cls(runs.height, last["run_id"], last["run_sha256"], last["finished_at"])

    def anchored(self) -> tuple[int, str, str] | None:
        """Return the head as the anchor records it (None before the first run)."""
        if not self.records:
            return None
        return self.records, str(self.run_id), str(self.run_sha256)


def settle_anchor(out: Path, program: str, runs: pl.DataFrame) -> None:
    """Clear the anchor's pending head once the checked chain shows it was rolled back.

    Called after the anchor check passed and recovery ran: a pending run not in the chain was
    staged and rolled back, so it is settled now. Left pending, a later run would no longer see
    it staged and would take it for a run published, then deleted.
    """
    body = read_anchor(anchor_file(out, program))
    pending = body.get("pending") if body else None
    shas = set(runs["run_sha256"]) if runs.height else set()
    if isinstance(pending, dict) and pending.get("run_sha256") not in shas:
        write_anchor(out, program, ChainHead.of(runs).anchored(), pending=None)
