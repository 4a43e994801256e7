"""Applications have a state (issue 14, decision note 0012): an application that waits is decided
again by every later run that reads it, and one that is closed is skipped, counted, never lost.

The story delivery holds an application whose beneficiary's registry row is quarantined
(A0016, 강동원: moved in after the snapshot date), one whose beneficiary is not in the registry
(A0024) and one held for an officer (A0022). The city fixes the registry and runs again on the
same enrollment files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from flows.audit.verify import verify_trail
from tests.support.flowrun import decisions, run_flow, runs

QUARANTINED_ROW = (
    "8101181888888,강동원,1981-01-18,900008,본인,4148059000,경기도 파주시 900008번지,2025-01-10"
)
FIXED_ROW = QUARANTINED_ROW.replace(",2025-01-10", ",2019-01-10")
MISSING_ROW = (
    "6606061202020,한외부,1966-06-06,900099,본인,4148057000,경기도 파주시 900099번지,"
    "2015-01-01,거주,내국인,,,2024-12-26"
)
WAITING = {"A0016": "BENEFICIARY_QUARANTINED", "A0024": "BENEFICIARY_NOT_IN_REGISTRY"}


def fix_registry(data: Path, application: str) -> None:
    """Correct the registry as the city would for one waiting application."""
    registry = data / "registry" / "registry_unjeong.csv"
    text = registry.read_text(encoding="utf-8")
    if application == "A0016":
        assert QUARANTINED_ROW in text
        registry.write_text(text.replace(QUARANTINED_ROW, FIXED_ROW), encoding="utf-8")
    else:
        registry.write_text(text.rstrip("\n") + "\n" + MISSING_ROW + "\n", encoding="utf-8")


def application(out: Path, run_id: str, application_id: str) -> dict[str, object]:
    rows = decisions(out, run_id).filter(pl.col("application_id") == application_id)
    assert rows.height == 1, f"{application_id} has {rows.height} decision records in {run_id}"
    return rows.row(0, named=True)


def assert_rows_read_are_decided_or_closed(out: Path, run_id: str) -> None:
    record = runs(out).filter(pl.col("run_id") == run_id).row(0, named=True)
    per_file = dict(
        decisions(out, run_id).group_by("source_file").len().iter_rows()  # one kind per file
    )
    for item in record["inputs"]:
        closed = item["rows_closed"] or 0
        assert item["rows"] == per_file.get(item["file"], 0) + closed, item


@pytest.fixture
def data(story: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(story, copy)
    return copy


@pytest.mark.parametrize("waiting", sorted(WAITING))
def test_a_waiting_application_is_paid_by_the_run_after_the_registry_is_fixed(
    waiting: str, data: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    before = application(out, first.run_id, waiting)
    assert (before["outcome"], before["reason_codes"]) == ("UNMATCHED", [WAITING[waiting]])
    fix_registry(data, waiting)
    second = run_flow(data, out, trigger="rerun", reason="registry rows fixed")
    after = application(out, second.run_id, waiting)
    assert after["outcome"] == "PAID"
    assert second.total_paid_krw == 100_000
    # Only the applications that waited were decided again; the closed ones were skipped.
    decided_again = decisions(out, second.run_id).filter(pl.col("source_kind") == "enrollment")
    assert sorted(decided_again["application_id"].to_list()) == ["A0016", "A0022", "A0024"]
    assert_rows_read_are_decided_or_closed(out, second.run_id)
    assert verify_trail(out) == ([], 2)


def test_an_application_held_for_review_stays_open_run_after_run(
    data: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    ids = [run_flow(data, out).run_id]
    for reason in ("bank asked for a resend", "checking again"):
        ids.append(run_flow(data, out, trigger="rerun", reason=reason).run_id)
    for run_id in ids:
        held = application(out, run_id, "A0022")
        assert (held["outcome"], held["reason_codes"]) == (
            "HELD_FOR_REVIEW",
            ["PROXY_NEEDS_FAMILY_PROOF"],
        )
        assert_rows_read_are_decided_or_closed(out, run_id)
    assert verify_trail(out) == ([], 3)


def test_a_closed_application_is_never_decided_again_and_a_paid_one_never_pays_twice(
    data: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    first = run_flow(data, out)
    fix_registry(data, "A0016")
    fix_registry(data, "A0024")
    second = run_flow(data, out, trigger="rerun", reason="registry rows fixed")
    third = run_flow(data, out, trigger="rerun", reason="nothing changed")
    assert (first.total_paid_krw, second.total_paid_krw, third.total_paid_krw) == (
        31_400_000,
        200_000,
        0,
    )
    enrollment = decisions(out, third.run_id).filter(pl.col("source_kind") == "enrollment")
    assert enrollment["application_id"].to_list() == ["A0022"]  # the only one still waiting
    paid = decisions(out).filter(pl.col("outcome") == "PAID", pl.col("source_kind") == "registry")
    assert paid["person_key"].is_unique().all()
    assert verify_trail(out) == ([], 3)
