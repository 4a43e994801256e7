"""Every file of the bad-file corpus (fixtures/bad/) gets exactly the result expected.yaml states.

Each case is delivered alone, as the registry or the enrollments of paju-livelihood-2025, through
the real reader and validation (and, for household warnings, the decision stage). The refused
files also go end to end through `jiwon run`: exit status and one-line message.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from flows.checks import validate
from flows.cli import app
from flows.decide.rules import decide
from flows.errors import InputRejected, JiwonError, RunHalted
from flows.inputs.ingest import Kind, list_delivery, read_delivery
from rules.program import load_program
from rules.reference import bank_codes, vocabulary
from schemas.enrollment import enrollment_schema
from schemas.registry import registry_schema
from tests.conftest import STORY
from tests.support.frames import context

BAD = Path(__file__).resolve().parents[1] / "fixtures" / "bad"
CASES: list[dict[str, Any]] = yaml.safe_load((BAD / "expected.yaml").read_text(encoding="utf-8"))
PROGRAM = load_program("paju-livelihood-2025")
KIND: dict[str, Kind] = {"registry": "registry", "enrollments": "enrollment"}
REFUSED = [c for c in CASES if "exit" in c]
ROWS = [c for c in CASES if "exit" not in c]


def case_id(case: dict[str, Any]) -> str:
    return str(case["file"])


def deliver(case: dict[str, Any], root: Path) -> tuple[Kind, Path]:
    """Copy the case's file alone into a delivery folder; return its kind and the folder."""
    folder_name, name = case["file"].split("/")
    folder = root / folder_name
    folder.mkdir(parents=True)
    shutil.copy(BAD / folder_name / name, folder / name)
    return KIND[folder_name], folder


def check(kind: Kind, folder: Path, gate: bool = True) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read and validate one delivery as a run does; `gate` adds the quarantine-rate gate."""
    delivery = read_delivery(list_delivery(folder, kind), kind)
    if kind == "registry":
        schema = registry_schema(PROGRAM.admin_codes(), vocabulary())
        checked, report = validate.validate_registry(
            delivery, schema, vocabulary(), PROGRAM.reference_date, True
        )
    else:
        checked, report = validate.validate_enrollments(
            delivery, enrollment_schema(bank_codes(), vocabulary())
        )
    if gate:
        validate.check_quarantine_rate(delivery, checked, PROGRAM.quarantine_threshold)
    return checked, report


def test_the_corpus_has_thirty_distinct_bad_files_each_with_one_expectation() -> None:
    files = sorted(
        f"{p.parent.name}/{p.name}"
        for d in ("registry", "enrollments")
        for p in (BAD / d).iterdir()
    )
    listed = [c["file"] for c in CASES]
    assert sorted(listed) == files, "every corpus file needs exactly one case in expected.yaml"
    assert len(set(listed)) == len(listed) >= 30
    contents = {(BAD / f).read_bytes() for f in files}
    assert len(contents) == len(files), "two corpus files have the same bytes"
    for case in CASES:
        outcomes = {"exit", "accepted", "reason", "warning"} & set(case)
        assert len(outcomes) == 1 and case.get("why"), case


@pytest.mark.parametrize("case", REFUSED, ids=case_id)
def test_refused_file_stops_the_run_with_its_exit_status_and_one_line_message(
    case: dict[str, Any], tmp_path: Path
) -> None:
    kind, folder = deliver(case, tmp_path)
    with pytest.raises(JiwonError) as caught:
        check(kind, folder)
    error = caught.value
    message = str(error)
    assert error.exit_code == case["exit"], message
    assert "\n" not in message
    assert case["message"] in message
    name = case["file"].split("/")[1]
    if case["exit"] == 3:
        assert isinstance(error, InputRejected)
        assert message.startswith(f"input rejected: {name}") or name in error.file
        assert error.action and message.endswith(error.action)  # says what to do
    else:
        assert isinstance(error, RunHalted)
        assert message.startswith("run halted:") and "Fix the rows" in message


@pytest.mark.parametrize("case", ROWS, ids=case_id)
def test_row_level_file_gives_each_row_its_expected_outcome(
    case: dict[str, Any], tmp_path: Path
) -> None:
    kind, folder = deliver(case, tmp_path)
    checked, report = check(kind, folder, gate=False)  # one bad row of four: above 1 %
    name = case["file"].split("/")[1]
    if "accepted" in case:
        assert checked.height == case["accepted"]
        assert checked["reason_codes"].to_list() == [[]] * checked.height
    if "reason" in case:
        quarantined = checked.filter(pl.col("quarantined"))
        assert quarantined["source_row"].to_list() == [case["row"]]
        assert case["reason"] in quarantined["reason_codes"][0]
        line = report.filter(pl.col("reason_code") == case["reason"]).row(0, named=True)
        assert (line["source_file"], line["source_row"], line["column"]) == (
            name,
            case["row"],
            case["column"],
        )
        assert line["message_ko"] and line["message_en"]
    if "warning" in case:
        warned = warnings_after_decide(kind, checked)
        assert warned[case["row"]] == [case["warning"]] or case["warning"] in warned[case["row"]]
        assert not checked["quarantined"].any()
    for column in case.get("ignored", []):
        line = report.filter(pl.col("column") == column).row(0, named=True)
        assert line["reason_code"] == "COLUMN_IGNORED" and line["source_file"] == name


def warnings_after_decide(kind: Kind, checked: pl.DataFrame) -> dict[int, list[str]]:
    """Return each registry row's warning codes after the decision stage (household checks)."""
    assert kind == "registry"
    nobody_enrolled = validate.validate_enrollments(
        read_delivery(list_delivery(STORY / "enrollments", "enrollment"), "enrollment"),
        enrollment_schema(bank_codes(), vocabulary()),
    )[0].head(0)
    paid = pl.DataFrame(schema={"person_key": pl.String})
    registry = decide(checked, nobody_enrolled, paid, context()).registry
    return dict(zip(registry["source_row"], registry["warning_codes"].to_list(), strict=True))


