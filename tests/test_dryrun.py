"""`--dry-run` computes everything, pays nothing, and says what a real run would change."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.inputs.ledger import read_ledger
from flows.run import paths as layout
from tests.support.flowrun import run_flow, runs

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend", "pii_key")]
PROGRAM = "paju-livelihood-2025"


def dry_run_cli(data: Path, out: Path) -> str:
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--program",
            PROGRAM,
            "--registry",
            str(data / "registry"),
            "--enrollments",
            str(data / "enrollments"),
            "--out",
            str(out),
            "--run-month",
            "2025-04",
            "--dry-run",
        ],
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_a_dry_run_after_a_committed_run_shows_only_the_newly_enrolled_would_be_paid(
    story: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    late = tmp_path / "late.csv"
    shutil.move(story / "enrollments/enrollments_office.csv", late)
    first = run_flow(story, out)
    assert first.total_paid_krw == 30_900_000  # 309 residents
    shutil.move(late, story / "enrollments/enrollments_office.csv")

    printed = dry_run_cli(story, out)

    assert (
        "dry run: a real run now would newly pay 5 resident(s) 500,000 won "
        f"(compared with the last committed run {first.run_id})"
    ) in printed
    compared = [line.split() for line in printed.splitlines() if len(line.split()) == 5]
    assert ["PAID", "309", "5", "-304", "500,000"] in compared
    assert ["ALREADY_PAID", "0", "309", "+309", "0"] in compared
    dry = runs(out).row(-1, named=True)
    assert dry["status"] == "dry_run" and dry["dry_run"]
    report = (out / layout.reports_dir(PROGRAM, dry["run_id"]) / "summary.md").read_text()
    assert "## What a real run would change" in report
    assert "| PAID | 309 | 5 | -304 | 500,000 |" in report
    # the ledger ignores the dry run: the real run after it pays exactly those five
    assert read_ledger(out, PROGRAM).paid.height == 309
    real = run_flow(story, out, run_month="2025-04")
    assert real.total_paid_krw == 500_000


def test_a_dry_run_before_any_committed_run_would_pay_everyone_eligible(
    story: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary = run_flow(story, out, dry_run=True)
    assert summary.changes[0] == (
        "dry run: a real run now would newly pay 314 resident(s) 31,400,000 won "
        "(compared with no committed run yet)"
    )
    assert not (out / "payments").exists()


def test_the_dry_run_comparison_holds_no_personal_data(story: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    printed = dry_run_cli(story, out)
    rrns = set()
    for path in (story / "registry").glob("*.csv"):
        raw = path.read_bytes()
        text = raw.decode("utf-8") if raw.isascii() else raw.decode("cp949", errors="replace")
        rrns |= {m.replace("-", "") for m in re.findall(r"\d{6}-?\d{7}", text)}
    assert len(rrns) > 50
    report = next((out / "reports" / PROGRAM).glob("*/summary.md")).read_text()
    for shown in (printed, report):
        found = {m.replace("-", "") for m in re.findall(r"\d{6}-?\d{7}", shown)}
        assert not found & rrns
