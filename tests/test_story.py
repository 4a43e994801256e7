"""End to end through the real Prefect flow on the hand-made story delivery.

fixtures/story/expected.csv names every input row's outcome; fixtures/story/build.py says who
each person is (a grandparent applying for a grandchild, a resident listed in two files, a CP949
file with Korean headers, a move-in after the snapshot date, a checksum mismatch on an old
number, a two-letter name, ...).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import STORY
from tests.support.flowrun import decisions, run_flow, runs

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend", "pii_key")]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, prefect_backend: None) -> tuple[Path, str]:
    mp = pytest.MonkeyPatch()
    mp.setenv("JIWON_PII_KEY", "test-key-0123456789abcdef")
    out = tmp_path_factory.mktemp("story-out")
    summary = run_flow(STORY, out)
    mp.undo()
    return out, summary.run_id


def test_story_every_row_ends_in_its_expected_outcome(published: tuple[Path, str]) -> None:
    out, run_id = published
    got = decisions(out, run_id).select(
        "source_file",
        "source_row",
        "outcome",
        reason=pl.col("reason_codes").list.first().fill_null(""),
    )
    expected = pl.read_csv(
        STORY / "expected.csv", schema_overrides={"reason": pl.String}
    ).with_columns(pl.col("reason").fill_null(""))
    assert got.height == expected.height  # one decision record per input row
    joined = expected.join(got, on=["source_file", "source_row"], how="left", suffix="_got")
    wrong = joined.filter(
        (pl.col("outcome") != pl.col("outcome_got")) | (pl.col("reason") != pl.col("reason_got"))
    )
    assert wrong.height == 0, wrong


def test_story_payment_file_total_equals_audit_paid_total(published: tuple[Path, str]) -> None:
    out, run_id = published
    folder = out / "payments/paju-livelihood-2025" / run_id
    manifest = json.loads((folder / "manifest.json").read_text())
    credits = pl.read_csv(
        folder / "local_currency_0001.csv", schema_overrides={"card_id": pl.String}
    )
    records = decisions(out, run_id)
    paid_registry = records.filter(pl.col("source_kind") == "registry", pl.col("outcome") == "PAID")
    assert credits["amount"].sum() == manifest["total_krw"] == paid_registry["amount_krw"].sum()
    assert credits.height == manifest["records"] == paid_registry.height == 314
    assert credits["payment_id"].n_unique() == credits.height
    assert set(credits["payment_id"]) == set(paid_registry["payment_id"])
    run = runs(out).row(0, named=True)
    assert run["total_paid_krw"] == 31_400_000
    assert run["counts"]["PAID"] == 628


def test_story_writes_no_plain_rrn_outside_quarantine(published: tuple[Path, str]) -> None:
    out, _ = published
    story_rrns = set(
        pl.read_csv(STORY / "registry/registry_town.csv", schema_overrides={"rrn": pl.String})[
            "rrn"
        ]
    )
    story_rrns.add("9004042222224")
    for path in out.rglob("*"):
        if path.is_file() and "quarantine" not in path.parts:
            content = path.read_bytes()
            if path.suffix == ".parquet":
                content = str(pl.read_parquet(path).to_dicts()).encode()
            assert not any(r.encode() in content for r in story_rrns), path


def test_story_quarantine_is_owner_only_and_opens_in_excel(published: tuple[Path, str]) -> None:
    out, run_id = published
    folder = out / "quarantine/paju-livelihood-2025" / run_id
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    csv_bytes = (folder / "quarantine.csv").read_bytes()
    assert csv_bytes.startswith(b"\xef\xbb\xbf")
    for f in folder.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    report = pl.read_parquet(folder / "quarantine.parquet")
    assert sorted(report["reason_code"]) == [
        "CARD_ID_INVALID",
        "REGISTERED_AFTER_AS_OF",
        "RRN_FORMAT",
    ]
    assert report.filter(pl.col("reason_code") == "RRN_FORMAT")["value"].to_list() == [
        "72020218181"
    ]


def test_story_audit_files_carry_schema_version_and_read_in_duckdb(
    published: tuple[Path, str],
) -> None:
    import duckdb

    out, _ = published
    path = next((out / "audit/decisions").rglob("*.parquet"))
    assert pl.read_parquet_metadata(path)["jiwon.schema_version"] == "1"
    total = duckdb.sql(
        f"select sum(amount_krw) from read_parquet('{out}/audit/decisions/**/*.parquet', "
        "hive_partitioning=true) where outcome = 'PAID' and source_kind = 'registry'"
    ).fetchall()
    assert total == [(31_400_000,)]
