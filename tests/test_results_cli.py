"""`jiwon results import` and `jiwon results status` as operators use them: exit statuses, one
line, never a traceback, and a file imported twice recorded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.results.simulate import simulate
from tests.support.approval import release_run
from tests.support.flowrun import run_flow, runs
from tests.test_cli import jiwon, last_line

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend")]
PROGRAM = "paju-livelihood-2025"


@pytest.fixture
def answered(story: Path, tmp_path: Path, pii_key: str) -> tuple[Path, list[Path]]:
    """A committed run of the story and the card operator's answer to it (rejections too)."""
    out = tmp_path / "out"
    first = run_flow(story, out)
    release_run(out, first.run_id)
    files = simulate(out / "payments" / PROGRAM / first.run_id, tmp_path / "replies", 0.1, 0.0, 3)
    return out, files


def test_results_import_records_the_answers_and_status_shows_them(
    answered: tuple[Path, list[Path]],
) -> None:
    out, files = answered
    code, printed, _ = jiwon("results", "import", *files, "--program", PROGRAM, "--out", out)
    assert code == 0, printed
    assert "results import " in printed and "SETTLED" in printed and "REJECTED" in printed
    assert "program page:" in printed
    code, printed, _ = jiwon("results", "status", "--program", PROGRAM, "--out", out)
    assert code == 0
    assert "settled" in printed and "owed again (the next run re-issues them): 31" in printed


def test_importing_a_file_twice_says_so_and_records_nothing(
    answered: tuple[Path, list[Path]],
) -> None:
    out, files = answered
    assert jiwon("results", "import", *files, "--program", PROGRAM, "--out", out)[0] == 0
    before = runs(out).height
    code, printed, _ = jiwon("results", "import", *files, "--program", PROGRAM, "--out", out)
    assert code == 0 and "nothing new to import" in printed and "imported before" in printed
    assert runs(out).height == before


@pytest.mark.parametrize(
    ("content", "fault"),
    [
        (b"", "is an empty result file"),
        (b"\x00\x01garbage", "is not a result file jiwon reads"),
        (b"<Document><nope/></Document>", "is XML but not a payment status report"),
    ],
    ids=["empty", "garbage", "other XML"],
)
def test_a_broken_result_file_exits_3_with_one_line_and_records_nothing(
    answered: tuple[Path, list[Path]], tmp_path: Path, content: bytes, fault: str
) -> None:
    out, files = answered
    bad = tmp_path / "bad_result.csv"
    bad.write_bytes(content)
    before = runs(out).height
    code, _, err = jiwon("results", "import", files[0], bad, "--program", PROGRAM, "--out", out)
    assert code == 3
    line = last_line(err)
    assert line.startswith("input rejected: bad_result.csv") and fault in line, line
    assert "Traceback" not in err
    assert runs(out).height == before


def test_results_import_without_a_trail_is_bad_usage(tmp_path: Path) -> None:
    result = tmp_path / "r.csv"
    result.write_text("payment_id,attempt,card_id,amount,status,reason_code,processed_at\n")
    code, _, err = jiwon("results", "import", result, "--program", PROGRAM, "--out", tmp_path)
    assert code == 2 and "no audit trail" in last_line(err)
