"""Read one delivery folder of registry or enrollment extracts into one frame of strings.

Accepts CSV in UTF-8, UTF-8 with BOM or CP949 and Parquet; maps Korean headers to English; records
each file's SHA-256. Every value stays a string here: typing happens in `validate`, so that a bad
value is quarantined with a reason instead of failing the whole read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from flows.errors import InputRejected
from flows.i18n import _

Kind = Literal["registry", "enrollment"]
CHUNK_BYTES = 256 * 2**20  # input validated at a time (about 1,000,000 rows; ~1.5 GB of memory)

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
# Columns a Parquet file may type as dates or timestamps (text_column says how they are read).
DATE_COLUMNS = frozenset({"birth_date", "registered_on", "status_changed_on", "as_of"})
TIMESTAMP_COLUMNS = frozenset({"applied_at"})
SEOUL = "Asia/Seoul"
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
    skipped_by_run: str | None = None  # every row was closed by earlier runs (the first of them)
    rows_closed: int = 0  # rows an earlier committed run closed: skipped, no decision record


@dataclass
class Delivery:
    """All rows of one kind, as strings, with their source columns, and the files they came from."""

    kind: Kind
    frame: pl.DataFrame
    files: list[InputFile] = field(default_factory=list)
    fullwidth: bool = True  # false when no file can hold full-width digits (skips that pass)

    @classmethod
    def of(cls, kind: Kind, frames: list[pl.DataFrame], files: list[InputFile]) -> Delivery:
        """Return the files' rows stacked in order, full-width if any file may hold it."""
        return cls(kind, pl.concat(frames, how="vertical"), files, any(f.fullwidth for f in files))


def is_utf8(raw: bytes) -> bool:
    """Return whether bytes are strict UTF-8, as Python's decoder judges them.

    Polars (Rust's validator) checks without building a Python string: twice as fast on a
    Korean extract. Both refuse the same bytes (surrogates, overlong forms, beyond U+10FFFF,
    a cut character); on a refusal the caller asks Python where the first bad byte is.
    """
    try:
        pl.Series([raw], dtype=pl.Binary()).cast(pl.String())
    except pl.exceptions.ComputeError:
        return False
    return True


def has_fullwidth(utf8: bytes) -> bool:
    """Return whether UTF-8 bytes hold a full-width form or the ideographic space.

    A one-byte search (memchr) for each form's rare lead byte first: no Hangul syllable starts
    with it, so most extracts are passed over in one fast scan instead of two slow ones.
    """
    return any(b[:1] in utf8 and b in utf8 for b in FULLWIDTH_BYTES)


def decode_to_utf8(raw: bytes, name: str) -> tuple[bytes, str]:
    """Return the file's bytes as UTF-8 and the encoding found (utf-8, utf-8-sig or cp949).

    Raises InputRejected naming the first bad byte when the bytes are valid in none of them.
    """
    if raw.startswith(BOM):
        body = raw[3:]
        try:
            if not is_utf8(body):
                body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputRejected(
                name,
                _("starts with a UTF-8 byte-order mark but byte {value} is not UTF-8").format(
                    value=e.start + 3
                ),
                _("Export the file again as UTF-8 or CP949."),
            ) from None
        return body, "utf-8-sig"
    if is_utf8(raw):
        return raw, "utf-8"
    try:
        raw.decode("utf-8")  # not UTF-8: Python's decoder says where and how
        return raw, "utf-8"
    except UnicodeDecodeError as utf8_error:
        if utf8_error.reason == "unexpected end of data" and utf8_error.end == len(raw):
            raise InputRejected(
                name,
                _(
                    "ends in the middle of a character at byte {start}: the file looks truncated"
                ).format(start=utf8_error.start),
                _("Copy the complete file again from the source system."),
            ) from None
        try:
            return raw.decode("cp949").encode("utf-8"), "cp949"
        except UnicodeDecodeError as cp949_error:
            if cp949_error.reason == "incomplete multibyte sequence" and cp949_error.end == len(
                raw
            ):
                raise InputRejected(
                    name,
                    _(
                        "ends in the middle of a character at byte {start}: the file "
                        "looks truncated"
                    ).format(start=cp949_error.start),
                    _("Copy the complete file again from the source system."),
                ) from None
            raise InputRejected(
                name,
                _(
                    "is neither UTF-8 (first bad byte at offset {start}) nor CP949 "
                    "(first bad byte at offset {start2})"
                ).format(start=utf8_error.start, start2=cp949_error.start),
                _(
                    "Export it again as UTF-8 or CP949 (Excel: 'CSV UTF-8'); do not "
                    "edit it by hand."
                ),
            ) from None


