"""The HTML run report: self-contained, no personal data, and its totals match the audit.

The browser test opens the page in Debian's headless Chromium (`make browser` installs it) via
playwright, takes a screenshot and reads the totals as rendered. It skips when /usr/bin/chromium
is absent, unless JIWON_REQUIRE_BROWSER=1 (set in CI), where a missing browser fails.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import polars as pl
import pytest

from tests.support.banktrail import BankTrail
from tests.support.flowrun import decisions, runs

pytestmark = [pytest.mark.flow]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def reported(bank_trail: BankTrail) -> tuple[Path, str, Path]:
    """The shared bank trail's first run; return (out, run id, report.html)."""
    out, run_id = bank_trail.out, bank_trail.first
    return out, run_id, out / "reports/paju-livelihood-2025" / run_id / "report.html"


def test_report_page_has_no_personal_data_and_no_external_assets(
    reported: tuple[Path, str, Path],
) -> None:
    out, run_id, page = reported
    html = page.read_text(encoding="utf-8")
    records = decisions(out, run_id)
    for column in ("person_key", "household_key", "rrn_masked", "name_masked", "account_key"):
        values = {v for v in records[column].drop_nulls().to_list() if len(v) > 2}
        assert values, column
        assert not any(v in html for v in values), column
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<svg" in html and "<script" not in html


def digits(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def browser_or_skip(chromium: Path = CHROMIUM) -> None:
    if chromium.exists():
        return
    if os.environ.get("JIWON_REQUIRE_BROWSER") == "1":
        pytest.fail("JIWON_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing: run `make browser`")
    pytest.skip("no /usr/bin/chromium (run `make browser`)")


def test_report_opens_in_headless_chromium_and_its_totals_match_the_audit(
    reported: tuple[Path, str, Path], tmp_path: Path
) -> None:
    browser_or_skip()
    from playwright.sync_api import sync_playwright

    out, run_id, page_file = reported
    shot = tmp_path / "report.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            page.goto(page_file.as_uri())
            page.screenshot(path=str(shot), full_page=True)
            total = digits(page.inner_text("#total-paid"))
            people = digits(page.inner_text("#people-paid"))
            counts = {
                row.get_attribute("id").removeprefix("outcome-"): digits(row.inner_text())
                for row in page.query_selector_all("tr[id^=outcome-]")
                if row.get_attribute("id")
            }
            district_won = [
                digits(cell.inner_text())
                for cell in page.query_selector_all("tr[id^=district-] td[data-krw]")
            ]
            bars = page.query_selector_all("svg g[id^=bar-]")
            bar_widths = [float(b.query_selector("rect").get_attribute("width")) for b in bars]
            quarantine = page.inner_text("table:below(h2:text('Quarantine'))")
        finally:
            browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    records = decisions(out, run_id)
    paid = records.filter(pl.col("outcome") == "PAID", pl.col("source_kind") == "registry")
    assert total == paid["amount_krw"].sum() == runs(out)["total_paid_krw"][0] == 31_400_000
    assert people == paid.height
    expected = dict(records.group_by("outcome").len().iter_rows())
    assert {o: n for o, n in counts.items() if n} == expected
    assert sum(district_won) == total
    assert len(bars) == paid["admin_code"].n_unique() and max(bar_widths) == 420
    assert "CARD_ID_INVALID" in quarantine and "RRN_FORMAT" in quarantine


def test_a_missing_browser_fails_instead_of_skipping_when_ci_requires_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "no-chromium"
    monkeypatch.setenv("JIWON_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="make browser"):
        browser_or_skip(missing)
    monkeypatch.delenv("JIWON_REQUIRE_BROWSER")
    with pytest.raises(pytest.skip.Exception):
        browser_or_skip(missing)
