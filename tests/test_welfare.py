"""The welfare-status extract: read by RRN, Korean labels mapped, any bad row rejects the file."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest

from fixtures.generate import generate_population
from fixtures.welfare import welfare_extract, write_welfare
from flows.errors import InputRejected
from flows.inputs.welfare import read_welfare
from rules.reference import vocabulary

DAY = dt.date(2025, 6, 18)
HEADER = "rrn,welfare_status,as_of\n"


def write(tmp_path: Path, body: str, name: str = "welfare.csv") -> Path:
    folder = tmp_path / "welfare"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(HEADER + body, encoding="utf-8")
    return folder


def test_korean_labels_and_hyphenated_rrns_are_read_as_status_ids(tmp_path: Path) -> None:
    folder = write(
        tmp_path, "900101-1234567,기초생활수급자,2025-06-18\n8501012345678,near_poor,20250618\n"
    )
    frame, files = read_welfare(folder, vocabulary(), DAY)
    assert frame.rows() == [
        ("9001011234567", "basic_livelihood"),
        ("8501012345678", "near_poor"),
    ]
    assert files[0]["kind"] == "welfare" and files[0]["rows"] == 2 and len(files[0]["sha256"]) == 64


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "9001011234567,부자,2025-06-18\n",
            r"welfare\.csv, row 1: welfare row check WELFARE_STATUS_UNKNOWN failed",
        ),
        (
            "9001011234567,near_poor,2025-06-18\n9001011234567,near_poor,2025-06-18\n",
            r"row 1: welfare row check WELFARE_RRN_REPEATED failed: the welfare extract lists",
        ),
        (
            "12345,near_poor,2025-06-18\n",
            r"welfare\.csv, row 1: welfare row check RRN_FORMAT failed: RRN is not 13 digits",
        ),
        (
            "9001011234567,near_poor,2025-06-18\n8501012345678,near_poor,2025-06-30\n",
            r"welfare\.csv, row 2: as_of 2025-06-30 is not the program's reference date",
        ),
        (
            "9001011234567,near_poor,someday\n",
            r"row 1: welfare row check WELFARE_AS_OF_INVALID failed: the welfare extract's as_of",
        ),
    ],
)
def test_a_bad_welfare_row_rejects_the_file_naming_the_row(
    tmp_path: Path, body: str, message: str
) -> None:
    with pytest.raises(InputRejected, match=message):
        read_welfare(write(tmp_path, body), vocabulary(), DAY)


@pytest.mark.parametrize(
    "body",
    [
        "900101123456X,near_poor,2025-06-18\n",
        "9001011234567,near_poor,2025-06-18\n900101-1234567,near_poor,2025-06-18\n",
    ],
)
def test_a_refused_welfare_rrn_is_shown_with_all_but_six_digits_starred(
    tmp_path: Path, body: str
) -> None:
    with pytest.raises(InputRejected) as refused:
        read_welfare(write(tmp_path, body), vocabulary(), DAY)
    assert "900101*******" in str(refused.value) or "900101******X" in str(refused.value)
    assert "1234567" not in str(refused.value) and "123456X" not in str(refused.value)


def test_a_welfare_file_without_the_status_column_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "welfare"
    folder.mkdir()
    (folder / "w.csv").write_text("주민등록번호,기준일\n9001011234567,2025-06-18\n")
    with pytest.raises(InputRejected, match=r"w\.csv: missing required column\(s\) welfare_status"):
        read_welfare(folder, vocabulary(), DAY)


def test_a_missing_welfare_folder_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputRejected, match="is not a folder of welfare-status extract files"):
        read_welfare(tmp_path / "nope", vocabulary(), DAY)


def test_the_generated_welfare_extract_reads_back_cleanly_at_realistic_rates(
    tmp_path: Path,
) -> None:
    registry = generate_population(4000, seed=5, reference_date=DAY).registry
    extract = welfare_extract(registry, DAY, seed=5)
    frame, _ = read_welfare(write_welfare(extract, tmp_path / "w").parent, vocabulary(), DAY)
    shares = frame["welfare_status"].value_counts(normalize=True)
    share = dict(zip(shares["welfare_status"], shares["proportion"], strict=True))
    assert set(share) == {"basic_livelihood", "near_poor", "single_parent"}
    assert frame.height / registry.height == pytest.approx(0.085, abs=0.02)
    assert frame["rrn"].is_in(registry["rrn"].str.replace_all("-", "").implode()).all()
    assert extract.height == pl.DataFrame(extract).unique("rrn").height


@pytest.mark.parametrize("entry", ["subfolder", "hidden", "notes.txt"])
def test_a_welfare_folder_entry_that_would_not_be_read_rejects_the_extract_naming_it(
    tmp_path: Path, entry: str
) -> None:
    folder = write(tmp_path, "9001011234567,near_poor,2025-06-18\n")
    if entry == "subfolder":
        (folder / "late").mkdir()
        name = "late"
    else:
        name = ".late.csv" if entry == "hidden" else entry
        (folder / name).write_text(HEADER + "9001011234568,near_poor,2025-06-18\n")
    with pytest.raises(InputRejected, match=rf"welfare/{re.escape(name)}: is "):
        read_welfare(folder, vocabulary(), DAY)


def test_blank_lines_of_a_welfare_file_are_not_rows(tmp_path: Path) -> None:
    folder = write(tmp_path, "9001011234567,near_poor,2025-06-18\n\n")
    frame, files = read_welfare(folder, vocabulary(), DAY)
    assert frame.height == 1 and files[0]["rows"] == 1
