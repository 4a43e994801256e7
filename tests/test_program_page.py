"""The program page (issue 15): its figures are the trail's, read by DuckDB; safe to share.

The story delivery is paid, the card operator rejects three credits (a cancelled card, a lost
card, a system failure), and the next month's run re-issues the one whose card was fine. The
page the flows wrote is read back by its `data-figure` elements and checked against the DuckDB
queries of docs/auditors.md section 4, run on the trail: not against the code that built it.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from flows.audit.verify import verify_trail
from flows.report import program_page as page_html
from flows.run.page import build_program_page
from rules.program import load_program
from tests.conftest import ROOT, STORY, TEST_KEY
from tests.support.approval import release_run
from tests.support.banktrail import copy_trail
from tests.support.flowrun import decisions, run_flow, runs
from tests.test_report_html import CHROMIUM, CHROMIUM_ARGS, browser_or_skip
from tests.test_results import PROGRAM, answer, record

pytestmark = [pytest.mark.flow]
GUIDE = ROOT / "docs/auditors.md"
REFUSED = {0: "CARD_CANCELLED", 1: "SYSTEM_ERROR", 2: "CARD_LOST"}
SEOUL = dt.timezone(dt.timedelta(hours=9))


@dataclass(frozen=True)
class Paid:
    out: Path
    first: str
    second: str
    sent: pl.DataFrame  # the first run's credit lines
    after_import: str  # the page as the results import left it


@pytest.fixture(scope="module")
def paid(tmp_path_factory: pytest.TempPathFactory, prefect_backend: None) -> Paid:
    """Pay the story, import a card result with three rejections, re-issue the next month."""
    tmp = tmp_path_factory.mktemp("program-page")
    data = tmp / "data"
    shutil.copytree(STORY / "registry", data / "registry")
    shutil.copytree(STORY / "enrollments", data / "enrollments")
    out = tmp / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JIWON_PII_KEY", TEST_KEY)
        first = run_flow(data, out)
        result, sent = answer(out, first.run_id, tmp, REFUSED)
        record(out, result)
        after_import = (out / "reports" / PROGRAM / "index.html").read_text(encoding="utf-8")
        second = run_flow(
            data, out, trigger="rerun", reason="re-issue rejected payments", run_month="2025-04"
        )
        release_run(out, second.run_id)  # a second person approves: the re-issue is sent
    return Paid(out, first.run_id, second.run_id, sent, after_import)


def page_file(out: Path) -> Path:
    return out / "reports" / PROGRAM / "index.html"


def figures(html: str) -> dict[str, int]:
    """Return every `data-figure` of a page with its `data-value`."""
    found = re.findall(r'data-figure="([^"]+)" data-value="(-?\d+)"', html)
    return {unescape(name): int(value) for name, value in found}


def guide_page_queries(out: Path, today: dt.date) -> dict[str, Any]:
    """Run the guide's set-up block and its program page section (DuckDB) on `out`."""
    text = GUIDE.read_text(encoding="utf-8")
    setup = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    section = text.split("## 5. The program page", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 3
    due = load_program(PROGRAM).result_due_days
    namespace: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JIWON_OUT", str(out))
        mp.setenv("JIWON_TODAY", today.isoformat())
        mp.setenv("JIWON_DUE_DAYS", str(due))
        for block in [setup, *blocks]:
            exec(compile(block, str(GUIDE), "exec"), namespace)
    return namespace


def today_in_seoul() -> dt.date:
    return dt.datetime.now(SEOUL).date()


def test_program_page_figures_match_duckdb_queries_on_the_trail(paid: Paid) -> None:
    shown = figures(page_file(paid.out).read_text(encoding="utf-8"))
    ns = guide_page_queries(paid.out, today_in_seoul())
    program = ns["page_figures"].row(0, named=True)
    for name, value in program.items():
        assert shown[name] == value, name
    # The story: 3 of the first run's credits were refused, one of them re-issued and in flight.
    assert shown["paid_in_money"] == paid.sent.height - 3
    assert (shown["in_flight"], shown["owed_again"]) == (1, 2)
    assert shown["budget_used_krw"] == shown["paid_in_money_krw"] + shown["in_flight_krw"]
    budget = load_program(PROGRAM).budget_krw
    assert shown["budget_krw"] == budget
    assert shown["budget_left_krw"] == budget - shown["budget_used_krw"]
    for prefix, table, key in (
        ("district", ns["page_by_district"], "admin_code"),
        ("month", ns["page_by_month"], "run_month"),
    ):
        assert table.height > 1, prefix
        for row in table.iter_rows(named=True):
            for name in page_html.SERIES:
                assert shown[f"{prefix}.{row[key]}.{name}"] == row[name], (prefix, row)
        page_rows = {k.split(".")[1] for k in shown if k.startswith(f"{prefix}.")}
        assert page_rows == set(table[key])
    assert ns["page_by_month"]["run_month"].to_list() == ["2025-03", "2025-04"]
    for row in ns["page_reasons"].iter_rows(named=True):
        key = f"reason.{row['state']}.{row['reason_code']}"
        assert (shown[f"{key}.attempts"], shown[f"{key}.won"]) == (row["attempts"], row["won"])
    assert sorted(ns["page_reasons"]["reason_code"]) == sorted(REFUSED.values())
    assert shown["overdue"] == ns["page_overdue"].height == 0


def test_program_page_lists_the_attempts_overdue_on_a_later_day(paid: Paid) -> None:
    later = today_in_seoul() + dt.timedelta(days=60)
    html = build_program_page(paid.out, PROGRAM, today=later)
    expected = guide_page_queries(paid.out, later)["page_overdue"]
    listed = re.findall(
        r'<tr data-overdue="([^"]+)"><td><code>[^<]+</code></td><td><code>([^<]+)', html
    )
    assert listed == list(expected.iter_rows())
    assert len(listed) == figures(html)["overdue"] == 1  # the re-issued attempt, still in flight
    assert listed[0][1] == paid.second and listed[0][0].endswith("-2")


def test_program_page_is_rebuilt_by_the_results_import_and_the_next_run(paid: Paid) -> None:
    imported = figures(paid.after_import)
    assert imported["paid_in_money"] == paid.sent.height - 3
    assert (imported["in_flight"], imported["owed_again"]) == (0, 3)
    latest = figures(page_file(paid.out).read_text(encoding="utf-8"))
    assert (latest["in_flight"], latest["owed_again"]) == (1, 2)
    assert f"<code id='latest-run'>{paid.second}</code>" in page_file(paid.out).read_text()


def test_program_page_has_no_personal_data_and_no_external_resource(paid: Paid) -> None:
    html = page_file(paid.out).read_text(encoding="utf-8")
    records = decisions(paid.out)
    for column in ("person_key", "household_key", "rrn_masked", "name_masked", "card_key"):
        values = {v for v in records[column].drop_nulls().to_list() if len(v) > 2}
        assert values, column
        assert not any(v in html for v in values), column
    card_ids = set(paid.sent["card_id"].to_list())
    assert card_ids and not any(c in html for c in card_ids)
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, flags=re.I)
    assert not re.search(r"@font-face|url\(", html, flags=re.I)
    assert "<img" not in html.lower() and "<link" not in html.lower()
    assert "지급 완료 · " in html and "Paid in money" in html


