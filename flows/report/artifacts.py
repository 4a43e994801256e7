"""What a run shows in the Prefect UI: a summary table and the markdown report, no personal data.

Both are built from the sealed run record only (counts, totals, file names and hashes), never from
decision records, so no name, RRN, account or card number can reach them.
"""

from __future__ import annotations

from typing import Any

from flows.audit.records import RunRecord
from flows.i18n import _


def summary_table(record: RunRecord) -> list[dict[str, Any]]:
    """Return rows of the summary table: each outcome, the total, then every file written."""
    item, records, won = _("item"), _("records"), _("won")  # the table's columns
    rows: list[dict[str, Any]] = [
        {
            item: outcome,
            records: count,
            won: record.total_paid_krw if outcome == "PAID" else 0,
        }
        for outcome, count in record.counts.items()
    ]
    rows.append(
        {item: _("total"), records: sum(record.counts.values()), won: record.total_paid_krw}
    )
    rows += [
        {
            item: _("file: {file}").format(file=o["file"]),
            records: o["records"] if o["records"] is not None else "",
            won: o["total_krw"] if o["total_krw"] is not None else "",
        }
        for o in record.outputs
    ]
    return rows


def report_markdown(record: RunRecord, report_md: str) -> str:
    """Return the run report followed by the files the run wrote, with their SHA-256."""
    lines = [
        "",
        _("## Files written"),
        "",
        _("| file | records | won | sha256 |"),
        "|---|---:|---:|---|",
    ]
    lines += [
        f"| {o['file']} | {number(o['records'])} | {number(o['total_krw'])} | {o['sha256'][:12]}… |"
        for o in record.outputs
    ]
    lines += ["", _("run record sealed with run_sha256 `{sha}`").format(sha=record.run_sha256)]
    return report_md + "\n".join(lines) + "\n"


def number(value: int | None) -> str:
    """Return `1,234`, or nothing for a file that has no records or amount (not a payment file)."""
    return "" if value is None else f"{value:,}"
