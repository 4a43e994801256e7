"""Write the program page, `OUT/reports/<program>/index.html` (issue 15), from the trail.

The edge of `flows.report.program_page`: reads what the page needs from the committed trail
(the ledger's attempts through `flows.run.results.reconciliation`, the registry rows of the
paying runs), builds the page and replaces the file atomically. The `disburse` flow calls it
after every committed run and the `import-results` flow after every import; the page lives
beside the runs' report folders and belongs to no run (verify knows it: `PAGE_FILE`).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import polars as pl

from flows.audit.attempts import paying_runs
from flows.inputs.ledger import scan_decisions
from flows.report import program_page as page_html
from flows.run import paths as layout
from rules.program import PROGRAMS_DIR, load_program

REGISTRY_COLUMNS = ("person_key", "admin_code", "outcome", "reason_codes", "instalment")


def decision_files(out: Path, runs: pl.DataFrame) -> list[Path]:
    """Return the decision files `runs` list in their records (a file added beside is no part)."""
    return [
        out / o["file"]
        for row in runs.select("outputs").iter_rows(named=True)
        for o in row["outputs"]
        if o["file"].startswith("audit/decisions/")
    ]


def registry_rows(out: Path, paying: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return the registry rows of each month's latest paying run, and every PAID one's district.

    The second frame: run_id, payment_id, attempt, admin_code of every PAID registry row (the
    district a payment attempt counts in).
    """
    people_schema = pl.Schema(
        {
            "run_id": pl.String(),
            "run_month": pl.String(),
            "person_key": pl.String(),
            "admin_code": pl.String(),
            "outcome": pl.String(),
            "reason_codes": pl.List(pl.String()),
            "instalment": pl.Int64(),
        }
    )
    paid_schema = pl.Schema(
        {
            "run_id": pl.String(),
            "payment_id": pl.String(),
            "attempt": pl.Int64(),
            "admin_code": pl.String(),
        }
    )
    files = decision_files(out, paying)
    if not files:
        return pl.DataFrame(schema=people_schema), pl.DataFrame(schema=paid_schema)
    latest = paying.group_by("run_month").agg(pl.col("run_id").last())["run_id"]
    registry = (
        scan_decisions(files)
        .filter(pl.col("source_kind") == "registry")
        .with_columns(pl.col("run_id").cast(pl.String()), pl.col("run_month").cast(pl.String()))
    )
    people = registry.filter(pl.col("run_id").is_in(latest.implode())).select(
        "run_id", "run_month", *REGISTRY_COLUMNS
    )
    paid = registry.filter(pl.col("outcome") == "PAID").select(
        "run_id", "payment_id", pl.col("attempt").fill_null(1), "admin_code"
    )
    return people.collect().cast(people_schema), paid.collect().cast(paid_schema)


def build_program_page(
    out: Path, program: str, today: dt.date | None = None, programs_dir: Path | None = None
) -> str:
    """Return the program page's HTML from the committed trail under `out` (read only)."""
    from flows.audit.release import releases
    from flows.inputs.ledger import run_records
    from flows.inputs.reference import district_names
    from flows.results.formats import result_codes
    from flows.run.results import reconciliation

    loaded = load_program(program, programs_dir or PROGRAMS_DIR)
    status = reconciliation(out, loaded.id, today, programs_dir)
    runs = run_records(out, loaded.id)
    paying = paying_runs(runs)
    people, paid = registry_rows(out, paying)
    attempts = status.attempts.join(
        paid, on=["run_id", "payment_id", "attempt"], how="left", maintain_order="left"
    )
    meanings = pl.concat(
        t.select("code", "reason_ko", "reason_en") for t in result_codes().tables.values()
    )
    return page_html.program_page_html(
        page_html.ProgramPage(
            program=loaded.id,
            title_ko=loaded.title.ko,
            title_en=loaded.title.en,
            budget_krw=loaded.budget_krw,
            result_due_days=loaded.result_due_days,
            today=status.today,
            latest_run=paying["run_id"][-1] if paying.height else None,
            registry=people,
            attempts=attempts,
            reasons=status.reasons,
            meanings=meanings,
            names=district_names(loaded.city or "national"),
            releases=releases(runs),
        )
    )


def write_program_page(
    out: Path, program: str, today: dt.date | None = None, programs_dir: Path | None = None
) -> Path:
    """Rebuild `OUT/reports/<program>/index.html`; return its path.

    Written to a temporary file beside it and moved into place (os.replace), so a reader sees
    the old page or the new one, never half of one.
    """
    html = build_program_page(out, program, today, programs_dir)
    target = out / layout.program_page_file(program)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=layout.PROGRAM_PAGE_TEMP, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(html.encode("utf-8"))
        os.chmod(name, 0o644)  # a report anyone may read, as the runs' reports
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return target