def test_verify_does_not_count_the_program_page_as_an_added_file(
    paid: Paid, tmp_path: Path
) -> None:
    assert verify_trail(paid.out)[0] == []
    copy = tmp_path / "out"
    shutil.copytree(paid.out, copy)
    folder = copy / "reports" / PROGRAM
    (folder / ".index.html.abc123.tmp").write_text("a page cut short by a crash")
    (folder / "index.html.bak").write_text("not the page")
    problems = [p for p in verify_trail(copy)[0] if "anchor" not in p]
    assert len(problems) == 1 and "index.html.bak" in problems[0], problems


def test_program_page_opens_in_headless_chromium_and_is_not_blank(
    paid: Paid, tmp_path: Path
) -> None:
    browser_or_skip()
    from PIL import Image
    from playwright.sync_api import sync_playwright

    shot = tmp_path / "page.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file(paid.out).as_uri())
            page.screenshot(path=str(shot), full_page=True)
            paid_in_money = page.get_attribute("[data-figure=paid_in_money]", "data-value")
            shown = page.inner_text("[data-figure=paid_in_money]")
            bars = len(page.query_selector_all("svg rect[data-series]"))
            groups = len(page.query_selector_all("svg g[data-row]"))
        finally:
            browser.close()
    assert [r for r in requests if not r.startswith("file:")] == []
    image = Image.open(shot).convert("L")
    low, high = image.getextrema()  # type: ignore[misc]
    assert image.width >= 1000 and image.height > 900 and high - low > 100
    assert len(set(image.resize((64, 64)).getdata())) > 8  # text and bars, not one colour
    assert int(paid_in_money or 0) == int(re.sub(r"\D", "", shown)) == paid.sent.height - 3
    assert groups > 2 and bars == len(page_html.SERIES) * groups


