"""The dry-run comparison, as a pure function of two per-outcome tables."""

from __future__ import annotations

import polars as pl

from flows.audit.tally import by_outcome
from flows.audit.whatif import compare, terminal_lines


def frame(rows: list[tuple[str, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"source_kind": pl.String, "outcome": pl.String, "amount_krw": pl.Int64},
        orient="row",
    )


def test_the_comparison_counts_residents_by_registry_rows_and_keeps_vanished_outcomes() -> None:
    before = by_outcome(
        frame([("registry", "PAID", 100_000)] * 3 + [("registry", "UNENROLLED", 0)] * 2)
    )
    now = by_outcome(
        frame(
            [("registry", "ALREADY_PAID", 0)] * 3
            + [("registry", "PAID", 100_000)] * 2
            + [("enrollment", "PAID", 100_000)] * 2  # the application side of the same payments
        )
    )
    table = compare(now, before)
    assert table.rows() == [
        ("PAID", 3, 2, -1, 200_000),
        ("ALREADY_PAID", 0, 3, 3, 0),
        ("UNENROLLED", 2, 0, -2, 0),
    ]
    assert terminal_lines("headline", table)[2].split() == ["PAID", "3", "2", "-1", "200,000"]


def test_with_no_committed_run_everything_is_new() -> None:
    table = compare(by_outcome(frame([("registry", "PAID", 100_000)])), None)
    assert table.rows() == [("PAID", 0, 1, 1, 100_000)]
