"""Print a run's one-screen summary on the terminal."""

from __future__ import annotations

import polars as pl
import typer

from flows.audit.attempts import FIGURES
from flows.i18n import N_, _, format_date, format_won, ljust, rjust
from flows.run.flow import RunSummary
from flows.run.results import Reconciliation

# The columns of `jiwon results status` (flows.audit.attempts.FIGURES), for the catalog.
FIGURE_NAMES = {
    "issued": N_("issued"),
    "settled": N_("settled"),
    "rejected": N_("rejected"),
    "returned": N_("returned"),
    "voided": N_("voided"),
    "in_flight": N_("in flight"),
    "overdue": N_("overdue"),
}
# The names of a run's output folders in its summary (RunSummary.paths), for the catalog.
PATH_NAMES = {
    "payments": N_("payments"),
    "audit": N_("audit"),
    "run record": N_("run record"),
    "quarantine": N_("quarantine"),
    "report": N_("report"),
}


def print_summary(summary: RunSummary) -> None:
    """Print counts per outcome, total won and where the outputs are."""
    typer.echo("")
    typer.secho(
        _("jiwon {program}  run {run_id}  [{status}]").format(
            program=summary.program, run_id=summary.run_id, status=summary.status
        ),
        bold=True,
    )
    width = max(len(k) for k in summary.counts)
    typer.echo(_("  decision records per outcome (one per registry and per enrollment row):"))
    for outcome, count in summary.counts.items():
        typer.echo(f"  {outcome:<{width}}  {count:>10,}")
    total = _("total rows")
    typer.echo(f"  {ljust(total, width)}  {sum(summary.counts.values()):>10,}")
    if summary.dry_run:
        paid = _(
            "  would pay: {total} in {payments:,} payments "
            "(each payment is on one registry and one enrollment record)"
        )
    else:
        paid = _(
            "  total paid: {total} in {payments:,} payments "
            "(each payment is on one registry and one enrollment record)"
        )
    typer.secho(
        paid.format(total=format_won(summary.total_paid_krw), payments=summary.payments),
        bold=True,
    )
    if summary.message:
        typer.echo(f"  {summary.message}")
    for line in summary.changes:
        typer.echo(f"  {line}")
    typer.echo(_("  output root: {out}").format(out=summary.out))
    for name, path in summary.paths.items():
        typer.echo(f"    {ljust(_(PATH_NAMES.get(name, name)), 11)} {path}")
    if summary.status == "committed" and not summary.dry_run and summary.payments:
        typer.secho(
            _(
                "  release: pending. Nothing is sent until another person "
                "approves the payment files: jiwon approve --program {program} "
                "--out {out} --run-id {run_id} --approver NAME"
            ).format(program=summary.program, out=summary.out, run_id=summary.run_id),
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
            ljust(label, 46) + ljust(_("people"), 6) + people,
            " " * 44 + ljust(_("attempts"), 8) + tries,
            " " * 46 + ljust(_("won"), 6) + won,
        ]

    lines = [
        _("jiwon {program}: payments as of {today} (people, attempts, won)").format(
            program=status.program, today=format_date(status.today)
        ),
        " " * 52 + "".join(rjust(_(FIGURE_NAMES[f]), width) for f in shown),
    ]
    for r in status.by_program.iter_rows(named=True):
        lines += row(_("program"), r)
    for r in status.by_run.iter_rows(named=True):
        lines += row(
            _("run {run_id} ({release})").format(run_id=r["run_id"], release=r["release"]), r
        )
        for f in status.by_file.filter(pl.col("run_id") == r["run_id"]).iter_rows(named=True):
            lines += row(f"  {f['payment_file']}", f)
    lines.append(
        _("owed again (the next run re-issues them): {owed:,} payment(s)").format(
            owed=status.owed_again
        )
    )
    if status.reasons.height:
        lines.append(_("rejected and returned, by reason:"))
        for r in status.reasons.iter_rows(named=True):
            lines.append(
                _("  {state:<9} {reason:<22}{attempts:>9,} attempt(s){won:>16,} won").format(
                    state=r["state"],
                    reason=r["reason_code"] or "-",
                    attempts=r["attempts"],
                    won=r["won"],
                )
            )
    late = status.attempts.filter("overdue")
    if late.height:
        lines.append(
            _(
                "overdue: {late:,} attempt(s) released more than the program's "
                "result_due_days ago have no result; ask the bank or card operator for them:"
            ).format(late=late.height)
        )
        first = late.head(20).iter_rows(named=True)
        lines += [
            _("  {instruction_id}  (run {run_id})").format(
                instruction_id=r["instruction_id"], run_id=r["run_id"]
            )
            for r in first
        ]
    return lines


def print_reconciliation(status: Reconciliation) -> None:
    """Print `reconciliation_lines`."""
    for line in reconciliation_lines(status):
        typer.echo(line)