def canonical_header(name: str, kind: Kind) -> str:
    """Map a header (English or Korean, any surrounding space or BOM) to its English name."""
    cleaned = name.replace("\ufeff", "").strip()
    aliases = {ko: en for en, ko in COLUMNS[kind].items()}
    aliases.update({ko.replace(" ", ""): en for ko, en in aliases.items()})
    return aliases.get(cleaned, EXTRA_ALIASES.get(cleaned, cleaned.lower()))


def csv_text(utf8: bytes) -> bytes:
    """Return CSV bytes with classic-Mac line endings (CR alone) turned into LF.

    Only a file without a single LF is changed: there every CR ends a line (old Mac exports).
    Each CR becomes one LF, so line numbers stay those of the file.
    """
    if b"\r" in utf8 and b"\n" not in utf8:
        return utf8.replace(b"\r", b"\n")
    return utf8


BLANK_LINE = re.compile(rb"\n[ \t]*\r?(?=\n)")


def blank_line_spans(utf8: bytes) -> list[tuple[int, int]]:
    """Return the byte spans (each with its LF) of the blank lines that are not inside a quote.

    A line of nothing, or of spaces and tabs, is not a record. A blank line inside a quoted field
    (an address with an empty line) is part of that field: an odd number of quotes before it.
    """
    spans: list[tuple[int, int]] = []
    if re.match(rb"[ \t]*\r?\n", utf8):
        first = utf8.index(b"\n")
        spans.append((0, first + 1))
    quotes, counted = 0, 0
    for match in BLANK_LINE.finditer(utf8):
        start = match.start() + 1
        quotes += utf8.count(b'"', counted, start)
        counted = start
        if quotes % 2 == 0:
            spans.append((start, match.end() + 1))
    tail = utf8.rfind(b"\n") + 1
    quotes += utf8.count(b'"', counted, tail)
    if tail < len(utf8) and not utf8[tail:].strip(b" \t\r") and quotes % 2 == 0:
        spans.append((tail, len(utf8)))  # spaces after the last line ending
    return spans


def without_blank_lines(utf8: bytes) -> tuple[bytes, int]:
    """Return the CSV bytes without blank lines, and the line number of the header."""
    spans = blank_line_spans(utf8)
    if not spans:
        return utf8, 1
    kept, at = [], 0
    for start, end in spans:
        kept.append(utf8[at:start])
        at = end
    kept.append(utf8[at:])
    header_line, at = 1, 0
    for start, end in spans:  # blank lines before the header
        if start != at:
            break
        header_line, at = header_line + 1, end
    return b"".join(kept), header_line


def shape_problem(text: str) -> tuple[int, str] | None:
    """Return (line, what is wrong) for the first broken line of CSV text, None if none is found.

    Says what is wrong in terms of fields and quotes only: never a value, as values are personal
    data and this message reaches logs. Lines count the file's physical lines (from 1).
    """
    width: int | None = None
    in_quote, fields, start, opened = False, 1, 1, (1, 1)
    for number, raw_line in enumerate(text.split("\n"), 1):
        line = raw_line.removesuffix("\r")
        if not in_quote:
            if not line.strip(" \t"):
                continue
            fields, start = 1, number
        pos, end = 0, len(line)
        while pos < end:
            if in_quote:
                close = line.find('"', pos)
                if close < 0:
                    break
                if line.startswith('"', close + 1):
                    pos = close + 2
                    continue
                in_quote, pos = False, close + 1
                if pos < end and line[pos] != ",":
                    if opened[0] != number:
                        return opened[0], (
                            _(
                                "unbalanced quote: the quote that opens field {value} is closed "
                                "only on line {number}"
                            ).format(value=opened[1], number=number)
                        )
                    return number, (
                        _(
                            "field {fields} has text after its closing quote (a quote inside "
                            "a quoted field must be doubled)"
                        ).format(fields=fields)
                    )
                continue
            if line.startswith('"', pos):
                in_quote, opened, pos = True, (number, fields), pos + 1
                continue
            comma = line.find(",", pos)
            stop = end if comma < 0 else comma
            if '"' in line[pos:stop]:
                return number, (
                    _(
                        "field {fields} holds a quote but does not start with one (quote "
                        "the whole field and double the quotes inside it)"
                    ).format(fields=fields)
                )
            if comma < 0:
                break
            fields, pos = fields + 1, comma + 1
        if in_quote:
            continue
        if width is None:
            width = fields
        elif fields > width:
            if start != number:
                return start, (
                    _(
                        "unbalanced quote: the quote that opens field {value} runs on to "
                        "line {number}, and the record has {fields} fields, the header "
                        "{width}"
                    ).format(value=opened[1], number=number, fields=fields, width=width)
                )
            return number, _("has {fields} fields, the header has {width}").format(
                fields=fields, width=width
            )
    if in_quote:
        return opened[0], _(
            "unbalanced quote: the quote that opens field {value} never closes"
        ).format(value=opened[1])
    return None


