"""The guards that stop a run before it pays anyone twice (issue 12, money).

Each test delivers the story's applications again as a trivially changed copy (CRLF line endings:
another SHA-256, so the file is not skipped as consumed) and tries one way to make the ledger
forget who was paid: another key, a deleted or edited decisions file, an instalment paid again on
its old application, a run month in the future.
"""

from __future__ import annotations

import datetime as dt
import shutil
import stat
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.errors import RunHalted, UsageError
from tests.conftest import ROOT, TEST_KEY
from tests.support.banktrail import BankTrail
from tests.support.flowrun import decisions, run_flow, run_in_month, runs

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend")]
OTHER_KEY = "another-key-fedcba9876543210"


def redeliver(story: Path) -> None:
    """Replace every enrollment file by a CRLF copy of itself: same rows, new SHA-256."""
    for f in (story / "enrollments").iterdir():
        f.write_bytes(f.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def paid_total(out: Path) -> int:
    committed = runs(out).filter(pl.col("status") == "committed")
    return int(committed["total_paid_krw"].sum())


@pytest.mark.parametrize("partitions", [None, 3])
def test_a_run_with_another_key_halts_before_reading_input_and_pays_nobody_again(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, partitions: int | None
) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("JIWON_PII_KEY", TEST_KEY)
    first = run_flow(story, out, partitions=partitions)
    assert first.total_paid_krw == 31_400_000
    redeliver(story)
    monkeypatch.setenv("JIWON_PII_KEY", OTHER_KEY)
    with pytest.raises(RunHalted, match="JIWON_PII_KEY is set to a different key") as halted:
        run_flow(story, out, partitions=partitions)
    assert first.run_id in str(halted.value) and "\n" not in str(halted.value)
    records = runs(out)
    assert records["status"].to_list() == ["committed", "halted"]
    assert records["inputs"][-1].len() == 0  # halted before reading any input
    assert paid_total(out) == 31_400_000
    # The right key again: everyone already paid stays paid once.
    monkeypatch.setenv("JIWON_PII_KEY", TEST_KEY)
    again = run_flow(story, out, partitions=partitions)
    assert again.status == "committed" and again.total_paid_krw == 0
    assert decisions(out, again.run_id).filter(pl.col("outcome") == "PAID").height == 0


def test_every_run_record_carries_a_slow_salted_fingerprint_of_the_key_never_the_key(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    from flows.audit import keyprint

    out = tmp_path / "out"
    run_flow(story, out)
    redeliver(story)
    run_flow(story, out)
    prints = runs(out)["key_fingerprint"].to_list()
    assert prints[0] == prints[1]  # the program's salt is reused: one value per program
    scheme, params, salt, _ = prints[0].split("$")
    assert (scheme, params) == ("scrypt", "n=32768,r=8,p=1") and len(bytes.fromhex(salt)) == 16
    assert keyprint.matches(pii_key, prints[0]) and not keyprint.matches(OTHER_KEY, prints[0])
    assert keyprint.fingerprint(pii_key) != prints[0]  # a fresh salt for another program
    for path in out.rglob("*"):
        if path.is_file():
            assert pii_key.encode() not in path.read_bytes(), path


def test_the_cli_exits_4_with_one_line_when_the_key_differs(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("JIWON_PII_KEY", TEST_KEY)
    run_flow(story, out)
    monkeypatch.setenv("JIWON_PII_KEY", OTHER_KEY)
    args = ["run", "--program", "paju-livelihood-2025", "--run-month", "2025-03"]
    args += ["--registry", str(story / "registry"), "--enrollments", str(story / "enrollments")]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 4
    line = result.stderr.strip().splitlines()[-1]
    assert "different key" in line and "rotate it: docs/operators.md" in line


def decisions_files(out: Path, run_id: str) -> list[Path]:
    return sorted(out.glob(f"audit/decisions/program=*/run_month=*/run_id={run_id}/*.parquet"))


@pytest.mark.parametrize("partitions", [None, 3])
@pytest.mark.parametrize("damage", ["folder deleted", "file edited"])
def test_a_run_halts_naming_the_file_when_a_committed_runs_decisions_are_missing_or_changed(
    story: Path, tmp_path: Path, pii_key: str, damage: str, partitions: int | None
) -> None:
    out = tmp_path / "out"
    first = run_flow(story, out, partitions=partitions)
    target = decisions_files(out, first.run_id)[0]
    if damage == "folder deleted":
        shutil.rmtree(target.parent)
    else:  # a valid Parquet file with every PAID row turned into UNENROLLED
        frame = pl.read_parquet(target).with_columns(
            outcome=pl.when(pl.col("outcome") == "PAID")
            .then(pl.lit("UNENROLLED"))
            .otherwise("outcome")
        )
        frame.write_parquet(target)
    redeliver(story)
    with pytest.raises(RunHalted, match="the ledger cannot be trusted") as halted:
        run_flow(story, out, partitions=partitions)
    message = str(halted.value)
    assert str(target.relative_to(out)) in message and first.run_id in message
    assert ("is missing" if damage == "folder deleted" else "was changed") in message
    assert paid_total(out) == 31_400_000
    assert [p.name for p in out.glob("payments/*/*")] == [first.run_id]  # no second payment


def test_a_file_added_to_a_committed_runs_decisions_folder_starves_nobody(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    held_back = tmp_path / "held-back"
    held_back.mkdir()
    shutil.move(story / "enrollments/enrollments_online.csv", held_back / "online.csv")
    programs = tmp_path / "programs"  # the story's program, tolerating a small first delivery
    source = ROOT / "rules/programs/paju-livelihood-2025/program.yaml"
    (programs / "paju-livelihood-2025").mkdir(parents=True)
    (programs / "paju-livelihood-2025/program.yaml").write_text(
        source.read_text().replace("quarantine_threshold: 0.01", "quarantine_threshold: 0.2")
    )
    first = run_flow(story, out, programs_dir=programs)
    # A forged part in the committed run's folder claims its unenrolled residents were paid.
    original = decisions_files(out, first.run_id)[0]
    unenrolled = pl.read_parquet(original).filter(pl.col("outcome") == "UNENROLLED")
    forged = unenrolled.with_columns(outcome=pl.lit("PAID"), amount_krw=pl.lit(100_000, pl.Int64))
    forged.write_parquet(original.with_name("part-forged.parquet"))
    shutil.move(held_back / "online.csv", story / "enrollments/enrollments_online.csv")
    second = run_flow(story, out, programs_dir=programs)
    # The ledger read only the file the run record lists: everyone owed was paid, once.
    assert paid_total(out) == 31_400_000
    assert first.total_paid_krw + second.total_paid_krw == 31_400_000


def write_birth_month(data: Path, month: str, registry_month: str | None = None) -> None:
    from tests.test_instalments import applications, snapshot

    (data / "registry").mkdir(parents=True)
    (data / "enrollments").mkdir(parents=True)
    snapshot(registry_month or month).write_csv(data / "registry/registry.csv")
    applications(month).write_csv(data / "enrollments/enrollments.csv")


def test_instalment_2_is_not_paid_on_the_application_that_paid_instalment_1(
    tmp_path: Path, pii_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    first = tmp_path / "2025-02"
    write_birth_month(first, "2025-02")
    paid = run_in_month(monkeypatch, first, out, "2025-02", program="paju-birth-2025")
    assert paid.counts["PAID"] == 6  # three children: registry and application rows
    # A year later the same applications come again (a CRLF copy) with the year's snapshot.
    later = tmp_path / "2026-02"
    (later / "registry").mkdir(parents=True)
    from tests.test_instalments import snapshot

    snapshot("2026-02").write_csv(later / "registry/registry.csv")
    shutil.copytree(first / "enrollments", later / "enrollments")
    redeliver(later)
    again = run_in_month(monkeypatch, later, out, "2026-02", program="paju-birth-2025")
    assert again.total_paid_krw == 0
    apps = decisions(out, again.run_id).filter(pl.col("source_kind") == "enrollment")
    assert set(apps["outcome"]) == {"INELIGIBLE"}
    reasons = apps["reason_codes"].list.first().to_list()
    assert "APPLICATION_PAID_EARLIER_INSTALMENT" in reasons


def test_instalment_2_needs_an_application_made_on_or_after_its_due_date(
    tmp_path: Path, pii_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    first = tmp_path / "2025-02"
    write_birth_month(first, "2025-02")
    run_in_month(monkeypatch, first, out, "2025-02", program="paju-birth-2025")
    # New applications (new ids) dated 2026-01, before instalment 2 falls due on 2026-02-01,
    # read by the 2026-02 run; and one made on the due month itself, which is paid.
    early = tmp_path / "2026-02"
    write_birth_month(early, "2026-02")
    frame = pl.read_csv(early / "enrollments/enrollments.csv", infer_schema=False)
    dated = pl.concat(
        [
            frame.with_columns(
                application_id=pl.col("application_id") + "E",
                applied_at=pl.lit("2026-01-31T23:00:00"),
            ),
            frame,
        ]
    )
    dated.write_csv(early / "enrollments/enrollments.csv")
    summary = run_in_month(monkeypatch, early, out, "2026-02", program="paju-birth-2025")
    apps = decisions(out, summary.run_id).filter(pl.col("source_kind") == "enrollment")
    early_apps = apps.filter(pl.col("application_id").str.ends_with("E"))
    assert set(early_apps["outcome"]) == {"INELIGIBLE"}
    # The family that stayed: early application refused, the one on the due month paid. (The
    # family that moved away fails the instalment's condition on both.)
    assert set(early_apps["reason_codes"].list.first()) == {
        "APPLIED_BEFORE_INSTALMENT_DUE",
        "INSTALMENT_CONDITION_FAILED",
    }
    on_time = apps.filter(~pl.col("application_id").str.ends_with("E"))
    assert on_time.filter(pl.col("outcome") == "PAID")["instalment"].to_list() == [2]


def test_a_run_month_after_the_current_month_in_seoul_is_bad_usage(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    today = dt.datetime.now(ZoneInfo("Asia/Seoul")).date()
    ahead = (today.replace(day=1) + dt.timedelta(days=32)).strftime("%Y-%m")
    with pytest.raises(UsageError, match=f"--run-month {ahead} is after the current month"):
        run_flow(story, tmp_path / "out", run_month=ahead)
    assert not (tmp_path / "out/audit").exists()
    assert UsageError.exit_code == 2


def owner_only(folder: Path) -> None:
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    files = [f for f in folder.iterdir() if f.name != "manifest.json"]
    assert files
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


@pytest.mark.parametrize("partitions", [None, 3])
def test_payment_files_with_payee_details_are_owner_only(
    story: Path, tmp_path: Path, pii_key: str, partitions: int | None
) -> None:
    summary = run_flow(story, tmp_path / "out", partitions=partitions)
    owner_only(tmp_path / "out/payments/paju-livelihood-2025" / summary.run_id)


def test_bank_payment_files_are_owner_only(bank_trail: BankTrail) -> None:
    owner_only(bank_trail.out / "payments/paju-livelihood-2025" / bank_trail.first)


def test_explain_by_rrn_with_another_key_says_so_instead_of_finding_nobody(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("JIWON_PII_KEY", TEST_KEY)
    run_flow(story, out)
    town = pl.read_csv(story / "registry/registry_town.csv", infer_schema=False)
    rrn = town["rrn"][0]
    monkeypatch.setenv("JIWON_PII_KEY", OTHER_KEY)
    result = CliRunner().invoke(app, ["audit", "explain", "--out", str(out), "--rrn", rrn])
    assert result.exit_code == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "JIWON_PII_KEY is not the key program paju-livelihood-2025's runs used" in line
    assert rrn not in result.stdout + result.stderr


def test_verify_names_a_committed_run_recorded_with_another_keys_fingerprint() -> None:
    from flows.audit.verify import key_problems

    base = {"status": "committed", "dry_run": False}
    runs = pl.DataFrame(
        [
            base | {"run_id": "r1", "key_fingerprint": "scrypt$n=32768,r=8,p=1$aa$11"},
            base | {"run_id": "r2", "key_fingerprint": "scrypt$n=32768,r=8,p=1$aa$11"},
            base | {"run_id": "r3", "key_fingerprint": "scrypt$n=32768,r=8,p=1$aa$22"},
            {"run_id": "r4", "status": "halted", "dry_run": False, "key_fingerprint": "x"},
        ]
    )
    problems = key_problems(runs, "p")
    assert len(problems) == 1 and problems[0].startswith("run r3 (p): committed with another")


def record_file(out: Path, run_id: str) -> Path:
    return next(out.glob(f"audit/runs/program=*/run_id={run_id}.parquet"))


def test_a_run_record_edited_to_drop_its_key_fingerprint_halts_the_next_run_with_another_key(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    monkeypatch.setenv("JIWON_PII_KEY", TEST_KEY)
    first = run_flow(story, out)
    path = record_file(out, first.run_id)
    table = pq.read_table(path)
    index = table.schema.get_field_index("key_fingerprint")
    pq.write_table(table.set_column(index, "key_fingerprint", pa.array([None], pa.string())), path)
    redeliver(story)
    monkeypatch.setenv("JIWON_PII_KEY", OTHER_KEY)
    with pytest.raises(RunHalted, match="the ledger cannot be trusted") as halted:
        run_flow(story, out)
    assert "was edited (its run_sha256 does not match its content)" in str(halted.value)
    assert paid_total(out) == 31_400_000
    assert runs(out).height == 1  # nothing is chained to a trail that cannot be trusted


def test_a_deleted_run_record_whose_decisions_remain_halts_the_next_run(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    first = run_flow(story, out)
    record_file(out, first.run_id).unlink()
    redeliver(story)
    with pytest.raises(
        RunHalted, match="holds decisions or results of a run or import that has no run record"
    ):
        run_flow(story, out)
    assert [p.name for p in out.glob("payments/*/*")] == [first.run_id]  # no second payment
    assert not list(out.glob("audit/runs/**/*.parquet"))  # nothing chained to such a trail


def test_a_deleted_run_record_in_the_middle_breaks_the_next_records_link(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    first = run_flow(story, out)
    redeliver(story)
    run_flow(story, out, dry_run=True)
    dry = runs(out)["run_id"][-1]
    record_file(out, first.run_id).unlink()
    for folder in out.glob(f"audit/decisions/program=*/run_month=*/run_id={first.run_id}"):
        shutil.rmtree(folder)
    with pytest.raises(RunHalted, match=f"run_id={dry}.parquet does not link to the run before"):
        run_flow(story, out)


def test_an_old_run_month_cannot_bring_instalment_2_forward(tmp_path: Path, pii_key: str) -> None:
    out = tmp_path / "out"
    first = tmp_path / "2025-02"
    write_birth_month(first, "2025-02")
    # Labelled with the program's first month but committed today: instalment 2 counts from today.
    run_flow(first, out, program="paju-birth-2025", run_month="2025-01")
    later = tmp_path / "later"
    write_birth_month(later, "2026-02")
    this_month = dt.datetime.now(ZoneInfo("Asia/Seoul")).strftime("%Y-%m")
    summary = run_flow(later, out, program="paju-birth-2025", run_month=this_month)
    assert summary.total_paid_krw == 0
    apps = decisions(out, summary.run_id).filter(pl.col("source_kind") == "enrollment")
    assert "PAID" not in set(apps["outcome"])


@pytest.mark.parametrize(
    ("month", "why"),
    [
        ("2024-11", "before the month of the program's reference date"),
        ("2025-02", "last committed"),
    ],
)
def test_a_run_month_before_the_program_or_its_last_committed_run_is_bad_usage(
    story: Path, tmp_path: Path, pii_key: str, month: str, why: str
) -> None:
    out = tmp_path / "out"
    run_flow(story, out, run_month="2025-03")
    redeliver(story)
    with pytest.raises(UsageError, match=why):
        run_flow(story, out, run_month=month)
    assert runs(out).height == 1
