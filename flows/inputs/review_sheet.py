"""The review sheet an officer fills in: written as XLSX and CSV, read back from either (18).

Each column's title is Korean with the English name beside it (`신청번호 (application_id)`);
reading keys columns by the English name in the last brackets (a bare English name works too).
The program id is in every row (`program`) and, in the XLSX, a custom document property, so a
file edited into another program is refused. A formula is never evaluated: a cell stored as one,
or a text cell starting with `=`, `+`, `-` or `@` (after spaces, and once normalised: see
`flows.audit.reviews.plain`), is reported (`formula`) for the import to refuse. CSV is UTF-8
with a BOM (Excel opens Hangul right); one re-saved as CP949 still reads. An XLSX is read
streaming (read-only), at most `len(COLUMNS)` columns and `MAX_ROWS` rows: a workbook whose
sheet claims more is refused before a cell is read.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from flows.audit.reviews import plain
from flows.errors import InputRejected
from flows.i18n import _
from flows.pay.credit import FORMULA_START, formula_safe

# (English name, Korean title) of the sheet's columns, in order; the last four are the officer's.
COLUMNS = (
    ("program", "사업 ID"),
    ("application_id", "신청번호"),
    ("rrn_masked", "주민등록번호(마스킹)"),
    ("name_masked", "성명(마스킹)"),
    ("held_reason", "보류 사유 코드"),
    ("needs", "확인할 사항"),
    ("source_file", "신청 파일"),
    ("source_row", "신청 행"),
    ("held_by_run", "보류한 실행"),
    ("recorded_decision", "기록된 결정"),
    ("recorded_review", "기록된 결정 ID"),
    ("decision", "결정: approve 승인 / reject 반려"),
    ("reason", "사유"),
    ("officer", "담당자"),
    ("revises", "수정하는 결정 ID"),
)
OFFICER_COLUMNS = ("decision", "reason", "officer", "revises")
REQUIRED = ("program", "application_id", "decision", "reason", "officer")
# What a sheet's line carries into the import's checks (flows.audit.reviews.check_lines).
LINE_COLUMNS = ("program", "application_id", "decision", "reason", "officer", "revises")
PROGRAM_PROPERTY = "jiwon.program"
SHEET = "review"
# Rows a review sheet may have (header included): a city's queue is a few thousand at most.
MAX_ROWS = 200_000


def title(name: str, korean: str) -> str:
    """Return a column's title: Korean, then the English name in brackets."""
    return f"{korean} ({name})"


def column_name(header: object) -> str:
    """Return the English name of a column title (the last bracketed word, or the title)."""
    text = str(header or "").strip()
    found = re.search(r"\(([A-Za-z_]+)\)\s*$", text)
    return (found.group(1) if found else text).lower()


def sheet_frame(queue: pl.DataFrame) -> pl.DataFrame:
    """Return the queue with its columns titled, text a spreadsheet would run made inert."""
    text = [n for n, _ in COLUMNS if queue.schema[n] == pl.String]
    safe = queue.select(n for n, _ in COLUMNS).with_columns(formula_safe(c) for c in text)
    return safe.rename({n: title(n, k) for n, k in COLUMNS})


def write_csv(queue: pl.DataFrame, path: Path) -> None:
    """Write the queue as CSV, UTF-8 with a BOM."""
    path.write_bytes(b"\xef\xbb\xbf" + sheet_frame(queue).write_csv().encode("utf-8"))


def write_xlsx(queue: pl.DataFrame, path: Path, program: str) -> None:
    """Write the queue as one XLSX sheet, the officer's columns offered as lists where fixed."""
    from openpyxl import Workbook
    from openpyxl.packaging.custom import StringProperty
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    frame = sheet_frame(queue)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = SHEET
    sheet.append(frame.columns)
    for row in frame.iter_rows():
        sheet.append(list(row))
    officer = PatternFill("solid", fgColor="FFF2CC")
    for index, (name, _kind) in enumerate(COLUMNS, start=1):
        cell = sheet.cell(row=1, column=index)
        cell.font = Font(bold=True)
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = 16 if name != "needs" else 60
        if name in OFFICER_COLUMNS:
            cell.fill = officer
        if name == "decision" and frame.height:
            choice = DataValidation(type="list", formula1='"approve,reject,승인,반려"')
            choice.add(f"{letter}2:{letter}{frame.height + 1}")
            sheet.add_data_validation(choice)
    sheet.freeze_panes = "C2"
    props = book.custom_doc_props  # type: ignore[attr-defined]  # (types-openpyxl lags)
    props.append(StringProperty(name=PROGRAM_PROPERTY, value=program))
    book.save(path)


def blank(value: object) -> str | None:
    """Return a cell's text stripped, None when empty."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


Cells = Sequence[tuple[object, bool]]  # a row's cells: (value, stored as a formula)


def formula_in(names: list[str], cells: Cells) -> str | None:
    """Return the first column whose cell is a formula, or text a spreadsheet would run."""
    for name, (value, stored_as_formula) in zip(names, cells, strict=False):
        text = plain(value) if isinstance(value, str) else ""
        if stored_as_formula or (isinstance(value, str) and value.startswith(FORMULA_START)):
            return name
        if text.startswith(FORMULA_START):
            return name
    return None


def lines_frame(file: str, names: list[str], rows: Sequence[tuple[int, Cells]]) -> pl.DataFrame:
    """Return a sheet's non-blank rows (line, LINE_COLUMNS, formula), refusing a bad header."""
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise InputRejected(
            file,
            _("has no column {value} (the review sheet's columns were removed or renamed)").format(
                value=missing[0]
            ),
            _(
                "Export the queue again with `jiwon review export` and fill in "
                "that file; nothing of this sheet was recorded."
            ),
            line=1,
        )
    found: dict[str, list[object]] = {c: [] for c in ("line", "formula", *LINE_COLUMNS)}
    for line, cells in rows:
        if all(blank(v) is None for v, _ in cells):
            continue
        found["line"].append(line)
        found["formula"].append(formula_in(names, cells))
        by_name = dict(zip(names, cells, strict=False))
        for column in LINE_COLUMNS:
            found[column].append(blank(by_name.get(column, (None, False))[0]))
    schema = {"line": pl.Int64, "formula": pl.String} | dict.fromkeys(LINE_COLUMNS, pl.String)
    return pl.DataFrame(found, schema=schema)


