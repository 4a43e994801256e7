"""Reading deliveries: encodings, Korean headers, Excel quirks, and files that must be rejected."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from flows.errors import InputRejected
from flows.ingest import decode_to_utf8, list_delivery, read_delivery, read_file

HEADER = (
    "rrn,name,birth_date,household_id,relation,admin_code,address,registered_on,status,"
    "nationality,visa_type,as_of"
)
ROW = "7503121123458,김민수,1975-03-12,1,본인,4148057000,주소,2019-03-01,거주,내국인,,2024-12-26"
KO_HEADER = (
    "주민등록번호,성명,생년월일,세대번호,세대주관계,행정동코드,주소,전입일자,거주상태,내외국인,"
    "체류자격,기준일"
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_decode_accepts_utf8_bom_and_cp949() -> None:
    text = "성명\n김민수\n"
    assert decode_to_utf8(text.encode("utf-8"), "f")[1] == "utf-8"
    assert decode_to_utf8(b"\xef\xbb\xbf" + text.encode("utf-8"), "f") == (
        text.encode(),
        "utf-8-sig",
    )
    assert decode_to_utf8(text.encode("cp949"), "f") == (text.encode(), "cp949")


def test_decode_rejects_bytes_valid_in_no_encoding_naming_file_and_offset() -> None:
    raw = "성명\n".encode() + b"\xff\xfe\xfa"
    with pytest.raises(
        InputRejected, match=r"x\.csv: is neither UTF-8 \(first bad byte at offset 7\)"
    ):
        decode_to_utf8(raw, "x.csv")


def test_read_file_maps_korean_headers_of_a_cp949_crlf_file(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", f"{KO_HEADER}\r\n{ROW}\r\n", "cp949")
    frame, info = read_file(path, "registry")
    assert info.encoding == "cp949"
    assert frame.row(0, named=True)["name"] == "김민수"
    assert frame["source_row"].to_list() == [1]
    assert frame["status_changed_on"].to_list() == [None]  # optional column added


def test_read_file_drops_blank_trailing_columns_excel_adds(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", f"{HEADER},,\n{ROW},,\n")
    frame, info = read_file(path, "registry")
    assert "_duplicated_0" not in frame.columns and "" not in frame.columns
    assert info.ignored_columns == ()


def test_read_file_keeps_quoted_commas_in_one_field(tmp_path: Path) -> None:
    row = ROW.replace(",주소,", ',"경기도 파주시, 운정동",')
    frame, _ = read_file(write(tmp_path / "r.csv", f"{HEADER}\n{row}\n"), "registry")
    assert frame["address"].to_list() == ["경기도 파주시, 운정동"]


def test_read_file_rejects_a_missing_required_column_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", HEADER.replace(",as_of", "") + "\n" + ROW.rsplit(",", 1)[0])
    with pytest.raises(
        InputRejected, match=r"r\.csv, line 1: is missing the required column\(s\) as_of \(기준일\)"
    ):
        read_file(path, "registry")


def test_read_file_rejects_header_only_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputRejected, match="no data rows"):
        read_file(write(tmp_path / "h.csv", HEADER + "\n"), "registry")
    with pytest.raises(InputRejected, match="is empty"):
        read_file(write(tmp_path / "e.csv", ""), "registry")


def test_read_file_reads_parquet_as_strings(tmp_path: Path) -> None:
    values = dict(zip(HEADER.split(","), ROW.split(","), strict=True))
    pl.DataFrame({k: [v] for k, v in values.items()}).with_columns(
        pl.col("as_of").str.to_date()
    ).write_parquet(tmp_path / "r.parquet")
    frame, info = read_file(tmp_path / "r.parquet", "registry")
    assert info.encoding == "parquet"
    assert frame["as_of"].to_list() == ["2024-12-26"]


def test_list_delivery_rejects_stray_files_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(InputRejected, match="holds no registry files"):
        list_delivery(tmp_path, "registry")
    write(tmp_path / "notes.txt", "hello")
    with pytest.raises(InputRejected, match=r"notes\.txt: is neither \.csv nor \.parquet"):
        list_delivery(tmp_path, "registry")


def test_read_delivery_stacks_files_with_their_hashes(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", f"{HEADER}\n{ROW}\n")
    b = write(tmp_path / "b.csv", f"{HEADER}\n{ROW}\n{ROW}\n")
    delivery = read_delivery([a, b], "registry")
    assert delivery.frame.height == 3
    assert delivery.frame["source_row"].to_list() == [1, 1, 2]
    assert [f.rows for f in delivery.files] == [1, 2]
    assert delivery.files[0].sha256 != delivery.files[1].sha256
