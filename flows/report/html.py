"""The run report as one self-contained HTML page: counts, amounts, districts, quarantine.

No personal data: only counts and won per outcome, per administrative district and per reason
code, file names and hashes. No external assets (inline CSS and SVG), so the page opens the same
on an air-gapped office PC. Element ids (`total-paid`, `outcome-PAID`, `district-<code>`, ...)
are stable for tests and for anyone scraping the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import polars as pl

from flows.audit.records import RunRecord
from flows.decide.codes import BY_CODE
from flows.i18n import _, format_date, format_month, format_won, pick
from flows.pay.credit import FileTotals

BAR_WIDTH = 420
ROW_HEIGHT = 22
STYLE = """
body { font-family: sans-serif; margin: 2rem; color: #222; max-width: 960px; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.status { font-weight: bold; }
svg text { font-size: 12px; }
"""


def quarantine_summary(quarantine: pl.DataFrame) -> pl.DataFrame:
    """Return failed checks per input kind and reason code (no values, no row numbers)."""
    return (
        quarantine.group_by("source_kind", "reason_code")
        .agg(checks=pl.len(), rows=pl.struct("source_file", "source_row").n_unique())
        .sort("source_kind", "checks", "reason_code", descending=[False, True, False])
    )


def bar_chart(districts: pl.DataFrame, names: dict[str, str]) -> str:
    """Return an inline SVG bar chart of won paid per district."""
    if districts.height == 0:
        return "<p>" + escape(_("Nobody was paid by this run.")) + "</p>"
    top = max(int(districts["won"].max() or 0), 1)  # type: ignore[arg-type]
    label_width = 170
    height = ROW_HEIGHT * districts.height + 10
    bars = []
    for i, row in enumerate(districts.iter_rows(named=True)):
        y = 5 + i * ROW_HEIGHT
        width = max(1, round(BAR_WIDTH * row["won"] / top))
        label = escape(f"{names.get(row['admin_code'], '')} {row['admin_code']}".strip())
        bars.append(
            f'<g id="bar-{escape(row["admin_code"])}" data-krw="{row["won"]}">'
            f'<text x="0" y="{y + 15}">{label}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{width}" height="{ROW_HEIGHT - 6}" '
            f'fill="#3b6ea5"><title>{label}: {escape(format_won(row["won"]))}</title></rect>'
            f'<text x="{label_width + width + 6}" y="{y + 15}">{row["won"]:,}</text></g>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{escape(_("won paid per district"))}" '
        f'width="{label_width + BAR_WIDTH + 120}" height="{height}">{"".join(bars)}</svg>'
    )


def table(headers: list[str], rows: list[str]) -> str:
    """Return an HTML table from header labels and pre-rendered `<tr>` rows."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def report_html(
    record: RunRecord,
    districts: pl.DataFrame,
    names: dict[str, str],
    quarantine: pl.DataFrame,
    files: Sequence[FileTotals],
) -> str:
    """Return the run report page (`files`: the run's payment files, published or not)."""
    title = escape(_("{program} run {run_id}").format(program=record.program, run_id=record.run_id))
    outcome_rows = [
        f'<tr id="outcome-{o}"><td>{o}</td><td class="n" data-count="{n}">{n:,}</td></tr>'
        for o, n in record.counts.items()
    ]
    district_rows = [
        f'<tr id="district-{escape(r["admin_code"])}"><td>{escape(r["admin_code"])}</td>'
        f"<td>{escape(names.get(r['admin_code'], ''))}</td>"
        f'<td class="n" data-count="{r["people"]}">{r["people"]:,}</td>'
        f'<td class="n" data-krw="{r["won"]}">{r["won"]:,}</td></tr>'
        for r in districts.iter_rows(named=True)
    ]
    quarantine_rows = [
        f'<tr id="quarantine-{r["source_kind"]}-{escape(r["reason_code"])}">'
        f"<td>{escape(r['source_kind'])}</td><td>{escape(r['reason_code'])}</td>"
        f"<td>{escape(meaning(r['reason_code']))}</td>"
        f'<td class="n">{r["rows"]:,}</td><td class="n">{r["checks"]:,}</td></tr>'
        for r in quarantine_summary(quarantine).iter_rows(named=True)
    ]
    outputs = [
        f"<tr><td>{escape(f.file)}</td><td>{escape(f.format)}</td>"
        f'<td class="n">{f.records:,}</td><td class="n">{f.total_krw:,}</td>'
        f"<td><code>{f.sha256[:16]}…</code></td></tr>"
        for f in files
    ]
    dry = escape(_(" (dry run: nothing was paid)")) if record.dry_run else ""
    status = f'<span class="status" id="status">{escape(record.status)}</span>'
    paid = (
        f'<strong id="total-paid" data-krw="{record.total_paid_krw}">'
        f"{escape(format_won(record.total_paid_krw))}</strong>"
    )
    people = f'<strong id="people-paid">{sum(districts["people"]):,}</strong>'
    parts = [
        "<!DOCTYPE html>",
        '<html lang="ko"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
        "<p>"
        + _(
            "Status: {status}{dry}. Run month {run_month}, reference date {reference_date}, "
            "trigger {trigger}."
        ).format(
            status=status,
            dry=dry,
            run_month=escape(format_month(record.run_month)),
            reference_date=escape(format_date(record.reference_date)),
            trigger=escape(record.trigger),
        )
        + "</p>",
        "<p>"
        + _("Total paid: {paid} to {people} people.").format(paid=paid, people=people)
        + "</p>",
        heading(_("Outcomes (every input row has exactly one)")),
        table([_("outcome"), _("records")], outcome_rows),
        heading(_("Paid per district (행정동)")),
        bar_chart(districts, names),
        table([_("admin code"), _("district"), _("people"), _("won")], district_rows),
        heading(_("Quarantine")),
        table(
            [_("input"), _("reason"), _("meaning"), _("rows"), _("failed checks")],
            quarantine_rows,
        )
        if quarantine_rows
        else "<p id='quarantine-none'>" + escape(_("No row failed a check.")) + "</p>",
        heading(_("Payment files")),
        "<p>" + escape(_("Dry run: these files were computed but not published.")) + "</p>"
        if record.dry_run
        else "",
        table([_("file"), _("format"), _("records"), _("won"), "SHA-256"], outputs)
        if outputs
        else "<p>" + escape(_("No payment files: nobody was paid.")) + "</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def heading(text: str) -> str:
    """Return a section heading."""
    return f"<h2>{escape(text)}</h2>"


def meaning(code: str) -> str:
    """Return what a reason code means, in the operator's language (from the code table)."""
    if code not in BY_CODE:
        return ""
    return pick(BY_CODE[code].ko, BY_CODE[code].en)
