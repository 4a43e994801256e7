"""Reading deliveries: encodings, Korean headers, Excel quirks, and files that must be rejected."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.errors import InputRejected
from flows.inputs.ingest import (
    FULLWIDTH_BYTES,
    decode_to_utf8,
    has_fullwidth,
    is_utf8,
    list_delivery,
    read_delivery,
    read_file,
)

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


def test_a_broken_quote_is_named_by_its_line_and_shape_never_by_its_values(
    tmp_path: Path,
) -> None:
    broken = ROW.replace("7503121123458,김민수", '"7503121123458,김민수')
    path = write(tmp_path / "r.csv", f"{HEADER}\n{ROW}\n\n{broken}\n{ROW}\n")
    with pytest.raises(InputRejected) as caught:
        read_file(path, "registry")
    message = str(caught.value)
    assert message.startswith("input rejected: r.csv, line 4: is not a well-formed CSV: ")
    assert "unbalanced quote" in message
    assert "7503121123458" not in message and "김민수" not in message


def test_a_line_with_more_fields_than_the_header_is_named_with_both_counts(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "r.csv", f"{HEADER}\n{ROW}\n{ROW},extra\n")
    with pytest.raises(
        InputRejected,
        match=r"r\.csv, line 3: is not a well-formed CSV: has 13 fields, the header has 12\.",
    ):
        read_file(path, "registry")


def test_blank_lines_are_not_rows_and_count_in_no_row_number(tmp_path: Path) -> None:
    second = ROW.replace("김민수", "이지은").replace(",주소,", ',"파주시\r\n\r\n운정동",')
    path = write(tmp_path / "r.csv", f"{HEADER}\r\n{ROW}\r\n\r\n  \r\n{second}\r\n\r\n")
    frame, info = read_file(path, "registry")
    assert frame["name"].to_list() == ["김민수", "이지은"]
    assert frame["address"].to_list() == ["주소", "파주시\r\n\r\n운정동"]  # kept inside quotes
    assert frame["source_row"].to_list() == [1, 2]
    assert info.rows == 2


def test_a_header_and_a_blank_line_is_a_file_without_data_rows(tmp_path: Path) -> None:
    with pytest.raises(InputRejected, match=r"h\.csv, line 2: has a header but no data rows"):
        read_file(write(tmp_path / "h.csv", HEADER + "\n\n"), "registry")


def test_cr_only_line_endings_are_read_as_lines(tmp_path: Path) -> None:
    frame, info = read_file(write(tmp_path / "r.csv", f"{HEADER}\r{ROW}\r{ROW}\r"), "registry")
    assert frame["name"].to_list() == ["김민수", "김민수"] and info.rows == 2


@pytest.mark.parametrize("entry", ["subfolder", "hidden", "dangling-link", "outside-link"])
def test_every_entry_of_a_delivery_folder_is_read_or_refused_by_name(
    tmp_path: Path, entry: str
) -> None:
    folder = tmp_path / "delivery"
    folder.mkdir()
    write(folder / "a.csv", f"{HEADER}\n{ROW}\n")
    if entry == "subfolder":
        (folder / "late").mkdir()
        write(folder / "late" / "b.csv", f"{HEADER}\n{ROW}\n")
        name = "late"
    elif entry == "hidden":
        name = ".b.csv"
        write(folder / name, f"{HEADER}\n{ROW}\n")
    else:
        name = "b.csv"
        target = write(tmp_path / "b.csv", f"{HEADER}\n{ROW}\n")
        (folder / name).symlink_to(target if entry == "outside-link" else tmp_path / "gone.csv")
    with pytest.raises(InputRejected, match=rf"delivery/{re.escape(name)}: is a"):
        list_delivery(folder, "registry")


@pytest.mark.parametrize("raw", [b"bad\xffname.csv", b"two\nlines.csv"], ids=["cp949", "newline"])
def test_a_file_name_that_is_not_printable_utf8_is_refused_by_an_escaped_name(
    tmp_path: Path, raw: bytes
) -> None:
    write(tmp_path / "a.csv", f"{HEADER}\n{ROW}\n")
    with open(os.path.join(os.fsencode(tmp_path), raw), "w") as f:
        f.write(f"{HEADER}\n{ROW}\n")
    with pytest.raises(InputRejected, match="is not printable UTF-8 text") as refused:
        list_delivery(tmp_path, "registry")
    message = str(refused.value)
    assert "\n" not in message and message.encode("utf-8")
    assert ("bad\\xffname.csv" if b"\xff" in raw else "two\\nlines.csv") in message


def test_a_link_to_another_file_of_the_folder_is_refused_as_read_twice(tmp_path: Path) -> None:
    target = write(tmp_path / "a.csv", f"{HEADER}\n{ROW}\n")
    (tmp_path / "b.csv").symlink_to(target)
    with pytest.raises(InputRejected, match=r"b\.csv: is a symbolic link .* read twice"):
        list_delivery(tmp_path, "registry")


def registry_parquet(path: Path, **typed: pl.Expr) -> Path:
    values = dict(zip(HEADER.split(","), ROW.split(","), strict=True))
    pl.DataFrame({k: [v] for k, v in values.items()}).with_columns(**typed).write_parquet(path)
    return path


def test_parquet_dates_and_midnight_datetimes_read_as_their_dates(tmp_path: Path) -> None:
    seoul_midnight = pl.lit(dt.datetime(2024, 12, 25, 15)).dt.replace_time_zone("UTC")
    path = registry_parquet(
        tmp_path / "r.parquet",
        birth_date=pl.lit(dt.date(1975, 3, 12)),
        registered_on=pl.lit(dt.datetime(2019, 3, 1)),
        as_of=seoul_midnight,
    )
    row = read_file(path, "registry")[0].row(0, named=True)
    assert (row["birth_date"], row["registered_on"], row["as_of"]) == (
        "1975-03-12",
        "2019-03-01",
        "2024-12-26",
    )


def test_a_parquet_date_column_with_a_time_of_day_is_refused_naming_column_and_type(
    tmp_path: Path,
) -> None:
    path = registry_parquet(
        tmp_path / "r.parquet", registered_on=pl.lit(dt.datetime(2019, 3, 1, 9))
    )
    with pytest.raises(
        InputRejected,
        match=r"r\.parquet, row 1: column 'registered_on' \(registered_on\) is stored as "
        r"Datetime\(time_unit='us', time_zone=None\) and holds a time other than 00:00",
    ):
        read_file(path, "registry")


def test_a_parquet_date_column_of_another_type_is_refused_naming_column_and_type(
    tmp_path: Path,
) -> None:
    path = registry_parquet(tmp_path / "r.parquet", as_of=pl.lit(20241226))
    with pytest.raises(
        InputRejected,
        match=r"r\.parquet: column 'as_of' \(as_of\) is stored as Int32, which is not a date",
    ):
        read_file(path, "registry")


def test_a_parquet_applied_at_timestamp_is_read_as_seoul_time(tmp_path: Path) -> None:
    header = "application_id,applied_at,rrn,applicant_rrn,channel,payout,card_id"
    row = "A1,x,7503121123458,7503121123458,online,local_currency,9410000000000001"
    values = dict(zip(header.split(","), row.split(","), strict=True))
    utc = pl.lit(dt.datetime(2025, 1, 22, 1, 0, 5)).dt.replace_time_zone("UTC")
    pl.DataFrame({k: [v] for k, v in values.items()}).with_columns(applied_at=utc).write_parquet(
        tmp_path / "e.parquet"
    )
    frame, _ = read_file(tmp_path / "e.parquet", "enrollment")
    assert frame["applied_at"].to_list() == ["2025-01-22 10:00:05"]


def test_two_unknown_headers_of_one_name_reject_the_file_naming_both(tmp_path: Path) -> None:
    """A header ',\\x0c' (found by the fuzz test) has two columns that both read as '': one line
    saying so, not an unexpected error."""
    path = tmp_path / "registry.csv"
    path.write_bytes(b",\x0c\n")
    with pytest.raises(InputRejected) as e:
        read_file(path, "registry")
    assert "twice ('' and '\\x0c')" in str(e.value)


# Bytes a hostile or broken extract holds: Hangul, full-width forms, surrogates, overlong
# forms, cut characters, values beyond U+10FFFF, CP949 and stray bytes.
PIECES = [
    "홍길동,".encode(),
    "０１２－".encode(),
    "\u3000".encode(),
    b"\xed\xa0\x80",
    b"\xc0\x80",
    b"\xea\xb0",
    b"\xf4\x90\x80\x80",
    "김".encode("cp949"),
    b"\xef",
    b"\xe3\x80",
    b"\x00",
    b"a,b\n",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=6)), max_size=12))
def test_the_fast_utf8_and_fullwidth_checks_judge_every_byte_string_as_python_does(
    pieces: list[bytes],
) -> None:
    raw = b"".join(pieces)
    try:
        raw.decode("utf-8")
        python_says = True
    except UnicodeDecodeError:
        python_says = False
    assert is_utf8(raw) == python_says
    assert has_fullwidth(raw) == any(b in raw for b in FULLWIDTH_BYTES)