def read_csv_strings(utf8: bytes, name: str) -> tuple[pl.DataFrame, int]:
    """Parse CSV bytes into a frame of strings; a file polars cannot parse is rejected.

    Blank lines are skipped (they are not records). Returns the frame and the header's line.
    Never copies the parser's error text: it quotes the file's values (RRNs, card and account
    numbers, names); the broken line is found and described here instead.
    """
    data, header_line = without_blank_lines(utf8)
    try:
        frame = pl.read_csv(io.BytesIO(data), infer_schema=False, truncate_ragged_lines=False)
    except pl.exceptions.NoDataError:
        raise InputRejected(
            name, _("is empty (no header row)"), _("Ask for the extract to be produced again.")
        ) from None
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
        found = shape_problem(utf8.decode("utf-8"))
        if found is None:
            raise InputRejected(
                name,
                _(
                    "is not a well-formed CSV (no line with an unbalanced quote or "
                    "too many fields was found, but the reader could not read it)"
                ),
                _("Check the quoting and the number of fields per line."),
            ) from None
        raise InputRejected(
            name,
            _("is not a well-formed CSV: {value}").format(value=found[1]),
            _("Check the quoting and the number of fields per line."),
            line=found[0],
        ) from None
    return frame, header_line


def check_last_line(utf8: bytes, width: int, name: str) -> None:
    """Reject a CSV whose last line has no line ending: that is what a cut-off file looks like.

    A file cut at a field boundary parses, and polars fills missing fields with nulls, so the
    line ending is the only sign left; a row cut inside a quoted field fails to parse instead.
    Every exporter we know (Excel, polars, Python's csv) ends the last line.
    """
    tail = utf8[utf8.rfind(b"\n") + 1 :]
    if utf8.endswith(b"\n") or not tail.strip(b" \t\r"):  # spaces after it are a blank line
        return
    fields = tail.count(b",") + 1
    shape = (
        _("has {fields} of {width} fields and ").format(fields=fields, width=width)
        if b'"' not in tail and fields < width
        else ""
    )
    raise InputRejected(
        name,
        _(
            "ends in the middle of a row: the last line {shape}has no line "
            "ending, so the file looks truncated"
        ).format(shape=shape),
        _(
            "Copy the complete file again from the source system (if it is "
            "complete, end it with a line break)."
        ),
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
            _("is not a readable Parquet file ({name})").format(name=type(e).__name__),
            _("Ask for the extract to be produced again."),
        ) from None
    for column, dtype in frame.schema.items():
        english = canonical_header(column, kind)
        if dtype.is_nested() or dtype == pl.Binary:
            raise InputRejected(
                name,
                _("column {column!r} is stored as {dtype}, not as text, a number or a date").format(
                    column=column, dtype=dtype
                ),
                _("Write every column of the extract as a plain value (text for identifiers)."),
            )
        if english in TEXT_ONLY and (dtype.is_numeric() or dtype == pl.Boolean):
            raise InputRejected(
                name,
                _(
                    "column {column!r} ({english}) is stored as {dtype}: identifiers "
                    "stored as numbers lose their leading zeros"
                ).format(column=column, english=english, dtype=dtype),
                _(
                    "Write {english} as text (string) in the Parquet file and deliver it again."
                ).format(english=english),
            )
    return frame.select(text_column(frame, column, name, kind) for column in frame.columns)


