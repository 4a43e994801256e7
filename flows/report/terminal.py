"""Print a run's one-screen summary on the terminal."""

from __future__ import annotations

import typer

from flows.run.flow import RunSummary


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
