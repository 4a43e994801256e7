"""The quarantine report an operator opens: every failed check, unknown columns kept, Excel-safe."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from flows.checks import validate
from flows.inputs.ingest import read_delivery
from flows.run.flow import quarantine_csv
from rules.program import load_program
from rules.reference import vocabulary
from schemas.registry import registry_schema

PROGRAM = load_program("paju-livelihood-2025")
HEADER = (
    "rrn,name,birth_date,household_id,relation,admin_code,address,registered_on,status,"
    "nationality,visa_type,as_of,비고"
)
ROWS = [
    "7503121123458,김민수,1975-03-12,1,본인,4148057000,주소,2019-03-01,거주,내국인,,2024-12-26,전입",
    "7807012234567,이지은,1978-07-01,1,배우자,1168010100,주소,2019-03-01,=1+2,내국인,,"
    "2024-12-26,-확인 필요",
]


def report_for(tmp_path: Path) -> pl.DataFrame:
    path = tmp_path / "registry_a.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    delivery = read_delivery([path], "registry")
    schema = registry_schema(PROGRAM.admin_codes(), vocabulary())
    return validate.validate_registry(delivery, schema, vocabulary(), PROGRAM.reference_date, True)[
        1
    ]


def test_report_names_file_row_column_value_reason_and_messages(tmp_path: Path) -> None:
    report = report_for(tmp_path)
    failure = report.filter(pl.col("reason_code") == "ADMIN_CODE_UNKNOWN").row(0, named=True)
    assert failure["source_file"] == "registry_a.csv" and failure["source_row"] == 2
    assert (failure["column"], failure["value"]) == ("admin_code", "1168010100")
    assert failure["message_ko"] == "행정동코드가 이 시의 코드가 아님"
    assert failure["message_en"].startswith("admin_code is not one of")
    assert failure["extra_columns"] == '{"비고":"-확인 필요"}'


def test_report_lists_each_unknown_column_once_as_ignored(tmp_path: Path) -> None:
    report = report_for(tmp_path)
    ignored = report.filter(pl.col("reason_code") == "COLUMN_IGNORED")
    assert ignored.select("source_file", "source_row", "column").rows() == [
        ("registry_a.csv", None, "비고")
    ]


def test_report_csv_opens_in_excel_without_running_formulas(tmp_path: Path) -> None:
    content = quarantine_csv(report_for(tmp_path))
    assert content.startswith(b"\xef\xbb\xbf")
    back = pl.read_csv(io.BytesIO(content[3:]), infer_schema=False)
    assert back.columns == list(validate.QUARANTINE_SCHEMA)
    cells = [v for row in back.rows() for v in row if v]
    assert not [c for c in cells if c[0] in "=+-@"], "a cell Excel would run as a formula"
    assert "'=1+2" in cells  # the offending status value, defused