def text_column(frame: pl.DataFrame, column: str, name: str, kind: Kind) -> pl.Expr:
    """Return one Parquet column as the text a CSV would hold, refusing types that mean no date.

    Date columns take a Date (as YYYY-MM-DD) or a Datetime that is midnight (its date; a
    time-zone-aware one is first converted to Asia/Seoul, so 2024-12-25T15:00Z is 2024-12-26).
    `applied_at` takes a Datetime: one without a zone is Seoul wall time (inputs.md), one with a
    zone is converted to Seoul. Any other type in those columns rejects the file.
    """
    dtype, english = frame.schema[column], canonical_header(column, kind)
    value = pl.col(column)
    if english not in DATE_COLUMNS | TIMESTAMP_COLUMNS or dtype in (pl.String, pl.Null):
        return value.cast(pl.String)
    seoul = value
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        seoul = value.dt.convert_time_zone(SEOUL)
    if english in TIMESTAMP_COLUMNS and isinstance(dtype, pl.Datetime):
        return seoul.dt.strftime("%Y-%m-%d %H:%M:%S")
    if english in DATE_COLUMNS and dtype == pl.Date:
        return value.cast(pl.String)
    if english in DATE_COLUMNS and isinstance(dtype, pl.Datetime):
        timed = frame.select(seoul.dt.time().fill_null(dt.time(0)) != dt.time(0)).to_series()
        if timed.any():
            raise InputRejected(
                name,
                _(
                    "column {column!r} ({english}) is stored as {dtype} and holds a "
                    "time other than 00:00 (in Asia/Seoul for a time zone): a date "
                    "was expected"
                ).format(column=column, english=english, dtype=dtype),
                _("Write {english} as a Date (or as text YYYY-MM-DD) and deliver it again.").format(
                    english=english
                ),
                row=int(timed.arg_true()[0]) + 1,
            )
        return seoul.dt.date().cast(pl.String)
    wanted = _("a date") if english in DATE_COLUMNS else _("a date and time")
    parquet_type = "Parquet Date or Timestamp" if english in DATE_COLUMNS else "Parquet Timestamp"
    raise InputRejected(
        name,
        _("column {column!r} ({english}) is stored as {dtype}, which is not {wanted}").format(
            column=column, english=english, dtype=dtype, wanted=wanted
        ),
        _(
            "Write {english} as {wanted} ({parquet_type}) or as text in the "
            "form inputs.md gives, and deliver it again."
        ).format(english=english, wanted=wanted, parquet_type=parquet_type),
    )


def conform_columns(
    frame: pl.DataFrame, kind: Kind, name: str, header_line: int = 1
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Rename to English, drop blank trailing columns, reject missing columns, add optional ones.

    Unknown extra columns are ignored by every check; their values are kept, as one JSON object
    per row in `source_extra`, so that the quarantine report can show them.
    """
    renamed = {c: canonical_header(c, kind) for c in frame.columns}
    seen: dict[str, str] = {}
    for original, english in renamed.items():
        if english in seen:  # two headers of one name (also two unknown ones: '' and ' ')
            raise InputRejected(
                name,
                _("has the column {english!r} twice ({value!r} and {original!r})").format(
                    english=english, value=seen[english], original=original
                ),
                _("Keep one of them and deliver again."),
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
            _("is missing the required column(s) {listed}").format(listed=listed),
            _("Add the column(s) to the extract's header and deliver it again."),
            line=header_line,
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
        raise InputRejected(name, _("is empty"), _("Ask for the extract to be produced again."))
    header_line = 1
    if path.suffix.lower() == ".parquet":
        frame, encoding, utf8 = read_parquet_strings(raw, name, kind), "parquet", b""
    else:
        utf8, encoding = decode_to_utf8(raw, name)
        utf8 = csv_text(utf8)
        frame, header_line = read_csv_strings(utf8, name)
    width = frame.width
    frame, ignored = conform_columns(frame, kind, name, header_line)
    if frame.height == 0:
        raise InputRejected(
            name,
            _("has a header but no data rows"),
            _("Ask for the extract to be produced again."),
            line=header_line + 1 if encoding != "parquet" else None,
        )
    if encoding != "parquet":
        check_last_line(utf8, width, name)
    frame = frame.with_columns(
        source_kind=pl.lit(kind),
        source_file=pl.lit(name),
        source_sha256=pl.lit(sha256),
        source_row=pl.int_range(1, frame.height + 1, dtype=pl.Int64),
    ).select(*COLUMNS[kind], *SOURCE_COLUMNS)
    fullwidth = encoding == "parquet" or has_fullwidth(utf8)
    info = InputFile(kind, name, str(path), sha256, frame.height, encoding, ignored, fullwidth)
    return frame, info


def printable(name: str) -> str:
    """Return a name with its control characters shown as escapes (for a one-line message)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in name)


