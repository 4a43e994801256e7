"""The one-screen summary an operator reads after `jiwon run` or `make demo`."""

from __future__ import annotations

import pytest

from flows.report.terminal import print_summary
from flows.run.flow import RunSummary


def summary(dry_run: bool) -> RunSummary:
    return RunSummary(
        run_id="20250301T000000Z-0000abcd",
        program="paju-livelihood-2025",
        status="dry_run" if dry_run else "committed",
        dry_run=dry_run,
        counts={"PAID": 4, "UNENROLLED": 1},
        total_paid_krw=200_000,
        message="",
        out="/srv/jiwon",
        payments=2,
    )


def test_a_committed_run_prints_the_total_paid_and_the_number_of_payments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_summary(summary(dry_run=False))
    text = capsys.readouterr().out
    assert "total paid: 200,000 won in 2 payments" in text
    assert "one per registry and per enrollment row" in text


def test_a_dry_run_says_what_it_would_pay_not_that_it_paid(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_summary(summary(dry_run=True))
    text = capsys.readouterr().out
    assert "would pay: 200,000 won in 2 payments" in text and "total paid" not in text
