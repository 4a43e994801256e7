"""The program page: where a program stands in money, per 행정동 and run month (issue 15).

Pure functions from frames to one self-contained HTML page; `flows.run.page` reads the trail
and writes it to `OUT/reports/<program>/index.html` after every committed run and results
import. Korean first with English beside it. No personal data: only counts and won per
district, run month, state and reason code, and the instruction and run ids of overdue
attempts. No script, font or image from anywhere: inline CSS and SVG.

Definitions (also in docs/auditors.md, with the DuckDB queries that reproduce every figure):

- **eligible residents**: distinct `person_key` of the registry rows of the program's latest
  committed paying run (per run month: that month's latest) whose outcome is PAID,
  ALREADY_PAID, UNENROLLED or HELD_FOR_REVIEW;
- **never applied**: of those, the rows UNENROLLED with NO_VALID_APPLICATION for their first
  instalment (no application of theirs ever paid, and no payment is owed to them again);
- **paid in money / in flight / owed again**: payments by the state of their newest attempt:
  SETTLED / ISSUED or RELEASED / REJECTED, RETURNED or VOIDED; per district by the admin code
  of the registry row that attempt paid, per month by the run month of the run that issued it;
- **budget used**: won of every attempt settled or in flight (what a run's budget check counts).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from html import escape

import polars as pl

from flows.audit.attempts import FAILED, ISSUED, RELEASED, SETTLED
from flows.audit.release import PENDING, RELEASE_SCHEMA
from flows.decide.codes import Outcome
from flows.i18n import korean_date

ELIGIBLE = (
    Outcome.PAID.value,
    Outcome.ALREADY_PAID.value,
    Outcome.UNENROLLED.value,
    Outcome.HELD_FOR_REVIEW.value,
)
NEVER_APPLIED_REASON = "NO_VALID_APPLICATION"
# The page's figures, in the order of the charts and tables, with their labels.
SERIES = {
    "eligible": ("지원 대상", "Eligible residents", "#8c8c8c"),
    "paid_in_money": ("지급 완료", "Paid in money", "#2e7d32"),
    "in_flight": ("지급 진행 중", "In flight", "#3b6ea5"),
    "owed_again": ("재지급 필요", "Owed again", "#c62828"),
    "never_applied": ("미신청", "Never applied", "#f9a825"),
}
MONEY = ("paid_in_money", "in_flight", "owed_again")
BAR_WIDTH = 360
BAR_HEIGHT = 12
LABEL_WIDTH = 190
STYLE = """
body { font-family: sans-serif; margin: 2rem; color: #222; max-width: 1000px; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; }
td.key { white-space: nowrap; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.en { color: #555; }
.legend span { display: inline-block; margin-right: 1rem; }
.legend i { display: inline-block; width: 0.8rem; height: 0.8rem; margin-right: 0.3rem; }
dl.figures { display: grid; grid-template-columns: max-content max-content; gap: 0.2rem 1rem; }
dl.figures dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
svg text { font-size: 12px; }
"""


@dataclass(frozen=True)
class ProgramPage:
    """Everything the page shows, as frames (built by `flows.run.page` from the trail)."""

    program: str
    title_ko: str
    title_en: str
    budget_krw: int
    result_due_days: int
    today: dt.date
    latest_run: str | None  # the latest committed paying run, whose registry rows count
    registry: pl.DataFrame  # registry rows of each run month's latest paying run (people)
    attempts: pl.DataFrame  # flows.audit.attempts.reconcile rows with `admin_code`
    reasons: pl.DataFrame  # flows.audit.attempts.reasons
    meanings: pl.DataFrame  # code, reason_ko, reason_en (rules/results/*.csv)
    names: dict[str, str]  # admin code -> district name
    # flows.audit.release.releases: each paying run's release (the pending ones are listed)
    releases: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=RELEASE_SCHEMA))

    @cached_property
    def newest(self) -> pl.DataFrame:
        """Each payment's newest attempt, found once for every figure that needs it."""
        return newest_attempts(self.attempts)


def label(name: str) -> str:
    """Return a figure's label, Korean first with English beside it (escaped HTML)."""
    ko, en, _ = SERIES[name]
    return f'{escape(ko)} · <span class="en">{escape(en)}</span>'


def bilingual(ko: str, en: str) -> str:
    """Return Korean text with its English beside it (escaped HTML)."""
    return f'{escape(ko)} · <span class="en">{escape(en)}</span>'


def eligible_rows() -> pl.Expr:
    """Return whether a registry row counts as an eligible resident."""
    return pl.col("outcome").is_in(ELIGIBLE)


def never_applied_rows() -> pl.Expr:
    """Return whether an eligible registry row never applied (first instalment, no application)."""
    return (
        (pl.col("outcome") == Outcome.UNENROLLED.value)
        & pl.col("reason_codes").list.contains(NEVER_APPLIED_REASON)
        & (pl.col("instalment").fill_null(1) == 1)
    )


def people(registry: pl.DataFrame, by: str) -> pl.DataFrame:
    """Return eligible and never-applied residents (distinct person keys) per `by`."""
    key = pl.col("person_key")
    return registry.group_by(by).agg(
        eligible=key.filter(eligible_rows()).n_unique().cast(pl.Int64),
        never_applied=key.filter(never_applied_rows()).n_unique().cast(pl.Int64),
    )


def newest_attempts(attempts: pl.DataFrame) -> pl.DataFrame:
    """Return each payment's newest attempt: its state says where the payment stands."""
    return attempts.filter(pl.col("attempt") == pl.col("attempt").max().over("payment_id"))


def money_state() -> dict[str, pl.Expr]:
    """Return the figure each state of a newest attempt counts in."""
    state = pl.col("state")
    return {
        "paid_in_money": state == SETTLED,
        "in_flight": state.is_in([ISSUED, RELEASED]),
        "owed_again": state.is_in(FAILED),
    }


def money(newest: pl.DataFrame, by: str) -> pl.DataFrame:
    """Return payments and won per figure of MONEY per `by` of each payment's newest attempt."""
    aggs = []
    for name, pick in money_state().items():
        aggs += [
            pick.sum().cast(pl.Int64).alias(name),
            pl.col("amount_krw").filter(pick).sum().cast(pl.Int64).alias(f"{name}_krw"),
        ]
    return newest.group_by(by).agg(aggs)


def figures(registry: pl.DataFrame, newest: pl.DataFrame, by: str) -> pl.DataFrame:
    """Return every figure of SERIES (and won of MONEY) per `by`, zero where there is none.

    `newest`: each payment's newest attempt (`newest_attempts`), found once per page.
    """
    both = people(registry, by).join(money(newest, by), on=by, how="full", coalesce=True)
    counts = [c for c in both.columns if c != by]
    return (
        both.with_columns(pl.col(c).fill_null(0) for c in counts)
        .select(by, *SERIES, *(f"{m}_krw" for m in MONEY))
        .sort(by)
    )


def by_district(page: ProgramPage) -> pl.DataFrame:
    """Return the figures per 행정동: people of the latest paying run, payments of every run."""
    latest = page.registry.filter(pl.col("run_id") == page.latest_run)
    return figures(latest, page.newest, "admin_code")


def by_month(page: ProgramPage) -> pl.DataFrame:
    """Return the figures per run month (people: each month's latest paying run)."""
    return figures(page.registry, page.newest, "run_month")


def budget_used(attempts: pl.DataFrame) -> int:
    """Return won settled or in flight: what a run's budget check counts as spent."""
    used = attempts.filter(pl.col("state").is_in([SETTLED, ISSUED, RELEASED]))
    return int(used["amount_krw"].sum())


def overdue(attempts: pl.DataFrame) -> pl.DataFrame:
    """Return the overdue attempts' instruction and run ids and release day (nothing personal)."""
    return (
        attempts.filter(pl.col("overdue"))
        .select("instruction_id", "run_id", "released_on")
        .sort("released_on", "run_id", "instruction_id")
    )


def reason_table(reasons: pl.DataFrame, meanings: pl.DataFrame) -> pl.DataFrame:
    """Return the failed attempts per state and reason with the code's Korean and English."""
    known = meanings.group_by("code").agg(
        pl.col("reason_ko").unique().sort().str.join(" / "),
        pl.col("reason_en").unique().sort().str.join(" / "),
    )
    return reasons.join(known, left_on="reason_code", right_on="code", how="left").sort(
        "state", "attempts", "reason_code", descending=[False, True, False]
    )


def figure(name: str, value: int, unit: str = "") -> str:
    """Return a number in an element a reader (or a test) finds by `data-figure`."""
    return f'<span data-figure="{escape(name)}" data-value="{value}">{value:,}{unit}</span>'


def legend(names: tuple[str, ...]) -> str:
    """Return the charts' legend (HTML, so it needs no SVG font)."""
    items = [f'<span><i style="background:{SERIES[n][2]}"></i>{label(n)}</span>' for n in names]
    return f'<p class="legend">{"".join(items)}</p>'


def bar_chart(table: pl.DataFrame, by: str, names: dict[str, str], title: str) -> str:
    """Return an inline SVG of grouped horizontal bars: one group per row, one bar per SERIES."""
    if table.height == 0:
        return "<p>아직 자료가 없습니다 · <span class='en'>No data yet.</span></p>"
    top = max(max(int(table[s].max() or 0) for s in SERIES), 1)  # type: ignore[arg-type]
    group = BAR_HEIGHT * len(SERIES) + 12
    rows = []
    for i, row in enumerate(table.iter_rows(named=True)):
        y = 4 + i * group
        key = str(row[by])
        text = escape(f"{key} {names.get(key, '')}".strip())
        bars = [f'<text x="0" y="{y + group // 2 + 2}">{text}</text>']
        for j, series in enumerate(SERIES):
            value = int(row[series])
            width = round(BAR_WIDTH * value / top)
            ko, en, colour = SERIES[series]
            top_y = y + j * BAR_HEIGHT
            bars.append(
                f'<rect x="{LABEL_WIDTH}" y="{top_y}" width="{width}" height="{BAR_HEIGHT - 1}" '
                f'fill="{colour}" data-series="{series}" data-value="{value}">'
                f"<title>{text}: {escape(ko)} · {escape(en)} {value:,}</title></rect>"
                f'<text x="{LABEL_WIDTH + width + 4}" y="{top_y + BAR_HEIGHT - 1}" '
                f'font-size="10">{value:,}</text>'
            )
        rows.append(f'<g data-row="{escape(key)}">{"".join(bars)}</g>')
    height = 8 + table.height * group
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'width="{LABEL_WIDTH + BAR_WIDTH + 70}" height="{height}">{"".join(rows)}</svg>'
    )


def coverage_table(table: pl.DataFrame, by: str, names: dict[str, str], prefix: str) -> str:
    """Return the chart's figures as a table; cells carry `data-figure=<prefix>.<key>.<fig>`."""
    head = "".join(f"<th>{label(s)}</th>" for s in SERIES)
    money = "".join(f"<th>{label(m)} (원 · won)</th>" for m in MONEY)
    rows = []
    for row in table.iter_rows(named=True):
        key = str(row[by])
        cells = "".join(
            f'<td class="n">{figure(f"{prefix}.{key}.{s}", int(row[s]))}</td>' for s in SERIES
        )
        cells += "".join(
            f'<td class="n">{figure(f"{prefix}.{key}.{m}_krw", int(row[f"{m}_krw"]))}</td>'
            for m in MONEY
        )
        name = escape(f"{key} {names.get(key, '')}".strip())
        rows.append(f'<tr data-row="{escape(key)}"><td class="key">{name}</td>{cells}</tr>')
    first = "행정동 · <span class='en'>district</span>" if by == "admin_code" else "월 · month"
    return (
        f"<table><thead><tr><th>{first}</th>{head}{money}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def headline(page: ProgramPage) -> str:
    """Return the program's figures: coverage, money in each state, and the budget."""
    latest = page.registry.filter(pl.col("run_id") == page.latest_run)
    totals = people(latest.with_columns(_all=pl.lit(1)), "_all")
    states = money(page.newest.with_columns(_all=pl.lit(1)), "_all")
    count = {s: int(totals[s].sum()) if s in totals.columns else 0 for s in SERIES}
    count |= {m: int(states[m].sum()) for m in MONEY}
    won = {m: int(states[f"{m}_krw"].sum()) for m in MONEY}
    used = budget_used(page.attempts)
    items = []
    for s in SERIES:
        unit = "명 · people" if s in ("eligible", "never_applied") else "건 · payments"
        value = figure(s, count[s], f" {unit}")
        if s in MONEY:
            value += f" ({figure(f'{s}_krw', won[s], '원 · won')})"
        items.append(f"<dt>{label(s)}</dt><dd>{value}</dd>")
    budget = [
        (bilingual("예산 한도", "Budget ceiling"), figure("budget_krw", page.budget_krw, "원")),
        (bilingual("예산 집행", "Budget used"), figure("budget_used_krw", used, "원")),
        (
            bilingual("예산 잔액", "Budget left"),
            figure("budget_left_krw", page.budget_krw - used, "원"),
        ),
    ]
    items += [f"<dt>{k}</dt><dd>{v}</dd>" for k, v in budget]
    # people whose only application waits for an officer (`jiwon review export` lists them)
    held = latest.filter(pl.col("outcome") == "HELD_FOR_REVIEW").height
    waiting = bilingual("담당자 검토 대기", "Waiting for an officer's review")
    items.append(f"<dt>{waiting}</dt><dd>{figure('review_queue', held, ' 명 · people')}</dd>")
    share = used / page.budget_krw if page.budget_krw else 0.0
    gauge = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="budget used" '
        f'width="{BAR_WIDTH + 2}" height="16"><rect x="1" y="1" width="{BAR_WIDTH}" '
        f'height="14" fill="none" stroke="#888"/><rect x="1" y="1" '
        f'width="{round(BAR_WIDTH * min(share, 1.0))}" height="14" fill="#2e7d32"/></svg> '
        f"{share:.2%}"
    )
    return f'<dl class="figures">{"".join(items)}</dl><p>{gauge}</p>'


def reasons_html(page: ProgramPage) -> str:
    """Return the table of failed attempts per state and reason code, with their meaning."""
    table = reason_table(page.reasons, page.meanings)
    if table.height == 0:
        return (
            f"<p>{bilingual('거절·반환된 지급 없음', 'No payment was rejected or returned.')}</p>"
        )
    rows = []
    for r in table.iter_rows(named=True):
        code = r["reason_code"] or "-"
        key = f"reason.{r['state']}.{code}"
        rows.append(
            f"<tr><td>{escape(r['state'])}</td><td><code>{escape(code)}</code></td>"
            f"<td>{escape(r['reason_ko'] or '코드표에 없음')}</td>"
            f"<td class='en'>{escape(r['reason_en'] or 'not in the code tables')}</td>"
            f'<td class="n">{figure(f"{key}.attempts", int(r["attempts"]))}</td>'
            f'<td class="n">{figure(f"{key}.won", int(r["won"]))}</td></tr>'
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            bilingual("상태", "state"),
            bilingual("사유 코드", "reason code"),
            "의미",
            "<span class='en'>meaning</span>",
            bilingual("건수", "attempts"),
            bilingual("금액(원)", "won"),
        )
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def overdue_html(page: ProgramPage) -> str:
    """Return the overdue attempts: in flight more than `result_due_days` after release."""
    late = overdue(page.attempts)
    intro = (
        f"<p>결과 기한({page.result_due_days}일)이 지나도록 결과가 없는 지급: "
        f"{figure('overdue', late.height, '건')} · <span class='en'>attempts in flight more than "
        f"{page.result_due_days} days after their run was released, on {page.today}</span></p>"
    )
    if late.height == 0:
        return intro
    rows = [
        f'<tr data-overdue="{escape(r["instruction_id"])}"><td><code>'
        f"{escape(r['instruction_id'])}</code></td><td><code>{escape(r['run_id'])}</code></td>"
        f"<td>{r['released_on']}</td></tr>"
        for r in late.iter_rows(named=True)
    ]
    head = (
        f"<th>{bilingual('지급지시 번호', 'instruction id')}</th>"
        f"<th>{bilingual('실행 번호', 'run id')}</th><th>{bilingual('송출일', 'released on')}</th>"
    )
    return intro + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def pending_html(page: ProgramPage) -> str:
    """Return the runs whose payment files wait for release approval (no names: counts, won)."""
    waiting = page.releases.filter(pl.col("release") == PENDING).sort("run_id")
    total = int(waiting["total_paid_krw"].sum()) if waiting.height else 0
    intro = (
        f"<p>승인 대기 실행: {figure('pending_runs', waiting.height, '건')} "
        f"({figure('pending_krw', total, '원')}) · <span class='en'>committed runs whose "
        "payment files wait for a second person's approval (`jiwon approve`); nothing of them "
        "was sent</span></p>"
    )
    if waiting.height == 0:
        return intro
    rows = [
        f'<tr data-pending="{escape(r["run_id"])}"><td><code>{escape(r["run_id"])}</code></td>'
        f'<td class="n">{int(r["total_paid_krw"]):,}</td>'
        f'<td class="n">{len(r["approvers"])} / {r["needed"]}</td></tr>'
        for r in waiting.iter_rows(named=True)
    ]
    head = (
        f"<th>{bilingual('실행 번호', 'run id')}</th><th>{bilingual('금액(원)', 'won')}</th>"
        f"<th>{bilingual('승인', 'approvals')}</th>"
    )
    return intro + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def definitions() -> str:
    """Return what each figure counts, as the page states it."""
    items = [
        (
            "eligible",
            "최근 지급 실행의 주민등록 행 중 결과가 PAID, ALREADY_PAID, UNENROLLED, "
            "HELD_FOR_REVIEW인 주민(개인 키 기준 중복 제외)",
            "distinct residents whose registry row in the latest committed paying run is "
            "PAID, ALREADY_PAID, UNENROLLED or HELD_FOR_REVIEW",
        ),
        (
            "paid_in_money",
            "가장 최근 시도가 SETTLED인 지급",
            "payments whose newest attempt is SETTLED (the bank or card operator paid it)",
        ),
        (
            "in_flight",
            "가장 최근 시도가 ISSUED 또는 RELEASED인 지급(결과 대기)",
            "payments whose newest attempt is ISSUED or RELEASED (no result yet)",
        ),
        (
            "owed_again",
            "가장 최근 시도가 REJECTED, RETURNED 또는 VOIDED인 지급(다음 실행에서 재지급)",
            "payments whose newest attempt is REJECTED, RETURNED or VOIDED (a later run pays "
            "them again)",
        ),
        (
            "never_applied",
            "지원 대상 중 첫 회차에 유효한 신청이 없는 주민(UNENROLLED, NO_VALID_APPLICATION)",
            "eligible residents UNENROLLED with NO_VALID_APPLICATION for their first instalment",
        ),
    ]
    rows = [
        f"<li>{label(n)}: {escape(ko)} · <span class='en'>{escape(en)}</span></li>"
        for n, ko, en in items
    ]
    rows.append(
        "<li>"
        + bilingual(
            "행정동별 지급 건수는 그 시도를 지급한 주민등록 행의 행정동, 월별은 그 시도를 "
            "지급한 실행의 월 기준. 예산 집행 = 지급 완료 + 진행 중 금액",
            "per district, a payment counts in the admin code of the registry row its newest "
            "attempt paid; per month, in the run month of the run that issued it. Budget used "
            "= won paid in money + in flight, as a run's budget check counts",
        )
        + "</li>"
    )
    return f"<ul>{''.join(rows)}</ul>"


def program_page_html(page: ProgramPage) -> str:
    """Return the program page."""
    title = escape(f"{page.title_ko} · {page.title_en}")
    districts = by_district(page)
    months = by_month(page)
    latest = escape(page.latest_run or "-")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="ko"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
        f"<p><code>{escape(page.program)}</code> · {bilingual('기준', 'as of')} "
        f"{korean_date(page.today)} ({page.today}) · "
        f"{bilingual('최근 지급 실행', 'latest paying run')} <code id='latest-run'>{latest}</code>"
        "</p>",
        f"<h2>{bilingual('현황', 'Coverage')}</h2>",
        headline(page),
        f"<h2>{bilingual('행정동별', 'By district (행정동)')}</h2>",
        legend(tuple(SERIES)),
        bar_chart(districts, "admin_code", page.names, "coverage per district"),
        coverage_table(districts, "admin_code", page.names, "district"),
        f"<h2>{bilingual('실행 월별', 'By run month')}</h2>",
        legend(tuple(SERIES)),
        bar_chart(months, "run_month", {}, "coverage per run month"),
        coverage_table(months, "run_month", {}, "month"),
        f"<h2>{bilingual('송출 승인 대기', 'Waiting for release approval')}</h2>",
        pending_html(page),
        f"<h2>{bilingual('거절·반환 사유', 'Result reasons')}</h2>",
        reasons_html(page),
        f"<h2>{bilingual('결과 기한 초과', 'Overdue results')}</h2>",
        overdue_html(page),
        f"<h2>{bilingual('정의', 'Definitions')}</h2>",
        definitions(),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
