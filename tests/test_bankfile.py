"""The bank bulk-transfer file: exact bytes, CP949 widths, control totals, and a reader."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.inputs import reference
from flows.pay import bankfile
from flows.pay.bankfile import BankFileError, BankSettings, Field

GOLDEN = Path(__file__).parent / "golden"
LAYOUT = reference.load_layout("kr_bulk_transfer_default")
SETTINGS = BankSettings("파주시", "011", "3010123456781", LAYOUT)
RUN_ID = "20250301T000000Z-abcdef12"
DAY = dt.date(2025, 3, 1)
MEMO = "파주시 민생회복 생활안정지원금"
NAMES = [
    "김민수",  # plain Hangul: 6 bytes, padded to 20
    "A가나다라마바사아자차",  # 21 bytes: the 10th Hangul would straddle byte 20, so it is dropped
    "가나다라마바사아자차카",  # 22 bytes: cut to exactly 10 characters
    "Nguyễn Thị Lan",  # ễ and ị are not in CP949: each becomes ?
    "ＰＡＲＫ　지성",  # full-width Latin and space: NFKC makes them ASCII
    "이\t름",  # a control character becomes a space
]


def payees(names: list[str] = NAMES, amounts: list[int] | None = None) -> pl.DataFrame:
    n = len(names)
    return pl.DataFrame(
        {
            "payment_file": ["bank_0001.dat"] * n,
            "seq": list(range(1, n + 1)),
            "bank_code": ["004", "088", "090", "011", "020", "081"][:n],
            "account_no": [f"{12345678901 + i * 1111111}" for i in range(n)],
            "amount_krw": amounts or [100_000] * n,
            "account_holder": names,
            "payment_id": [f"JW{chr(65 + i) * 22}" for i in range(n)],
        }
    )


def written(frame: pl.DataFrame | None = None) -> bytes:
    rows = bankfile.data_rows(payees() if frame is None else frame, MEMO)
    return bankfile.bank_files(rows, SETTINGS, RUN_ID, DAY)[0].content


def records(content: bytes) -> list[bytes]:
    return content.split(b"\r\n")[:-1]


def test_bank_file_matches_the_golden_file_byte_for_byte() -> None:
    golden = GOLDEN / "bank_kr_bulk_transfer_default.dat"
    if os.environ.get("JIWON_UPDATE_GOLDEN"):
        golden.write_bytes(written())
    assert written() == golden.read_bytes()


def test_bank_file_records_are_100_bytes_of_cp949_each_ending_in_crlf() -> None:
    content = written()
    assert content.endswith(b"\r\n")
    lines = records(content)
    assert [len(line) for line in lines] == [100] * (len(NAMES) + 2)
    assert [line[:1] for line in lines] == [b"H"] + [b"D"] * len(NAMES) + [b"T"]
    content.decode("cp949")  # every byte sequence is valid CP949


def test_bank_file_pads_and_cuts_holder_names_by_bytes_at_character_boundaries() -> None:
    names = [line[39:59] for line in records(written())[1:-1]]
    assert names[0] == "김민수".encode("cp949") + b" " * 14
    assert names[1] == "A가나다라마바사아자".encode("cp949") + b" "  # 19 bytes + 1 space
    assert names[2] == "가나다라마바사아자차".encode("cp949")  # exactly 20 bytes
    assert names[3] == b"Nguy?n Th? Lan      "
    assert names[4] == "PARK 지성".encode("cp949") + b" " * 11
    assert names[5] == "이 름".encode("cp949") + b" " * 15


def test_bank_file_right_aligns_zero_padded_amounts_and_left_aligns_accounts() -> None:
    line = records(written(payees(NAMES[:1], [7_500])))[1]
    assert line[26:39] == b"0000000007500"
    assert line[1:9] == b"00000001"
    assert line[12:26] == b"12345678901   "
    assert line[83:96] == "파주시 민생회".encode("cp949")  # memo cut at 13 bytes
    assert line[96:99] == b"001"  # attempt 1: payees without an attempt column are first tries


def test_bank_file_carries_each_payees_attempt_zero_padded_and_reads_it_back() -> None:
    frame = payees(NAMES[:3]).with_columns(attempt=pl.Series([1, 2, 12], dtype=pl.Int64))
    content = written(frame)
    assert [line[96:99] for line in records(content)[1:-1]] == [b"001", b"002", b"012"]
    assert bankfile.read_bank_file(content, LAYOUT).data["attempt"].to_list() == [1, 2, 12]


def test_bank_file_refuses_an_attempt_too_wide_for_its_three_digits() -> None:
    frame = payees(NAMES[:1]).with_columns(attempt=pl.lit(1000, pl.Int64))
    with pytest.raises(BankFileError, match="attempt value 1000 does not fit 3"):
        written(frame)


def test_bank_file_header_and_trailer_carry_the_record_count_and_total() -> None:
    frame = payees(NAMES[:3], [100_000, 250_000, 1])
    lines = records(written(frame))
    header, trailer = lines[0], lines[-1]
    assert header[60:68] == b"00000003" and header[68:83] == b"000000000350001"
    assert trailer[1:9] == b"00000003" and trailer[9:24] == b"000000000350001"
    assert header[1:31] == RUN_ID.encode() + b" " * 5
    assert header[31:39] == b"20250301"


def test_bank_file_reads_back_to_the_values_written() -> None:
    frame = payees()
    read = bankfile.read_bank_file(written(frame), LAYOUT)
    assert read.header["record_count"] == read.trailer["record_count"] == len(NAMES)
    assert read.trailer["total_amount"] == frame["amount_krw"].sum()
    assert read.data["payment_id"].to_list() == frame["payment_id"].to_list()
    assert read.data["account_no"].to_list() == frame["account_no"].to_list()
    assert read.data["bank_code"].to_list() == frame["bank_code"].to_list()
    assert read.data["amount"].to_list() == frame["amount_krw"].to_list()
    assert read.data["attempt"].to_list() == [1] * len(NAMES)
    assert read.data["holder_name"].to_list() == [
        "김민수",
        "A가나다라마바사아자",
        "가나다라마바사아자차",
        "Nguy?n Th? Lan",
        "PARK 지성",
        "이 름",
    ]


def test_holder_names_cp949_cannot_encode_are_flagged_for_the_audit_warning() -> None:
    assert bankfile.holder_name_lossy(pl.Series(NAMES)).to_list() == [
        False,
        False,
        False,
        True,
        False,
        False,
    ]


def test_bank_file_refuses_an_amount_too_wide_for_its_field_instead_of_cutting_it() -> None:
    with pytest.raises(BankFileError, match="amount value 10000000000000 does not fit 13"):
        written(payees(NAMES[:1], [10**13]))


def test_reader_refuses_a_file_whose_trailer_total_disagrees_with_its_records() -> None:
    content = bytearray(written())
    trailer = len(content) - 102
    content[trailer + 23] = ord("9")
    with pytest.raises(BankFileError, match="trailer total"):
        bankfile.read_bank_file(bytes(content), LAYOUT)


def test_reader_refuses_a_record_of_the_wrong_length() -> None:
    with pytest.raises(BankFileError, match="not a multiple of 102"):
        bankfile.read_bank_file(written()[:-1], LAYOUT)


def layout_file(tmp_path: Path, rows: list[str]) -> Path:
    default = (reference.LAYOUTS_DIR / "kr_bulk_transfer_default.csv").read_text().splitlines()
    (tmp_path / "bank.csv").write_text("\n".join([default[0], *rows]) + "\n")
    return tmp_path


def test_a_layout_with_a_gap_between_fields_is_refused_naming_the_field(tmp_path: Path) -> None:
    default = (reference.LAYOUTS_DIR / "kr_bulk_transfer_default.csv").read_text().splitlines()[1:]
    broken = [r.replace("D,amount,27,13", "D,amount,28,12") for r in default]
    with pytest.raises(BankFileError, match="record D field amount: starts at byte 28"):
        reference.load_layout("bank", layout_file(tmp_path, broken))


def test_a_layout_naming_an_unknown_field_is_refused(tmp_path: Path) -> None:
    default = (reference.LAYOUTS_DIR / "kr_bulk_transfer_default.csv").read_text().splitlines()[1:]
    broken = [r.replace("D,memo,", "D,resident_number,") for r in default]
    with pytest.raises(BankFileError, match="field resident_number: unknown field"):
        reference.load_layout("bank", layout_file(tmp_path, broken))


def test_the_default_layout_has_100_byte_header_data_and_trailer_records() -> None:
    assert LAYOUT.record_length == 100
    assert {f.record for f in LAYOUT.fields} == {"H", "D", "T"}
    assert Field("T", "total_amount", 10, 15, "number") in LAYOUT.fields


@settings(max_examples=60, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from([*"가나힣김A z0-?", "ễ", "😀", "漢", "Ａ", "\n"]),
        max_size=30,
    ),
    st.integers(min_value=1, max_value=24),
)
def test_fitted_text_is_always_exactly_its_width_in_cp949_and_a_prefix_of_the_name(
    name: str, width: int
) -> None:
    frame = pl.DataFrame({"n": [name]})
    bad = bankfile.unencodable_chars(frame["n"].str.normalize("NFKC"))
    safe = frame.select(bankfile.cp949_text(pl.col("n"), bad))["n"].item()
    fitted = bankfile.fit_text(pl.Series([safe]), width)
    encoded = fitted.item().encode("cp949")
    assert len(encoded) == width
    prefix = ""  # reference: the longest character prefix that fits, by plain Python
    for char in safe:
        if len((prefix + char).encode("cp949")) > width:
            break
        prefix += char
    assert encoded == prefix.encode("cp949") + b" " * (width - len(prefix.encode("cp949")))


def test_the_documented_default_layout_matches_the_layout_file() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs/payment-files.md").read_text()
    documented = re.findall(r"^\| ([HDT]) \| (\d+)(?:-(\d+))? \| `?(\w+)`?", doc, flags=re.M)
    assert [
        (record, int(start), int(end or start), name) for record, start, end, name in documented
    ] == [
        (f.record, f.start, f.start + f.length - 1, f.name)
        for code in ("H", "D", "T")
        for f in LAYOUT.record(code)
    ]


def test_bank_files_split_at_max_records_each_with_its_own_number_and_control_totals() -> None:
    from flows.pay.credit import assign_files

    frame = payees().drop("payment_file", "seq")
    assigned = assign_files(frame, max_records=4, prefix="bank", extension="dat")
    files = bankfile.bank_files(bankfile.data_rows(assigned, MEMO), SETTINGS, RUN_ID, DAY)
    assert [(f.file, f.records, f.total_krw) for f in files] == [
        ("bank_0001.dat", 4, 400_000),
        ("bank_0002.dat", 2, 200_000),
    ]
    second = bankfile.read_bank_file(files[1].content, LAYOUT)
    assert second.header["file_no"] == 2
    assert second.header["record_count"] == second.trailer["record_count"] == 2
    assert second.data["seq"].to_list() == [5, 6]  # numbered across the run, not per file


def test_a_layout_with_a_non_numeric_length_is_refused_naming_the_file(tmp_path: Path) -> None:
    default = (reference.LAYOUTS_DIR / "kr_bulk_transfer_default.csv").read_text().splitlines()[1:]
    broken = [r.replace("D,amount,27,13", "D,amount,27,thirteen") for r in default]
    with pytest.raises(BankFileError, match=r"bank\.csv: not a layout CSV"):
        reference.load_layout("bank", layout_file(tmp_path, broken))


def test_bank_settings_refuse_a_payer_account_with_hyphens(tmp_path: Path) -> None:
    settings = tmp_path / "bank.yaml"
    settings.write_text(
        "payer: {name: 파주시, bank_code: '011', account_no: 301-0123-4567-81}\n"
        "layout: kr_bulk_transfer_default\n"
    )
    with pytest.raises(BankFileError, match="account_no 10-14 digits"):
        reference.bank_settings(settings)
