"""The human-readable run summary: counts, totals and file names, never personal data."""

from __future__ import annotations

from typing import Any

import polars as pl

from flows.audit.records import RunRecord
from flows.decide.codes import BY_CODE
from flows.i18n import _, format_date, format_month, format_won, pick


def won(amount: int) -> str:
    """Return an amount as `1,234,000 won` (Korean: `1,234,000원`)."""
    return format_won(amount)


def input_line(item: dict[str, Any]) -> str:
    """Return one input file's table row; closed rows (skipped) are counted, with the first run."""
    closed = item.get("rows_closed") or 0
    skipped = (
        _(" (skipped: every row closed, first read by {run_id})").format(
            run_id=item["skipped_by_run"]
        )
        if item["skipped_by_run"]
        else _(" ({closed:,} rows closed by earlier runs, skipped)").format(closed=closed)
        if closed
        else ""
    )
    return (
        f"| {item['file']}{skipped} | {item['kind']} | {item['rows']:,} | {item['sha256'][:12]}… |"
    )


def summary_markdown(record: RunRecord, reasons: dict[str, int]) -> str:
    """Return the run report in Markdown (also what the Prefect artifact shows)."""
    lines = [
        _("# {program} run {run_id}").format(program=record.program, run_id=record.run_id),
        "",
        _("- status: **{status}**").format(status=record.status)
        + (_(" (dry run: nothing was paid)") if record.dry_run else ""),
        _("- trigger: {trigger}, operator: {operator}").format(
            trigger=record.trigger, operator=record.operator
        )
        + (_(", reason: {reason}").format(reason=record.reason) if record.reason else ""),
        _("- reference date: {reference_date}, run month: {run_month}").format(
            reference_date=format_date(record.reference_date),
            run_month=format_month(record.run_month),
        ),
        _("- total paid: **{total}**").format(total=won(record.total_paid_krw)),
        "",
        _("| outcome | records |"),
        "|---|---:|",
        *[f"| {outcome} | {count:,} |" for outcome, count in record.counts.items()],
        "",
        _("| input file | kind | rows | sha256 |"),
        "|---|---|---:|---|",
        *[input_line(i) for i in record.inputs],
    ]
    if reasons:
        lines += ["", _("| reason | rows | meaning |"), "|---|---:|---|"]
        lines += [
            f"| {code} | {n:,} | {pick(BY_CODE[code].ko, BY_CODE[code].en)} |"
            for code, n in reasons.items()
        ]
    if record.message:
        lines += ["", record.message]
    return "\n".join(lines) + "\n"


def payments_markdown(money: pl.DataFrame, released: pl.DataFrame | None = None) -> str:
    """Return where earlier runs' payments stood in money when this run started (issue 15).

    `money`: `Ledger.money_per_run()` (run_id, state, attempts, amount_krw); `released`
    (run_id, attempt_state): each run's release (issue 18), shown beside its id.
    """
    if not money.height:
        return ""
    from flows.audit.attempts import STATES as states

    lines = [
        "",
        _("## Earlier payments in money, as this run started"),
        "",
        _(
            "Attempts (and won) per earlier run, by state after the bank and card results "
            "imported so far (`jiwon results status` shows them now; ISSUED: waiting for "
            "release approval; RELEASED: no result yet; VOIDED: its release was rejected)."
        ),
        "",
        _("| run | release | issued | ") + " | ".join(s.lower() for s in states) + " |",
        "|---|---|" + "---:|" * (len(states) + 1),
    ]
    words = {"ISSUED": "pending", "RELEASED": "released", "VOIDED": "voided"}
    release = {r: words.get(s, s) for r, s in released.iter_rows()} if released is not None else {}
    for (run_id,), rows in money.group_by("run_id", maintain_order=True):
        per = {r["state"]: r for r in rows.iter_rows(named=True)}
        cells = [f"{rows['attempts'].sum():,} ({won(int(rows['amount_krw'].sum()))})"]
        for state in states:
            r = per.get(state)
            cells.append(f"{r['attempts']:,} ({won(r['amount_krw'])})" if r else "0")
        lines.append(f"| {run_id} | {release.get(run_id, '-')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
