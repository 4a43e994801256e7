"""Where each committed run's payment files stand: pending, released or voided (issue 18).

Pure functions over run records. A paying run's files wait for release approval
(lifecycle.md, "Release approval"): approval events (`trigger = approval`) name the run, the
decision (approve or reject) and the approver. A run is

- **pending** until it has as many distinct approvals as its program asked for when it committed
  (`approval` in the run record's program parameters: one, or two above a total);
- **released** by the approval that reaches that number (its files go to the outbox);
- **voided** by a rejection while pending: every attempt of the run is VOIDED (owed again).

Runs committed before release approval existed (no `approval` in their parameters) were released
when they committed.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from flows.audit import attempts as tried
from flows.i18n import _

PENDING, RELEASED, VOIDED = "pending", "released", "voided"
APPROVE, REJECT = "approve", "reject"
SEOUL = ZoneInfo("Asia/Seoul")

# One row per paying run: what `releases` returns.
RELEASE_SCHEMA = pl.Schema(
    {
        "run_id": pl.String(),
        "operator": pl.String(),
        "total_paid_krw": pl.Int64(),
        "needed": pl.Int64(),  # distinct approvers the run needs (0: released at commit)
        "approvers": pl.List(pl.String()),  # who approved, in order
        "release": pl.String(),  # pending, released or voided
        "decided_by": pl.String(),  # who released or rejected it (null while pending)
        "decided_at": pl.Datetime("us", "UTC"),
        "reason": pl.String(),  # a rejection's reason
        "attempt_state": pl.String(),  # ISSUED, RELEASED or VOIDED: its attempts' state
        "released_on": pl.Date(),  # the Seoul day its files were released (results due from)
    }
)


@dataclass
class Release:
    """One paying run's release, built by walking the chain."""

    run_id: str
    operator: str
    total_paid_krw: int
    needed: int
    approvers: list[str] = field(default_factory=list)
    release: str = PENDING
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    reason: str | None = None
    event_id: str | None = None  # the approval event that released or voided the run

    @property
    def attempt_state(self) -> str:
        return {PENDING: tried.ISSUED, RELEASED: tried.RELEASED, VOIDED: tried.VOIDED}[self.release]

    @property
    def released_on(self) -> dt.date | None:
        if self.release != RELEASED or self.decided_at is None:
            return None
        return self.decided_at.astimezone(SEOUL).date()


def approvers_needed(parameters: str, total_krw: int) -> int:
    """Return the approvers a run's record asks for (0: released at commit, before issue 18).

    The rule is the one in force when the run committed (its program parameters), not today's.
    """
    approval = json.loads(parameters or "{}").get("program", {}).get("approval")
    if approval is None:
        return 0
    limit = approval.get("two_approvers_above_krw")
    return 2 if limit is not None and total_krw > int(limit) else 1


def decision_of(parameters: str) -> dict[str, Any]:
    """Return the `approval` part of an approval event's parameters."""
    body = json.loads(parameters or "{}").get("approval")
    if not isinstance(body, dict):
        raise ValueError("an approval event without its approval parameters")
    return body


def walk(runs: pl.DataFrame) -> dict[str, Release]:
    """Return every paying run's release, by run id, from the program's records in chain order."""
    return _walk(runs)[0]


def problems(runs: pl.DataFrame) -> list[str]:
    """Return the approval events that break the release rules (`jiwon audit verify`).

    `jiwon approve` refuses each of these before recording anything: one in the trail was
    written by something else with the signing key.
    """
    return _walk(runs)[1]


def canonical(name: str) -> str:
    """Return a name as recorded: NFKC (full-width letters, decomposed Hangul composed), no
    invisible format or control characters (zero-width spaces, BOM, soft hyphen), single spaces.
    """
    text = unicodedata.normalize("NFKC", name)
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Cc", "Co", "Cn"))
    return " ".join(text.split())


