"""Each run leaves a summary table and a markdown report in Prefect, without personal data."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from flows.inputs.ingest import list_delivery, read_delivery
from tests.support.flowrun import run_flow, runs

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend", "pii_key")]
PROGRAM = "paju-livelihood-2025"


def run_artifacts(flow_run_id: str) -> dict[str, Any]:
    """Return the artifacts of one flow run, by key, as stored by the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id={"any_": [flow_run_id]})
        )
    return {a.key: a for a in found}


def sensitive_values(story: Path) -> set[str]:
    """Return every RRN, name, card number, account number and holder in the story delivery."""
    values: set[str] = set()
    for folder, kind, columns in (
        ("registry", "registry", ["rrn", "name"]),
        (
            "enrollments",
            "enrollment",
            ["rrn", "applicant_rrn", "card_id", "account_no", "account_holder"],
        ),
    ):
        frame = read_delivery(list_delivery(story / folder, kind), kind).frame
        for column in columns:
            values |= {v for v in frame[column].drop_nulls().to_list() if len(v) >= 2}
    values |= {v.replace("-", "") for v in values if re.fullmatch(r"\d{6}-\d{7}", v)}
    return values


def test_a_run_shows_counts_total_and_files_in_prefect_without_personal_data(
    story: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary = run_flow(story, out)
    record = runs(out).row(-1, named=True)
    found = run_artifacts(record["flow_run_id"])
    assert set(found) == {f"{PROGRAM}-summary", f"{PROGRAM}-report"}

    table = found[f"{PROGRAM}-summary"].data
    rows = {r["item"]: r for r in (json.loads(table) if isinstance(table, str) else table)}
    assert {o: rows[o]["records"] for o in summary.counts} == summary.counts
    assert rows["total"] == {
        "item": "total",
        "records": sum(summary.counts.values()),
        "won": 31_400_000,
    }
    credit = f"file: payments/{PROGRAM}/{summary.run_id}/local_currency_0001.csv"
    assert rows[credit]["records"] == 314 and rows[credit]["won"] == 31_400_000
    written = {o["file"] for o in record["outputs"]}
    assert {k.removeprefix("file: ") for k in rows if k.startswith("file: ")} == written

    report = found[f"{PROGRAM}-report"].data
    assert "total paid: **31,400,000 won**" in report
    assert "## Files written" in report and f"| {credit.removeprefix('file: ')} | 314 |" in report

    shown = json.dumps(table, ensure_ascii=False) + report
    sensitive = sensitive_values(story)
    assert len(sensitive) > 600  # names, RRNs, card and account numbers of the story
    leaked = {v for v in sensitive if v in shown}
    assert leaked == set()


def test_a_dry_runs_artifacts_say_so_and_list_no_payment_files(story: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_flow(story, out, dry_run=True)
    record = runs(out).row(-1, named=True)
    found = run_artifacts(record["flow_run_id"])
    assert "dry run: nothing was paid" in found[f"{PROGRAM}-report"].data
    table = found[f"{PROGRAM}-summary"].data
    items = [r["item"] for r in (json.loads(table) if isinstance(table, str) else table)]
    assert not [i for i in items if i.startswith("file: payments/")]
    assert pl.Series(items).is_in(["PAID", "total"]).sum() == 2
