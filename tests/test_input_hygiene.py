"""Issue 12: what a delivery holds is read or refused, in both stores, and no value leaks.

Each behaviour runs through the real `disburse` flow twice: one bucket in memory and two
buckets on disk (`--partitions 2`).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.errors import InputRejected
from tests.conftest import STORY
from tests.support.flowrun import decisions, run_flow, runs

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend", "pii_key")]

ENGINES = [pytest.param({}, id="memory"), pytest.param({"partitions": 2}, id="disk")]
HEADER = (
    "application_id,applied_at,rrn,applicant_rrn,channel,payout,card_id,bank_code,account_no,"
    "account_holder"
)
# Values found nowhere else in the fixtures: none of them may be seen raw after a refusal.
RRN, CARD, ACCOUNT, HOLDER = "8802152345671", "9419999999999991", "110987654321", "황보수진"
CARD_LINE = f"A9001,2025-01-22T10:00:00,{RRN},{RRN},online,local_currency,{CARD},,,"
BANK_LINE = f"A9002,2025-01-22T10:05:00,{RRN},{RRN},online,bank,,004,{ACCOUNT},{HOLDER}"


def expected_outcomes() -> set[tuple[str, int, str]]:
    with (STORY / "expected.csv").open(encoding="utf-8") as handle:
        return {
            (r["source_file"], int(r["source_row"]), r["outcome"]) for r in csv.DictReader(handle)
        }


def published_outcomes(out: Path, run_id: str) -> set[tuple[str, int, str]]:
    frame = decisions(out, run_id).select("source_file", "source_row", "outcome")
    return {(f, int(r), o) for f, r, o in frame.iter_rows()}


def prefect_database() -> bytes:
    """Return the bytes of the test session's Prefect database (with its write-ahead log)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import get_current_settings

    APILogWorker.drain_all(timeout=5)  # logs and events are sent in batches: send them now
    EventsWorker.drain_all(timeout=5)
    url = str(get_current_settings().server.database.connection_url.get_secret_value())
    path = Path(url.split(":///", 1)[1])
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def cli_run(story: Path, out: Path, engine: dict[str, Any]) -> Any:
    extra = [f"--partitions={engine['partitions']}"] if engine else []
    return CliRunner().invoke(
        app,
        [
            "run",
            "--program=paju-livelihood-2025",
            f"--registry={story / 'registry'}",
            f"--enrollments={story / 'enrollments'}",
            f"--out={out}",
            "--run-month=2025-03",
            *extra,
        ],
    )


@pytest.mark.parametrize("broken", ["card", "bank"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_broken_quote_leaks_no_rrn_card_account_or_name_to_the_record_prefect_or_terminal(
    story: Path,
    tmp_path: Path,
    engine: dict[str, Any],
    broken: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    card, bank = CARD_LINE, BANK_LINE
    if broken == "card":
        card = card.replace(f",{RRN},", f',"{RRN},', 1)
    else:
        bank = bank.replace(f",{RRN},", f',"{RRN},', 1)
    (story / "enrollments/enrollments_zz.csv").write_text(f"{HEADER}\n{card}\n{bank}\n")
    out = tmp_path / "out"
    result = cli_run(story, out, engine)
    assert result.exit_code == 3
    line = 2 if broken == "card" else 3
    assert f"enrollments_zz.csv, line {line}: is not a well-formed CSV" in result.stderr
    record = runs(out).row(0, named=True)
    assert record["status"] == "rejected"
    seen = {
        "run record": str(record).encode(),
        "terminal": (result.output + result.stderr + "".join(capfd.readouterr())).encode(),
        "Prefect database": prefect_database(),
    }
    for where, text in seen.items():
        for value in (RRN, CARD, ACCOUNT, HOLDER):
            assert value.encode() not in text, f"{value} leaked into the {where}"


@pytest.mark.parametrize("engine", ENGINES)
def test_blank_lines_are_not_rows_and_the_rows_keep_their_numbers_in_both_engines(
    story: Path, tmp_path: Path, engine: dict[str, Any]
) -> None:
    munsan = story / "registry/registry_munsan.csv"  # CP949, CRLF
    lines = munsan.read_bytes().split(b"\n")
    munsan.write_bytes(b"\n".join([*lines[:4], b"\r", *lines[4:]]) + b"\r\n")
    online = story / "enrollments/enrollments_online.csv"
    online.write_bytes(online.read_bytes() + b"  \n")
    out = tmp_path / "out"
    summary = run_flow(story, out, **engine)
    assert summary.status == "committed"
    assert published_outcomes(out, summary.run_id) == expected_outcomes()
    rows = {i["file"]: i["rows"] for i in runs(out)["inputs"][0]}
    assert rows["registry_munsan.csv"] == 7 and rows["enrollments_online.csv"] == 16


@pytest.mark.parametrize("entry", ["subfolder", "hidden", "dangling-link", "outside-link"])
@pytest.mark.parametrize("engine", ENGINES)
def test_an_entry_of_the_enrollment_folder_that_is_not_read_refuses_the_run_naming_it(
    story: Path, tmp_path: Path, engine: dict[str, Any], entry: str
) -> None:
    folder = story / "enrollments"
    online = folder / "enrollments_online.csv"
    name = {
        "subfolder": "late",
        "hidden": ".late.csv",
        "dangling-link": "late.csv",
        "outside-link": "late.csv",
    }[entry]
    if entry == "subfolder":
        (folder / name).mkdir()
        online.rename(folder / name / online.name)
    elif entry == "hidden":
        online.rename(folder / name)
    elif entry == "dangling-link":
        (folder / name).symlink_to(tmp_path / "gone.csv")
    else:
        online.rename(tmp_path / online.name)
        (folder / name).symlink_to(tmp_path / online.name)
    with pytest.raises(InputRejected, match=re.escape(f"enrollments/{name}: is a")):
        run_flow(story, tmp_path / "out", **engine)
    assert runs(tmp_path / "out")["status"].to_list() == ["rejected"]


@pytest.mark.parametrize("engine", ENGINES)
def test_typed_parquet_dates_decide_as_their_text_does_in_both_engines(
    story: Path, tmp_path: Path, engine: dict[str, Any]
) -> None:
    path = story / "registry/registry_geumchon.parquet"
    frame = pl.read_parquet(path)
    midnight_utc = pl.col("as_of").str.to_datetime("%Y-%m-%d") - dt.timedelta(hours=9)
    frame.with_columns(
        pl.col("birth_date").str.to_date("%Y-%m-%d", strict=False),
        pl.col("registered_on").str.to_datetime("%Y-%m-%d", strict=False),
        midnight_utc.dt.replace_time_zone("UTC").alias("as_of"),
    ).write_parquet(path)
    out = tmp_path / "out"
    summary = run_flow(story, out, **engine)
    assert summary.status == "committed"
    assert published_outcomes(out, summary.run_id) == expected_outcomes()