def same_person(a: str, b: str) -> bool:
    """Return whether two names (an operator, an approver) name the same person.

    Compared as `canonical`, without case: `ｋｉｍ`, `Kim`, `k\u200bim` and `kim` are one person.
    """
    return canonical(a).casefold() == canonical(b).casefold()


def _walk(runs: pl.DataFrame) -> tuple[dict[str, Release], list[str]]:
    found: dict[str, Release] = {}
    wrong: list[str] = []
    if not runs.height:
        return found, wrong
    paying = set(tried.paying_runs(runs)["run_id"].to_list())
    columns = ["run_id", "trigger", "status", "operator", "reason", "parameters", "finished_at"]
    for row in runs.select(*columns, "total_paid_krw").iter_rows(named=True):
        if row["status"] != "committed":
            continue
        if row["run_id"] in paying:
            total = int(row["total_paid_krw"] or 0)
            needed = approvers_needed(row["parameters"], total)
            entry = Release(row["run_id"], row["operator"], total, needed)
            if needed == 0 or total == 0:  # before issue 18, or nothing to send
                entry.release, entry.decided_at = RELEASED, row["finished_at"]
            found[row["run_id"]] = entry
        elif row["trigger"] == tried.APPROVAL:
            body = decision_of(row["parameters"])
            target = found.get(str(body.get("run_id")))
            where = f"approval {row['run_id']} of run {body.get('run_id')}"
            if target is None or target.release != PENDING:
                what = "no paying run" if target is None else shown(target)
                wrong.append(
                    _("{where}: decides {what} (changes nothing)").format(where=where, what=what)
                )
                continue  # refused when recorded; never changes a decided run
            if same_person(row["operator"], target.operator):
                wrong.append(
                    _("{where}: approver {operator} is the run's operator").format(
                        where=where, operator=row["operator"]
                    )
                )
                continue
            if body.get("decision") == REJECT:
                target.release, target.reason = VOIDED, row.get("reason") or body.get("reason")
                target.decided_by, target.decided_at = row["operator"], row["finished_at"]
                target.event_id = row["run_id"]
                continue
            if any(same_person(row["operator"], a) for a in target.approvers):
                wrong.append(
                    _("{where}: {operator} approved it twice (counted once)").format(
                        where=where, operator=row["operator"]
                    )
                )
                continue
            target.approvers.append(row["operator"])
            if len(target.approvers) >= target.needed:
                target.release = RELEASED
                target.decided_by, target.decided_at = row["operator"], row["finished_at"]
                target.event_id = row["run_id"]
    return found, wrong


def releases(runs: pl.DataFrame) -> pl.DataFrame:
    """Return one row per paying run (RELEASE_SCHEMA): its release and its attempts' state."""
    rows = [
        {
            "run_id": r.run_id,
            "operator": r.operator,
            "total_paid_krw": r.total_paid_krw,
            "needed": r.needed,
            "approvers": r.approvers,
            "release": r.release,
            "decided_by": r.decided_by,
            "decided_at": r.decided_at,
            "reason": r.reason,
            "attempt_state": r.attempt_state,
            "released_on": r.released_on,
        }
        for r in walk(runs).values()
    ]
    return pl.DataFrame(rows, schema=RELEASE_SCHEMA)


def attempt_states(runs: pl.DataFrame) -> pl.DataFrame:
    """Return (run_id, attempt_state): the state of a run's attempts that no result answered."""
    return releases(runs).select("run_id", "attempt_state")


def shown(release: Release) -> str:
    """Return a run's release as one phrase for people (`jiwon approve`, status, reports)."""
    if release.release == RELEASED:
        by = ", ".join(release.approvers) if release.approvers else _("released at commit")
        return _("released ({by})").format(by=by)
    if release.release == VOIDED:
        return _("voided (rejected by {decided_by}: {reason})").format(
            decided_by=release.decided_by, reason=release.reason
        )
    have = _("{len} of {needed} approval(s)").format(
        len=len(release.approvers), needed=release.needed
    )
    return _("pending ({have}{value})").format(
        have=have, value=": " + ", ".join(release.approvers) if release.approvers else ""
    )