def delivery_files(folder: Path) -> list[Path]:
    """Return the folder's .csv and .parquet files in name order; reject every other entry.

    Nothing in a delivery folder is passed over in silence: a subfolder, a hidden file, a link
    or a file of another type would leave applications unread, so each rejects the delivery.
    """
    root = folder.resolve()
    paths = []
    for entry in sorted(folder.iterdir()):
        where = str(entry)
        raw = os.fsencode(entry.name)
        shown = raw.decode("utf-8", "backslashreplace")
        if shown != entry.name or any(not c.isprintable() for c in shown):
            raise InputRejected(
                str(folder / printable(shown)),
                _(
                    "has a name that is not printable UTF-8 text (a byte of another "
                    "encoding or a control character), which no message or record "
                    "could name exactly"
                ),
                _(
                    "Rename the file to plain text (letters, digits, '-', '_', '.') "
                    "and deliver again."
                ),
            )
        if entry.name.startswith("."):
            raise InputRejected(
                where,
                _("is a hidden entry of the delivery folder (its name starts with a dot)"),
                _(
                    "Remove it from the delivery folder, or rename it if it is part "
                    "of the delivery."
                ),
            )
        if entry.is_symlink():
            try:
                target = entry.resolve()
            except (OSError, RuntimeError):  # a loop of links
                target = entry
            if target == entry or not target.exists():
                raise InputRejected(
                    where,
                    _("is a symbolic link that points to nothing"),
                    _(
                        "Copy the file itself into the delivery folder (not a link) and "
                        "remove the link."
                    ),
                )
            if target.parent != root:
                raise InputRejected(
                    where,
                    _("is a symbolic link to something outside the delivery folder"),
                    _(
                        "Copy the file itself into the delivery folder (not a link) and "
                        "remove the link."
                    ),
                )
            raise InputRejected(
                where,
                _(
                    "is a symbolic link to another entry of the delivery folder, "
                    "which would be read twice"
                ),
                _("Remove the link: the file it points to is read anyway."),
            )
        if entry.is_dir():
            raise InputRejected(
                where,
                _("is a folder inside the delivery folder: its files would not be read"),
                _("Move its files up into the delivery folder and remove the subfolder."),
            )
        if not entry.is_file():
            raise InputRejected(
                where,
                _("is not a regular file"),
                _("Remove it from the delivery folder."),
            )
        if entry.suffix.lower() not in (".csv", ".parquet"):
            raise InputRejected(
                where,
                _("is neither .csv nor .parquet"),
                _("Remove it from the delivery folder or convert it."),
            )
        paths.append(entry)
    return paths


def list_delivery(folder: Path, kind: Kind) -> list[Path]:
    """Return the delivery's CSV and Parquet files in name order; reject anything else."""
    if not folder.is_dir():
        raise InputRejected(
            str(folder),
            _("is not a folder of {kind} extracts").format(kind=kind),
            _("Pass the folder that holds the delivery's files."),
        )
    paths = delivery_files(folder)
    if not paths:
        raise InputRejected(
            str(folder),
            _("holds no {kind} files").format(kind=kind),
            _("Copy the delivery's .csv or .parquet files into it."),
        )
    return paths


def chunks(paths: list[Path], chunk_bytes: int | None = None) -> list[tuple[int, list[Path]]]:
    """Group a delivery's files, in name order, into runs of about `chunk_bytes` of input.

    Returns (index of the chunk's first file in the delivery, files). Validating a few large
    chunks instead of hundreds of small files saves the fixed cost of each (a task, a schema).
    """
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    grouped: list[tuple[int, list[Path]]] = []
    size = chunk_bytes
    for i, path in enumerate(paths):
        if size >= chunk_bytes:
            grouped.append((i, []))
            size = 0
        grouped[-1][1].append(path)
        size += path.stat().st_size
    return grouped


def read_delivery(paths: list[Path], kind: Kind) -> Delivery:
    """Read every file of one delivery and stack them into one frame of strings."""
    frames, files = [], []
    for path in paths:
        frame, info = read_file(path, kind)
        frames.append(frame)
        files.append(info)
    names = [f.file for f in files]
    if len(set(names)) != len(names):
        raise InputRejected(
            names[0], _("appears twice in the delivery"), _("Rename one of the files.")
        )
    return Delivery.of(kind, frames, files)


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
