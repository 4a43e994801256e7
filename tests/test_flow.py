"""The flow's promises across runs: never twice, nothing lost, rejected input pays nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from flows.audit.verify import verify_trail
from flows.errors import InputRejected, RunHalted, UsageError
from tests.support.flowrun import decisions, run_flow, runs

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend")]


def paid(out: Path, run_id: str) -> pl.DataFrame:
    records = decisions(out, run_id)
    return records.filter(pl.col("outcome") == "PAID", pl.col("source_kind") == "registry")


def test_rerun_on_the_same_files_pays_nobody_twice(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    first = run_flow(story, out)
    second = run_flow(story, out, trigger="rerun", reason="bank asked for a resend")
    assert first.total_paid_krw == 31_400_000
    assert second.total_paid_krw == 0
    assert second.counts["ALREADY_PAID"] == first.counts["PAID"] // 2
    inputs = runs(out)["inputs"][-1]
    enrollment = [i for i in inputs if i["kind"] == "enrollment"]
    # Only the three applications that wait (UNMATCHED twice, HELD_FOR_REVIEW) are read again:
    # two in the online file, one in the office file; the town file is closed row for row.
    still_open = {i["file"]: i["rows"] - i["rows_closed"] for i in enrollment}
    assert still_open == {
        "enrollments_office.csv": 1,
        "enrollments_online.csv": 2,
        "enrollments_town.csv": 0,
    }
    skipped = {i["file"]: i["skipped_by_run"] for i in enrollment}
    assert skipped == {
        "enrollments_office.csv": None,
        "enrollments_online.csv": None,
        "enrollments_town.csv": first.run_id,
    }
    assert verify_trail(out) == ([], 2)


def test_a_later_enrollment_delivery_pays_only_the_newly_enrolled(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    late = tmp_path / "late.csv"
    shutil.move(story / "enrollments/enrollments_office.csv", late)
    first = run_flow(story, out)
    shutil.move(late, story / "enrollments/enrollments_office.csv")
    second = run_flow(story, out, run_month="2025-04")
    newly = paid(out, second.run_id)
    assert set(newly["source_file"]) <= {
        "registry_munsan.csv",
        "registry_geumchon.parquet",
        "registry_unjeong.csv",
    }
    assert newly.height == 5  # the office applicants: 박영자, 박서준, 서현우, 송재호, 응우옌티란
    both = pl.concat([paid(out, first.run_id), newly])
    assert both["person_key"].n_unique() == both.height == 314


def test_dry_run_publishes_only_its_record_and_report_and_the_ledger_ignores_it(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    dry = run_flow(story, out, dry_run=True)
    assert dry.status == "dry_run" and dry.total_paid_krw == 31_400_000
    assert not (out / "payments").exists() and not (out / "audit/decisions").exists()
    real = run_flow(story, out)
    assert real.total_paid_krw == 31_400_000
    assert runs(out)["status"].to_list() == ["dry_run", "committed"]


def test_a_run_without_a_pii_key_refuses_to_start(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JIWON_PII_KEY", raising=False)
    with pytest.raises(UsageError, match="JIWON_PII_KEY is not set"):
        run_flow(story, tmp_path / "out")
    assert not (tmp_path / "out/audit").exists()


def test_a_rerun_without_a_reason_is_refused(story: Path, tmp_path: Path, pii_key: str) -> None:
    with pytest.raises(ValueError, match="a rerun needs --reason"):
        run_flow(story, tmp_path / "out", trigger="rerun")


def test_a_rejected_file_pays_nothing_and_leaves_a_run_record_saying_why(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    (story / "registry/registry_munsan.csv").write_bytes(b"rrn,name\n\xff\xfe\n")
    with pytest.raises(InputRejected, match=r"registry_munsan\.csv: is neither UTF-8"):
        run_flow(story, out)
    record = runs(out).row(0, named=True)
    assert record["status"] == "rejected"
    assert "registry_munsan.csv" in record["message"]
    assert not (out / "payments").exists()
    assert verify_trail(out) == ([], 1)


def test_too_many_bad_rows_halt_the_run_but_keep_the_quarantine(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    town = story / "registry/registry_town.csv"
    lines = town.read_text().splitlines()
    broken = [lines[0]] + [
        line.replace("4148057000", "4148099999") if i % 20 == 0 else line
        for i, line in enumerate(lines[1:])
    ]
    town.write_text("\n".join(broken) + "\n")
    with pytest.raises(RunHalted, match="above the program's threshold"):
        run_flow(story, out)
    record = runs(out).row(0, named=True)
    assert record["status"] == "halted"
    assert not (out / "payments").exists()
    quarantine = next((out / "quarantine").rglob("quarantine.parquet"))
    assert (
        pl.read_parquet(quarantine).filter(pl.col("reason_code") == "ADMIN_CODE_UNKNOWN").height
        == 15
    )


@pytest.mark.parametrize(
    "tamper", ["edit_decision", "delete_payment_file", "add_file", "edit_run_record"]
)
def test_audit_verify_names_the_first_broken_link(
    story: Path, tmp_path: Path, pii_key: str, tamper: str
) -> None:
    out = tmp_path / "out"
    first = run_flow(story, out)
    run_flow(story, out, run_month="2025-04")
    decision_file = next(out.glob(f"audit/decisions/**/run_id={first.run_id}/*.parquet"))
    credit_file = next(out.glob(f"payments/*/{first.run_id}/local_currency_0001.csv"))
    run_file = next(out.glob(f"audit/runs/**/run_id={first.run_id}.parquet"))
    if tamper == "edit_decision":
        frame = pl.read_parquet(decision_file)
        frame.with_columns(amount_krw=pl.col("amount_krw") * 2).write_parquet(decision_file)
    elif tamper == "delete_payment_file":
        credit_file.unlink()
    elif tamper == "add_file":
        (credit_file.parent / "extra.csv").write_text("card,amount\n1,100000\n")
    else:
        frame = pl.read_parquet(run_file)
        frame.with_columns(total_paid_krw=pl.lit(1, pl.Int64)).write_parquet(run_file)
    problems, _ = verify_trail(out)
    assert problems and first.run_id in problems[0]
