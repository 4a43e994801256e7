"""Print a run's one-screen summary on the terminal."""

from __future__ import annotations

import polars as pl
import typer

from flows.audit.attempts import FIGURES
from flows.run.flow import RunSummary
from flows.run.results import Reconciliation


def print_summary(summary: RunSummary) -> None:
    """Print counts per outcome, total won and where the outputs are."""
    typer.echo("")
    typer.secho(f"jiwon {summary.program}  run {summary.run_id}  [{summary.status}]", bold=True)
    width = max(len(k) for k in summary.counts)
    typer.echo("  decision records per outcome (one per registry and per enrollment row):")
    for outcome, count in summary.counts.items():
        typer.echo(f"  {outcome:<{width}}  {count:>10,}")
    typer.echo(f"  {'total rows':<{width}}  {sum(summary.counts.values()):>10,}")
    typer.secho(
        f"  {'would pay' if summary.dry_run else 'total paid'}: {summary.total_paid_krw:,} won "
        f"in {summary.payments:,} payments "
        "(each payment is on one registry and one enrollment record)",
        bold=True,
    )
    if summary.message:
        typer.echo(f"  {summary.message}")
    for line in summary.changes:
        typer.echo(f"  {line}")
    typer.echo(f"  output root: {summary.out}")
    for name, path in summary.paths.items():
        typer.echo(f"    {name:<11} {path}")
    if summary.status == "committed" and not summary.dry_run and summary.payments:
        typer.secho(
            "  release: pending. Nothing is sent until another person approves the payment "
            f"files: jiwon approve --program {summary.program} --out {summary.out} "
            f"--run-id {summary.run_id} --approver NAME",
            bold=True,
        )


def reconciliation_lines(status: Reconciliation) -> list[str]:
    """Return the lines of `jiwon results status`: per program, run and file, then reasons."""
    shown = list(FIGURES)
    width = 14

    def row(label: str, r: dict[str, int]) -> list[str]:
        people = "".join(f"{r[f]:>{width},}" for f in shown)
        tries = "".join(f"{r[f + '_attempts']:>{width},}" for f in shown)
        won = "".join(f"{r[f + '_krw']:>{width},}" for f in shown)
        return [
            f"{label:<46}{'people':<6}{people}",
            f"{'':<44}{'attempts':<8}{tries}",
            f"{'':<46}{'won':<6}{won}",
        ]

    lines = [
        f"jiwon {status.program}: payments as of {status.today} (people, attempts, won)",
        f"{'':<52}" + "".join(f"{f.replace('_', ' '):>{width}}" for f in shown),
    ]
    for r in status.by_program.iter_rows(named=True):
        lines += row("program", r)
    for r in status.by_run.iter_rows(named=True):
        lines += row(f"run {r['run_id']} ({r['release']})", r)
        for f in status.by_file.filter(pl.col("run_id") == r["run_id"]).iter_rows(named=True):
            lines += row(f"  {f['payment_file']}", f)
    lines.append(f"owed again (the next run re-issues them): {status.owed_again:,} payment(s)")
    if status.reasons.height:
        lines.append("rejected and returned, by reason:")
        for r in status.reasons.iter_rows(named=True):
            lines.append(
                f"  {r['state']:<9} {r['reason_code'] or '-':<22}{r['attempts']:>9,} "
                f"attempt(s){r['won']:>16,} won"
            )
    late = status.attempts.filter("overdue")
    if late.height:
        lines.append(
            f"overdue: {late.height:,} attempt(s) released more than the program's "
            "result_due_days ago have no result; ask the bank or card operator for them:"
        )
        first = late.head(20).iter_rows(named=True)
        lines += [f"  {r['instruction_id']}  (run {r['run_id']})" for r in first]
    return lines


def print_reconciliation(status: Reconciliation) -> None:
    """Print `reconciliation_lines`."""
    for line in reconciliation_lines(status):
        typer.echo(line)
