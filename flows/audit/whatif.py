"""What a dry run would change against the program's last committed run: counts and won only.

Residents are counted by their registry decision record (one per resident and run); amounts are
what the PAID outcome would pay. Because the ledger already excludes whoever a committed run paid,
the dry run's PAID residents are exactly the ones it would newly pay. No personal data appears.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from flows.audit.tally import by_outcome
from flows.decide.codes import OUTCOMES
from flows.i18n import _, format_won, ljust, rjust
from flows.inputs.ledger import run_records, scan_trail
from flows.money import won_total
from flows.run import paths as layout


def last_committed(out: Path, program: str) -> dict[str, Any] | None:
    """Return the run record of the program's last committed (not dry) run, if any.

    A key rotation or a results import (run records that decide nobody) is not a run to
    compare with.
    """
    from flows.audit.attempts import paying_runs

    committed = paying_runs(run_records(out, program))
    return committed.row(-1, named=True) if committed.height else None


def compare(now: pl.DataFrame, before: pl.DataFrame | None) -> pl.DataFrame:
    """Return per outcome: residents in the last committed run and now, the change, won now."""
    outcomes = pl.DataFrame({"outcome": list(OUTCOMES)})
    previous = before if before is not None else now.clear()
    joined = outcomes.join(now, on="outcome", how="left", maintain_order="left").join(
        previous.select("outcome", last_run=pl.col("residents")),
        on="outcome",
        how="left",
        maintain_order="left",
    )
    return joined.select(
        "outcome",
        pl.col("last_run").fill_null(0),
        pl.col("residents").fill_null(0).alias("this_run"),
        (pl.col("residents").fill_null(0) - pl.col("last_run").fill_null(0)).alias("change"),
        pl.col("won").fill_null(0),
    ).filter((pl.col("last_run") > 0) | (pl.col("this_run") > 0))


def would_change(out: Path, program: str, now: pl.DataFrame) -> tuple[str, pl.DataFrame]:
    """Return a one-line headline and the per-outcome comparison for a dry run (`by_outcome`)."""
    last = last_committed(out, program)
    before = None
    if last is not None:
        folder = out / layout.decisions_dir(program, last["run_month"], last["run_id"])
        before = by_outcome(scan_trail(out, folder / "*.parquet"))
    table = compare(now, before)
    paid = table.filter(pl.col("outcome") == "PAID")
    residents = int(paid["this_run"].sum())
    won = won_total(paid["won"])
    against = (
        _("the last committed run {run_id}").format(run_id=last["run_id"])
        if last
        else _("no committed run yet")
    )
    headline = _(
        "dry run: a real run now would newly pay {residents:,} resident(s) {won} (compared "
        "with {against})"
    ).format(residents=residents, won=format_won(won), against=against)
    return headline, table


def terminal_lines(headline: str, table: pl.DataFrame) -> list[str]:
    """Return the comparison as aligned lines for the terminal."""
    lines = [
        headline,
        ljust(_("outcome"), 22)
        + " "
        + " ".join(rjust(h, 10) for h in (_("last run"), _("dry run"), _("change")))
        + " "
        + rjust(_("won"), 16),
    ]
    for row in table.iter_rows(named=True):
        lines.append(
            f"{row['outcome']:<22} {row['last_run']:>10,} {row['this_run']:>10,} "
            f"{row['change']:>+10,} {row['won']:>16,}"
        )
    return lines


def markdown(headline: str, table: pl.DataFrame) -> str:
    """Return the comparison as a Markdown section of the dry run's report."""
    lines = [
        _("## What a real run would change"),
        "",
        headline,
        "",
        _("| outcome | residents, last committed run | residents, this dry run | change | won |"),
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['outcome']} | {r['last_run']:,} | {r['this_run']:,} | {r['change']:+,} | "
        f"{r['won']:,} |"
        for r in table.iter_rows(named=True)
    ]
    return "\n".join(lines) + "\n"
