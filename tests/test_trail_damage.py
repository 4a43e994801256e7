"""A damaged Parquet file in the audit trail: every command answers in one line naming it.

`truncate -s 100` of a run record or of a decisions file (a disk fault, a copy cut short) must
never end in a traceback. `jiwon audit verify` lists it as one more broken part of the trail
(exit 1), `jiwon audit explain` refuses to answer from a trail it cannot read and `jiwon run`
halts before it pays (exit 4), both saying which file and to restore it rather than delete it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.errors import TrailDamaged
from tests.conftest import TEST_KEY
from tests.support import processes
from tests.support.banktrail import BankTrail, copy_trail
from tests.support.flowrun import run_flow

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend")]
PROGRAM = "paju-livelihood-2025"
runner = CliRunner()


def jiwon(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(params=["run record", "decisions file"])
def damaged(
    request: pytest.FixtureRequest, bank_trail: BankTrail, tmp_path: Path
) -> tuple[Path, str]:
    """A copy of the shared two-run trail, its first run record or decisions cut to 100 bytes."""
    out = tmp_path / "out"
    copy_trail(bank_trail.out, out)
    if request.param == "run record":
        path = out / "audit/runs" / f"program={PROGRAM}" / f"run_id={bank_trail.first}.parquet"
    else:
        path = next(out.glob(f"audit/decisions/**/run_id={bank_trail.first}/*.parquet"))
    os.truncate(path, 100)
    return out, str(path.relative_to(out))


def test_audit_verify_lists_a_damaged_trail_file_as_a_failure_naming_it(
    damaged: tuple[Path, str],
) -> None:
    out, name = damaged
    code, text, err = jiwon("audit", "verify", "--out", out)
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert name in err and "restore the named files from backup" in err
    assert "Traceback" not in text + err
    assert any(name in line and "not a readable Parquet file" in line for line in text.splitlines())


def test_audit_explain_on_a_damaged_trail_file_halts_in_one_line_naming_it(
    damaged: tuple[Path, str], pii_key: str
) -> None:
    out, name = damaged
    code, text, err = jiwon("audit", "explain", "--out", out, "--rrn", "900404-2222224")
    assert code == 4
    assert text == ""
    assert len(err.strip().splitlines()) == 1, err
    assert name in err and "Restore the file from backup" in err and "do not delete it" in err


def test_run_on_a_damaged_trail_file_halts_in_one_line_naming_it_before_paying(
    damaged: tuple[Path, str], bank_trail: BankTrail, pii_key: str
) -> None:
    out, name = damaged
    before = sorted(p.relative_to(out) for p in out.rglob("*") if ".staging" not in p.parts)
    story = bank_trail.story
    code, _, err = jiwon(
        "run",
        "--program",
        PROGRAM,
        "--registry",
        story / "registry",
        "--enrollments",
        story / "enrollments",
        "--out",
        out,
        "--run-month",
        "2025-05",
        "--programs-dir",
        story / "programs",
    )
    assert code == 4
    assert len(err.strip().splitlines()) == 1, err
    line = err.strip()
    assert line.startswith("audit trail damaged: ") and name in line
    assert "Restore the file from backup" in line and "do not delete it" in line
    after = sorted(p.relative_to(out) for p in out.rglob("*") if ".staging" not in p.parts)
    assert [p for p in after if p not in before and p.parts[0] != ".locks"] == []


def test_run_as_a_process_on_a_damaged_trail_prints_only_its_one_line(
    damaged: tuple[Path, str], bank_trail: BankTrail, tmp_path: Path
) -> None:
    out, name = damaged
    story = bank_trail.story
    args = processes.run_args(story, out, "--programs-dir", str(story / "programs"))
    code, text, err = processes.finish(
        processes.start(args, processes.env(TEST_KEY, tmp_path / "home")), timeout=120
    )
    assert code == 4 and text == ""
    [line] = err.splitlines()
    assert line.startswith("audit trail damaged: ") and name in line


def test_the_flow_itself_halts_on_a_damaged_trail_without_writing_a_run_record(
    damaged: tuple[Path, str], bank_trail: BankTrail, pii_key: str
) -> None:
    """A deployment (`jiwon serve`) calls the flow without the CLI's check: it halts the same."""
    out, name = damaged
    records = sorted(out.glob("audit/runs/**/*.parquet"))
    story = bank_trail.story
    with pytest.raises(TrailDamaged) as halted:
        run_flow(story, out, run_month="2025-05", programs_dir=story / "programs")
    assert halted.value.file == name and halted.value.exit_code == 4
    assert sorted(out.glob("audit/runs/**/*.parquet")) == records
    assert not (out / ".staging").exists() or not any((out / ".staging").iterdir())


def test_audit_explain_on_a_decisions_file_damaged_inside_halts_in_one_line_naming_it(
    bank_trail: BankTrail, tmp_path: Path, pii_key: str
) -> None:
    """Zeros in the middle of a file leave its footer readable: the data pages fail instead."""
    out = tmp_path / "out"
    copy_trail(bank_trail.out, out)
    path = next(out.glob(f"audit/decisions/**/run_id={bank_trail.first}/*.parquet"))
    data = bytearray(path.read_bytes())
    third = len(data) // 3
    data[third : third + 2000] = bytes(2000)
    path.write_bytes(bytes(data))
    code, text, err = jiwon("audit", "explain", "--out", out, "--rrn", "900404-2222224")
    assert code == 4, err
    assert text == "" and len(err.strip().splitlines()) == 1, err
    assert str(path.relative_to(out)) in err and "Traceback" not in err
