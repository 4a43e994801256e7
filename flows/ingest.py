"""Read one delivery folder of registry or enrollment extracts into one frame of strings.

Accepts CSV in UTF-8, UTF-8 with BOM or CP949 and Parquet; maps Korean headers to English; records
each file's SHA-256. Every value stays a string here: typing happens in `validate`, so that a bad
value is quarantined with a reason instead of failing the whole read.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from flows.errors import InputRejected

Kind = Literal["registry", "enrollment"]

REGISTRY_COLUMNS: dict[str, str] = {
    "rrn": "주민등록번호",
    "name": "성명",
    "birth_date": "생년월일",
    "household_id": "세대번호",
    "relation": "세대주관계",
    "admin_code": "행정동코드",
    "address": "주소",
    "registered_on": "전입일자",
    "status": "거주상태",
    "nationality": "내외국인",
    "visa_type": "체류자격",
    "status_changed_on": "변동일자",
    "as_of": "기준일",
}
ENROLLMENT_COLUMNS: dict[str, str] = {
    "application_id": "신청번호",
    "applied_at": "신청일시",
    "rrn": "대상자 주민등록번호",
    "applicant_rrn": "신청인 주민등록번호",
    "channel": "신청경로",
    "payout": "지급수단",
    "card_id": "지역화폐 카드번호",
    "bank_code": "은행코드",
    "account_no": "계좌번호",
    "account_holder": "예금주",
}
COLUMNS: dict[Kind, dict[str, str]] = {
    "registry": REGISTRY_COLUMNS,
    "enrollment": ENROLLMENT_COLUMNS,
}
OPTIONAL: dict[Kind, frozenset[str]] = {
    "registry": frozenset({"status_changed_on"}),
    "enrollment": frozenset({"card_id", "bank_code", "account_no", "account_holder"}),
}
EXTRA_ALIASES: dict[str, str] = {
    "외국인등록번호": "rrn",
    "주민번호": "rrn",
    "대상자주민등록번호": "rrn",
    "신청인주민등록번호": "applicant_rrn",
    "카드번호": "card_id",
}
# Identifiers whose leading zeros matter: a file that stores them as numbers is rejected.
TEXT_ONLY = frozenset(
    {"rrn", "applicant_rrn", "household_id", "admin_code", "card_id", "bank_code", "account_no"}
)
SOURCE_COLUMNS = ("source_kind", "source_file", "source_sha256", "source_row", "source_extra")
BOM = b"\xef\xbb\xbf"
# UTF-8 lead bytes of full-width forms (U+FF00-FF3F: digits, hyphen) and the ideographic space
FULLWIDTH_BYTES = (b"\xef\xbc", b"\xe3\x80\x80")


@dataclass(frozen=True)
class InputFile:
    """One file read by a run: what the run record lists under `inputs`."""

    kind: Kind
    file: str
    path: str
    sha256: str
    rows: int
    encoding: str
    ignored_columns: tuple[str, ...] = ()
    fullwidth: bool = True
    skipped_by_run: str | None = None


@dataclass
class Delivery:
    """All rows of one kind, as strings, with their source columns, and the files they came from."""

    kind: Kind
    frame: pl.DataFrame
    files: list[InputFile] = field(default_factory=list)
    fullwidth: bool = True  # false when no file can hold full-width digits (skips that pass)


def decode_to_utf8(raw: bytes, name: str) -> tuple[bytes, str]:
    """Return the file's bytes as UTF-8 and the encoding found (utf-8, utf-8-sig or cp949).

    Raises InputRejected naming the first bad byte when the bytes are valid in none of them.
    """
    if raw.startswith(BOM):
        try:
            raw[3:].decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputRejected(
                name,
                f"starts with a UTF-8 byte-order mark but byte {e.start + 3} is not UTF-8",
                "Export the file again as UTF-8 or CP949.",
            ) from None
        return raw[3:], "utf-8-sig"
    try:
        raw.decode("utf-8")
        return raw, "utf-8"
    except UnicodeDecodeError as utf8_error:
        if utf8_error.reason == "unexpected end of data" and utf8_error.end == len(raw):
            raise InputRejected(
                name,
                f"ends in the middle of a character at byte {utf8_error.start}: the file "
                "looks truncated",
                "Copy the complete file again from the source system.",
            ) from None
        try:
            return raw.decode("cp949").encode("utf-8"), "cp949"
        except UnicodeDecodeError as cp949_error:
            if cp949_error.reason == "incomplete multibyte sequence" and cp949_error.end == len(
                raw
            ):
                raise InputRejected(
                    name,
                    f"ends in the middle of a character at byte {cp949_error.start}: the file "
                    "looks truncated",
                    "Copy the complete file again from the source system.",
                ) from None
            raise InputRejected(
                name,
                f"is neither UTF-8 (first bad byte at offset {utf8_error.start}) nor CP949 "
                f"(first bad byte at offset {cp949_error.start})",
                "Export it again as UTF-8 or CP949 (Excel: 'CSV UTF-8'); do not edit it by hand.",
            ) from None


def canonical_header(name: str, kind: Kind) -> str:
    """Map a header (English or Korean, any surrounding space or BOM) to its English name."""
    cleaned = name.replace("\ufeff", "").strip()
    aliases = {ko: en for en, ko in COLUMNS[kind].items()}
    aliases.update({ko.replace(" ", ""): en for ko, en in aliases.items()})
    return aliases.get(cleaned, EXTRA_ALIASES.get(cleaned, cleaned.lower()))


def read_csv_strings(utf8: bytes, name: str) -> pl.DataFrame:
    """Parse CSV bytes into a frame of strings; a file polars cannot parse is rejected."""
    try:
        return pl.read_csv(io.BytesIO(utf8), infer_schema=False, truncate_ragged_lines=False)
    except pl.exceptions.NoDataError:
        raise InputRejected(
            name, "is empty (no header row)", "Ask for the extract to be produced again."
        ) from None
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputRejected(
            name,
            f"is not a well-formed CSV ({first})",
            "Check the quoting and the number of fields per line.",
        ) from None


def check_last_line(utf8: bytes, width: int, name: str) -> None:
    """Reject a CSV whose last line has no line ending: that is what a cut-off file looks like.

    A file cut at a field boundary parses, and polars fills missing fields with nulls, so the
    line ending is the only sign left; a row cut inside a quoted field fails to parse instead.
    Every exporter we know (Excel, polars, Python's csv) ends the last line.
    """
    if utf8.endswith(b"\n"):
        return
    tail = utf8[utf8.rfind(b"\n") + 1 :]
    fields = tail.count(b",") + 1
    shape = f"has {fields} of {width} fields and " if b'"' not in tail and fields < width else ""
    raise InputRejected(
        name,
        f"ends in the middle of a row: the last line {shape}has no line ending, so the file "
        "looks truncated",
        "Copy the complete file again from the source system (if it is complete, end it with a "
        "line break).",
        line=utf8.count(b"\n") + 1,
    )


def read_parquet_strings(raw: bytes, name: str, kind: Kind) -> pl.DataFrame:
    """Read Parquet bytes and cast every column to string (dates to ISO text).

    Rejects nested or binary columns, and identifier columns stored as numbers.
    """
    try:
        frame = pl.read_parquet(io.BytesIO(raw))
    except (Exception, pl.exceptions.PanicException) as e:  # many types for a broken file
        raise InputRejected(
            name,
            f"is not a readable Parquet file ({type(e).__name__})",
            "Ask for the extract to be produced again.",
        ) from None
    for column, dtype in frame.schema.items():
        english = canonical_header(column, kind)
        if dtype.is_nested() or dtype == pl.Binary:
            raise InputRejected(
                name,
                f"column {column!r} is stored as {dtype}, not as text, a number or a date",
                "Write every column of the extract as a plain value (text for identifiers).",
            )
        if english in TEXT_ONLY and (dtype.is_numeric() or dtype == pl.Boolean):
            raise InputRejected(
                name,
                f"column {column!r} ({english}) is stored as {dtype}: identifiers stored as "
                "numbers lose their leading zeros",
                f"Write {english} as text (string) in the Parquet file and deliver it again.",
            )
    return frame.select(pl.all().cast(pl.String))


def conform_columns(
    frame: pl.DataFrame, kind: Kind, name: str
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Rename to English, drop blank trailing columns, reject missing columns, add optional ones.

    Unknown extra columns are ignored by every check; their values are kept, as one JSON object
    per row in `source_extra`, so that the quarantine report can show them.
    """
    renamed = {c: canonical_header(c, kind) for c in frame.columns}
    seen: dict[str, str] = {}
    for original, english in renamed.items():
        if english in COLUMNS[kind] and english in seen:
            raise InputRejected(
                name,
                f"has the column {english!r} twice ({seen[english]!r} and {original!r})",
                "Keep one of them and deliver again.",
            )
        seen[english] = original
    frame = frame.rename(renamed)
    blank = [
        c
        for c in frame.columns
        if (c == "" or c.startswith("_duplicated_")) and frame[c].null_count() == frame.height
    ]
    frame = frame.drop(blank)
    expected = COLUMNS[kind]
    missing = [c for c in expected if c not in frame.columns and c not in OPTIONAL[kind]]
    if missing:
        listed = ", ".join(f"{c} ({expected[c]})" for c in missing)
        raise InputRejected(
            name,
            f"is missing the required column(s) {listed}",
            "Add the column(s) to the extract's header and deliver it again.",
            line=1,
        )
    ignored = tuple(c for c in frame.columns if c not in expected)
    extra = pl.struct(ignored).struct.json_encode() if ignored else pl.lit(None, dtype=pl.String)
    frame = frame.with_columns(
        [pl.lit(None, dtype=pl.String).alias(c) for c in expected if c not in frame.columns]
    )
    return frame.select(*expected, source_extra=extra), ignored


def read_file(path: Path, kind: Kind) -> tuple[pl.DataFrame, InputFile]:
    """Read one extract file into strings with its source columns."""
    name = path.name
    raw = path.read_bytes()
    sha256 = hashlib.sha256(raw).hexdigest()
    if not raw.strip():
        raise InputRejected(name, "is empty", "Ask for the extract to be produced again.")
    if path.suffix.lower() == ".parquet":
        frame, encoding, utf8 = read_parquet_strings(raw, name, kind), "parquet", b""
    else:
        utf8, encoding = decode_to_utf8(raw, name)
        frame = read_csv_strings(utf8, name)
    width = frame.width
    frame, ignored = conform_columns(frame, kind, name)
    if frame.height == 0:
        raise InputRejected(
            name,
            "has a header but no data rows",
            "Ask for the extract to be produced again.",
            line=2,
        )
    if encoding != "parquet":
        check_last_line(utf8, width, name)
    frame = frame.with_columns(
        source_kind=pl.lit(kind),
        source_file=pl.lit(name),
        source_sha256=pl.lit(sha256),
        source_row=pl.int_range(1, frame.height + 1, dtype=pl.Int64),
    ).select(*COLUMNS[kind], *SOURCE_COLUMNS)
    fullwidth = encoding == "parquet" or any(b in utf8 for b in FULLWIDTH_BYTES)
    info = InputFile(kind, name, str(path), sha256, frame.height, encoding, ignored, fullwidth)
    return frame, info


def list_delivery(folder: Path, kind: Kind) -> list[Path]:
    """Return the delivery's CSV and Parquet files in name order; reject anything else."""
    if not folder.is_dir():
        raise InputRejected(
            str(folder),
            f"is not a folder of {kind} extracts",
            "Pass the folder that holds the delivery's files.",
        )
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    unknown = [p.name for p in paths if p.suffix.lower() not in (".csv", ".parquet")]
    if unknown:
        raise InputRejected(
            str(folder / unknown[0]),
            "is neither .csv nor .parquet",
            "Remove it from the delivery folder or convert it.",
        )
    if not paths:
        raise InputRejected(
            str(folder),
            f"holds no {kind} files",
            "Copy the delivery's .csv or .parquet files into it.",
        )
    return paths


def read_delivery(paths: list[Path], kind: Kind) -> Delivery:
    """Read every file of one delivery and stack them into one frame of strings."""
    frames, files = [], []
    for path in paths:
        frame, info = read_file(path, kind)
        frames.append(frame)
        files.append(info)
    names = [f.file for f in files]
    if len(set(names)) != len(names):
        raise InputRejected(names[0], "appears twice in the delivery", "Rename one of the files.")
    fullwidth = any(f.fullwidth for f in files)
    return Delivery(kind, pl.concat(frames, how="vertical"), files, fullwidth)


def empty_delivery(kind: Kind) -> Delivery:
    """Return a delivery with no rows and the right columns (all enrollment files consumed)."""
    schema = {c: pl.String for c in COLUMNS[kind]} | {
        "source_kind": pl.String,
        "source_file": pl.String,
        "source_sha256": pl.String,
        "source_row": pl.Int64,
        "source_extra": pl.String,
    }
    return Delivery(kind, pl.DataFrame(schema=schema), [])