def test_a_page_that_fails_to_build_does_not_fail_the_run(
    paid: Paid, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pii_key: str
) -> None:
    out = copy_trail(paid.out, tmp_path / "out")
    before = page_file(out).read_bytes()

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("no page today")

    monkeypatch.setattr("flows.run.page.build_program_page", broken)
    data = tmp_path / "data"
    shutil.copytree(STORY / "registry", data / "registry")
    shutil.copytree(STORY / "enrollments", data / "enrollments")
    summary = run_flow(data, out, trigger="rerun", reason="nothing new", run_month="2025-04")
    assert summary.status == "committed" and summary.total_paid_krw == 0
    assert runs(out)["run_id"][-1] == summary.run_id
    assert page_file(out).read_bytes() == before  # the old page stays until a rebuild works


def test_a_program_too_large_for_the_page_is_not_rebuilt_after_a_run(
    paid: Paid, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pii_key: str
) -> None:
    out = copy_trail(paid.out, tmp_path / "out")
    before = page_file(out).read_bytes()
    monkeypatch.setattr("flows.run.flow.PAGE_MAX_RESIDENTS", 10)
    data = tmp_path / "data"
    shutil.copytree(STORY / "registry", data / "registry")
    shutil.copytree(STORY / "enrollments", data / "enrollments")
    summary = run_flow(data, out, trigger="rerun", reason="nothing new", run_month="2025-04")
    assert summary.status == "committed"
    assert page_file(out).read_bytes() == before  # not read into memory, not rebuilt


def test_page_figures_from_tiny_frames() -> None:
    registry = pl.DataFrame(
        {
            "run_id": ["r1"] * 5,
            "run_month": ["2025-03"] * 5,
            "person_key": ["a", "b", "c", "d", "e"],
            "admin_code": ["1", "1", "2", "2", "<x>"],
            "outcome": ["PAID", "UNENROLLED", "UNENROLLED", "INELIGIBLE", "UNENROLLED"],
            "reason_codes": [
                ["PAID"],
                ["NO_VALID_APPLICATION"],
                ["PAYMENT_OWED_AGAIN"],
                ["STATUS_NOT_ELIGIBLE"],
                ["NO_VALID_APPLICATION"],
            ],
            "instalment": [1, 1, 1, 1, 2],
        }
    )
    people = page_html.people(registry, "admin_code").sort("admin_code")
    # e is UNENROLLED for a second instalment: applied before, so not "never applied"
    assert people.rows() == [("1", 2, 1), ("2", 1, 0), ("<x>", 1, 0)]
    attempts = pl.DataFrame(
        {
            "payment_id": ["p", "p", "q"],
            "attempt": [1, 2, 1],
            "state": ["REJECTED", "SETTLED", "RETURNED"],
            "amount_krw": [10, 10, 20],
            "run_month": ["2025-03", "2025-04", "2025-03"],
        }
    )
    money = page_html.money(page_html.newest_attempts(attempts), "run_month").sort("run_month")
    assert money.select("run_month", *page_html.MONEY).rows() == [
        ("2025-03", 0, 0, 1),
        ("2025-04", 1, 0, 0),
    ]
    assert page_html.budget_used(attempts) == 10
    chart = page_html.bar_chart(
        page_html.figures(
            registry,
            page_html.newest_attempts(attempts.with_columns(admin_code=pl.lit("<x>"))),
            "admin_code",
        ),
        "admin_code",
        {"<x>": "<b>동</b>"},
        "t",
    )
    assert "<x>" not in chart and "&lt;x&gt; &lt;b&gt;동&lt;/b&gt;" in chart


def test_the_guide_names_the_program_page_and_its_definitions() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("## 5. The program page", 1)[1].split("\n## ", 1)[0]
    for words in ("eligible residents", "never applied", "budget used", "overdue", "행정동"):
        assert words in section, words