def not_a_workbook(file: str, error: Exception) -> InputRejected:
    """Return the refusal of a file named .xlsx that openpyxl cannot read."""
    return InputRejected(
        file,
        _("is not an XLSX workbook jiwon can read ({name})").format(name=type(error).__name__),
        _(
            "Save the sheet as .xlsx (Excel workbook) or .csv and import it "
            "again; nothing of this sheet was recorded."
        ),
    )


def read_xlsx(path: Path) -> tuple[pl.DataFrame, str | None]:
    """Return an XLSX sheet's lines and the program named in its document properties."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=False)
    except Exception as e:  # openpyxl raises many kinds for a file that is not a workbook
        raise not_a_workbook(path.name, e) from None
    try:
        sheet = book[SHEET] if SHEET in book.sheetnames else book.worksheets[0]
        rows = sheet_rows(path.name, sheet)
        props = book.custom_doc_props.props  # type: ignore[attr-defined]
        named = {p.name: p.value for p in props}
    except InputRejected:
        raise
    except Exception as e:  # a damaged sheet fails while it is read (read-only streams it)
        raise not_a_workbook(path.name, e) from None
    finally:
        book.close()
    names = [column_name(c.value) for c in rows[0]] if rows else []
    cells: list[tuple[int, Cells]] = [
        (index, [(c.value, c.data_type == "f") for c in row])
        for index, row in enumerate(rows[1:], start=2)
    ]
    program = named.get(PROGRAM_PROPERTY)
    return lines_frame(path.name, names, cells), str(program) if program else None


def sheet_rows(file: str, sheet: Any) -> list[tuple[Any, ...]]:
    """Return a read-only sheet's rows, refusing one larger than a review sheet can be.

    The size the sheet claims (its dimension) is checked first; then at most `len(COLUMNS)`
    columns of each row are read, and reading stops at the end of the sheet's data or past
    `MAX_ROWS` (a sheet that claims less than it holds still cannot make jiwon read more).
    """
    from openpyxl.utils import get_column_letter

    columns, rows = sheet.max_column or 0, sheet.max_row or 0
    if columns > len(COLUMNS):
        raise InputRejected(
            file,
            _(
                "has cells up to column {get_column_letter}, past the review "
                "sheet's {len} columns (a sheet too large)"
            ).format(get_column_letter=get_column_letter(columns), len=len(COLUMNS)),
            _(
                "Delete the cells right of the last column (revises), or export "
                "the queue again with `jiwon review export`; nothing of this "
                "sheet was recorded."
            ),
        )
    if rows > MAX_ROWS:
        raise InputRejected(
            file,
            _("has more than {max_rows:,} rows (the cap on a review sheet's rows)").format(
                max_rows=MAX_ROWS
            ),
            _(
                "Delete the rows below the exported queue, or export the queue "
                "again with `jiwon review export`; nothing of this sheet was "
                "recorded."
            ),
        )
    found: list[tuple[Any, ...]] = []
    for row in sheet.iter_rows(max_col=len(COLUMNS), max_row=MAX_ROWS + 1):
        if len(found) == MAX_ROWS:  # the dimension claimed fewer rows than the sheet holds
            raise InputRejected(
                file,
                _("has more than {max_rows:,} rows (the cap on a review sheet's rows)").format(
                    max_rows=MAX_ROWS
                ),
                _(
                    "Delete the rows below the exported queue, or export the queue "
                    "again with `jiwon review export`; nothing of this sheet was "
                    "recorded."
                ),
            )
        found.append(row)
    return found


def read_csv(path: Path) -> pl.DataFrame:
    """Return a CSV sheet's lines (UTF-8, with or without a BOM; CP949 if not UTF-8)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp949", errors="replace")
    try:
        frame = pl.read_csv(io.StringIO(text), infer_schema=False, has_header=True)
    except pl.exceptions.PolarsError as e:
        raise InputRejected(
            path.name,
            _("is not a CSV review sheet jiwon can read ({name})").format(name=type(e).__name__),
            _(
                "Save the sheet as .xlsx (Excel workbook) or .csv and import it "
                "again; nothing of this sheet was recorded."
            ),
        ) from None
    names = [column_name(c) for c in frame.columns]
    cells = [
        (index, [(v, False) for v in row]) for index, row in enumerate(frame.iter_rows(), start=2)
    ]
    return lines_frame(path.name, names, cells)


def read_sheet(path: Path) -> tuple[pl.DataFrame, str | None]:
    """Return a review sheet's lines and its program (the XLSX property; None from a CSV)."""
    if path.suffix.lower() == ".xlsx":
        return read_xlsx(path)
    return read_csv(path), None
