"""The `jiwon` command as operators use it: exit statuses and one-line messages."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.support.banktrail import BankTrail

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend")]
runner = CliRunner()


def jiwon(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def last_line(err: str) -> str:
    """The CLI's own one-line message: the last line of stderr (Prefect may log above it)."""
    return err.strip().splitlines()[-1]


def run_args(data: Path, out: Path) -> list[str | Path]:
    return [
        "run",
        "--program",
        "paju-livelihood-2025",
        "--registry",
        data / "registry",
        "--enrollments",
        data / "enrollments",
        "--out",
        out,
        "--run-month",
        "2025-03",
    ]


def test_run_prints_counts_total_and_where_the_files_are(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    code, out, _ = jiwon(*run_args(story, tmp_path / "out"))
    assert code == 0
    assert "[committed]" in out and "total paid: 31,400,000 won in 314 payments" in out
    assert "payments/paju-livelihood-2025/" in out and "quarantine" in out


def test_run_without_key_exits_2_with_one_line(
    story: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JIWON_PII_KEY", raising=False)
    code, _, err = jiwon(*run_args(story, tmp_path / "out"))
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("JIWON_PII_KEY is not set")


def test_run_on_a_broken_file_exits_3_naming_it(story: Path, tmp_path: Path, pii_key: str) -> None:
    (story / "enrollments/enrollments_online.csv").write_text("application_id\nA1\n")
    code, _, err = jiwon(*run_args(story, tmp_path / "out"))
    assert code == 3
    assert last_line(err).startswith(
        "input rejected: enrollments_online.csv, line 1: is missing the "
        "required column(s) applied_at (신청일시)"
    )


def test_run_of_an_unknown_program_exits_2_before_writing_anything(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    args = run_args(story, tmp_path / "out")
    args[args.index("paju-livelihood-2025")] = "paju-lottery"
    code, _, err = jiwon(*args)
    assert code == 2
    assert err.strip().splitlines() == [
        "unknown program 'paju-lottery'; known programs: consumption-coupon-2025, "
        "national-relief-2020, paju-birth-2025, paju-energy-2023, paju-livelihood-2025"
    ]
    assert not (tmp_path / "out").exists()


def test_run_into_an_output_root_that_cannot_be_created_exits_2_with_one_line(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    code, _, err = jiwon(*run_args(story, tmp_path / "a-file" / "out"))
    assert code == 2
    line = err.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("bad usage: cannot write the output root")
    assert line[0].endswith("pass --out a folder you may write to")


def test_rerun_without_reason_exits_2(story: Path, tmp_path: Path, pii_key: str) -> None:
    code, _, err = jiwon(*run_args(story, tmp_path / "out"), "--trigger", "rerun")
    assert code == 2 and "a rerun needs --reason" in err


def test_audit_verify_and_explain_after_a_run(story: Path, tmp_path: Path, pii_key: str) -> None:
    out = tmp_path / "out"
    assert jiwon(*run_args(story, out))[0] == 0
    code, text, _ = jiwon("audit", "verify", "--out", out)
    assert code == 0 and "1 run(s) checked" in text
    code, text, _ = jiwon("audit", "explain", "--out", out, "--rrn", "９００４０４－２２２２２２４")
    assert code == 0
    assert "PAID 100,000 won by run" in text and "PROXY_ADULT_ONLINE" in text
    assert "9004042222224" not in text and "900404-2******" in text
    (next(out.glob("payments/*/*/manifest.json"))).write_text("{}")
    code, _, err = jiwon("audit", "verify", "--out", out)
    assert code == 1 and "manifest.json was changed" in last_line(err)
    assert "restore the named files from backup" in last_line(err)


def test_audit_explain_prints_the_whole_person_key_and_names_the_key_when_nothing_matches(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    assert jiwon(*run_args(story, out))[0] == 0
    code, text, _ = jiwon("audit", "explain", "--out", out, "--rrn", "900404-2222224")
    printed = text.split("person_key ")[1].split()[0]
    decisions = pl.read_parquet(out / "audit/decisions/**/*.parquet", hive_partitioning=False)
    assert code == 0 and decisions.filter(pl.col("person_key") == printed).height >= 2
    code, text, _ = jiwon("audit", "explain", "--out", out, "--rrn", "010101-3000000")
    assert code == 0 and "No committed decision mentions this RRN" in text
    assert "JIWON_PII_KEY" in text


def test_audit_verify_of_a_folder_without_a_trail_exits_2_with_one_line(tmp_path: Path) -> None:
    code, _, err = jiwon("audit", "verify", "--out", tmp_path / "nothing-here")
    assert code == 2
    assert err.strip().splitlines() == [
        f"no audit trail under {tmp_path / 'nothing-here'}: pass the output root of earlier runs"
    ]


def test_fixtures_generate_writes_registry_and_enrollments(tmp_path: Path) -> None:
    code, _text, _ = jiwon(
        "fixtures", "generate", "--rows", "300", "--out", tmp_path, "--encoding", "cp949"
    )
    assert code == 0
    assert list((tmp_path / "registry").glob("*.csv"))
    assert list((tmp_path / "enrollments").glob("*.csv"))
    assert "주민등록번호" in next((tmp_path / "registry").glob("*.csv")).read_bytes().decode(
        "cp949"
    )


def test_run_with_an_unknown_bank_file_format_exits_2_naming_the_choices(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    code, _, err = jiwon(*run_args(story, tmp_path / "out"), "--bank-file", "xml")
    assert code == 2
    assert last_line(err).startswith("bad usage: bank_file:") and "pain.001" in err
    assert not (tmp_path / "out/audit").exists()


@pytest.mark.parametrize(
    ("typed", "shown", "problem"),
    [
        ("not-an-rrn", "'not-an-rrn'", "holds characters other than digits"),
        ("900404-222222", "'900404-******'", "has 12 digits, not 13"),
        ("900404-22222245", "'900404-********'", "has 14 digits, not 13"),
    ],
)
def test_audit_explain_of_a_malformed_rrn_exits_2_saying_what_is_wrong(
    bank_trail: BankTrail, pii_key: str, typed: str, shown: str, problem: str
) -> None:
    code, text, err = jiwon("audit", "explain", "--out", bank_trail.out, "--rrn", typed)
    assert code == 2 and text == ""
    [line] = err.strip().splitlines()
    assert line.startswith(f"bad usage: --rrn {shown} is not a resident registration number")
    assert problem in line and "No committed decision" not in line


def test_audit_explain_judges_an_rrn_by_its_date_not_its_check_digit(
    bank_trail: BankTrail, pii_key: str
) -> None:
    code, _, err = jiwon("audit", "explain", "--out", bank_trail.out, "--rrn", "901345-1234567")
    assert code == 2
    [line] = err.strip().splitlines()
    assert "'901345-*******'" in line and "not a real birth date" in line
    assert "1234567" not in line
    # Numbers issued since 2020-10-05 have no valid check digit: a mismatch is still looked up.
    code, text, _ = jiwon("audit", "explain", "--out", bank_trail.out, "--rrn", "900404-2222225")
    assert code == 0 and "No committed decision mentions this RRN" in text
    assert "2222225" not in text


def test_an_input_rejection_is_logged_without_a_python_traceback(
    story: Path, tmp_path: Path, pii_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    (story / "enrollments" / "old").mkdir()
    code, _, err = jiwon(*run_args(story, tmp_path / "out"))
    assert code == 3 and last_line(err).startswith("input rejected:")
    logged = [r for r in caplog.records if r.name.startswith("prefect.")]
    assert logged and not any(r.exc_info or r.exc_text for r in logged)
    assert "Traceback" not in err


def test_a_rerun_without_a_reason_and_a_malformed_month_say_what_to_give(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    code, _, err = jiwon(*run_args(story, tmp_path / "out"), "--trigger", "rerun")
    assert code == 2
    assert last_line(err) == "bad usage: a rerun needs --reason: say why it is run again"
    args = [a if a != "2025-03" else "2025-13" for a in run_args(story, tmp_path / "out")]
    code, _, err = jiwon(*args)
    assert code == 2
    assert (
        last_line(err)
        == "bad usage: --run-month '2025-13' is not a month: give it as YYYY-MM (e.g. 2025-03)"
    )
