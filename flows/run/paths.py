"""Where a run's outputs live under the output root (spec/outputs.md), in publish order."""

from __future__ import annotations

from pathlib import Path


def decisions_dir(program: str, run_month: str, run_id: str) -> Path:
    """Return the hive partition folder of a run's decision records."""
    return Path(
        "audit/decisions", f"program={program}", f"run_month={run_month}", f"run_id={run_id}"
    )


def run_record_file(program: str, run_id: str) -> Path:
    """Return the run record's path: its presence is what makes a run committed."""
    return Path("audit/runs", f"program={program}", f"run_id={run_id}.parquet")


def payments_dir(program: str, run_id: str) -> Path:
    """Return the folder of a run's payment files and manifest."""
    return Path("payments", program, run_id)


def quarantine_dir(program: str, run_id: str) -> Path:
    """Return the folder of a run's quarantined rows (owner-only)."""
    return Path("quarantine", program, run_id)


def reports_dir(program: str, run_id: str) -> Path:
    """Return the folder of a run's human-readable report."""
    return Path("reports", program, run_id)


PROGRAM_PAGE = "index.html"
PROGRAM_PAGE_TEMP = ".index.html."  # the page being written, before os.replace puts it in place


def program_page_file(program: str) -> Path:
    """Return the program page: beside the runs' report folders, part of no run (issue 15)."""
    return Path("reports", program, PROGRAM_PAGE)


def rotation_file(program: str, run_id: str) -> Path:
    """Return where a key rotation keeps its map of old to new person keys (0014)."""
    return Path("audit/rotations", f"program={program}", f"run_id={run_id}.parquet")


def results_dir(program: str, run_id: str) -> Path:
    """Return the hive partition folder of a results import's lines (issue 15)."""
    return Path("audit/results", f"program={program}", f"run_id={run_id}")


def results_file(program: str, run_id: str) -> Path:
    """Return where a results import keeps the result lines it accepted."""
    return results_dir(program, run_id) / "results.parquet"


def reviews_dir(program: str, run_id: str) -> Path:
    """Return the hive partition folder of a review import's decisions (issue 18)."""
    return Path("audit/reviews", f"program={program}", f"run_id={run_id}")


def reviews_file(program: str, run_id: str) -> Path:
    """Return where a review import keeps the officers' decisions it accepted."""
    return reviews_dir(program, run_id) / "reviews.parquet"


def outbox_dir(program: str) -> Path:
    """Return where released payment files go, one folder per released run (issue 18)."""
    return Path("outbox", program)


def publish_units(program: str, run_month: str, run_id: str) -> list[Path]:
    """Return the units moved into place, in order: the run record commits, payments follow it.

    Payment files are released only after the run record exists, and recovery rolls a committed
    run forward (releasing its payments) or an uncommitted one back (deleting what it moved).
    """
    return [
        decisions_dir(program, run_month, run_id),
        quarantine_dir(program, run_id),
        reports_dir(program, run_id),
        rotation_file(program, run_id),
        results_dir(program, run_id),
        reviews_dir(program, run_id),
        run_record_file(program, run_id),
        payments_dir(program, run_id),
    ]


def public_key_file(key_id: str) -> Path:
    """Return where the public half of a signing key lives, beside the trail."""
    return Path("audit/keys") / f"{key_id}.pem"
