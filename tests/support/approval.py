"""Release a committed run's payment files as a second person would (issue 18), for tests
whose subject comes after the release (results, re-issue, reports)."""

from __future__ import annotations

from pathlib import Path

from flows.audit import release
from flows.inputs.ledger import run_records
from flows.run.approve import ApprovalSummary, ApproveParams, approve_release

APPROVERS = ("approver-park", "approver-lee")  # never a run's operator in the tests


def release_run(
    out: Path, run_id: str, program: str = "paju-livelihood-2025", programs_dir: Path | None = None
) -> list[ApprovalSummary]:
    """Approve `run_id` by as many distinct approvers as it needs; nothing if not pending."""
    done = []
    target = release.walk(run_records(out.resolve(), program)).get(run_id)
    if target is None or target.release != release.PENDING:
        return done
    for approver in APPROVERS[len(target.approvers) : target.needed]:
        done.append(
            approve_release(
                ApproveParams(
                    program=program,
                    out=out,
                    run_id=run_id,
                    approver=approver,
                    programs_dir=programs_dir,
                )
            )
        )
    return done