runner = CliRunner()
# About 2 s each through Prefect: these run by default, every other refused case with --runslow.
CLI_DEFAULT = {
    "registry/not_utf8_nor_cp949.csv",
    "enrollments/excel_bank_code_lost_zeros.csv",
    "registry/too_many_bad_rows.csv",
}
CLI_CASES = [
    pytest.param(c, id=case_id(c), marks=() if c["file"] in CLI_DEFAULT else pytest.mark.slow)
    for c in REFUSED
]


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_backend", "pii_key")
@pytest.mark.parametrize("case", CLI_CASES)
def test_jiwon_run_on_a_refused_file_exits_with_its_status_and_prints_one_line(
    case: dict[str, Any], tmp_path: Path
) -> None:
    kind, _ = deliver(case, tmp_path / "data")
    other = "enrollments" if kind == "registry" else "registry"
    shutil.copytree(STORY / other, tmp_path / "data" / other)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "run",
            "--program",
            PROGRAM.id,
            "--registry",
            str(tmp_path / "data" / "registry"),
            "--enrollments",
            str(tmp_path / "data" / "enrollments"),
            "--out",
            str(out),
            "--run-month",
            "2025-03",
        ],
    )
    assert result.exit_code == case["exit"], result.stderr
    last = result.stderr.strip().splitlines()[-1]  # Prefect's own log lines come before it
    assert case["message"] in last
    assert last.startswith("input rejected:" if case["exit"] == 3 else "run halted:")
    assert not list(out.glob("payments/**/*.csv")), "nothing may be paid from a refused run"
    assert len(list(out.glob("audit/runs/**/*.parquet"))) == 1, "the run record says why"
    assert not list(out.glob("audit/decisions/**/*.parquet"))
