"""Korean bank bulk-transfer files (대량이체): fixed-length CP949 records from a layout data file.

The layout (schemas/payment_layouts/<name>.csv) says where each field sits; this module only
knows the rules every such layout shares: widths count bytes after CP949 encoding, text is
left-aligned, space-padded and cut at a character boundary, numbers are right-aligned and
zero-padded and never cut, records end with CRLF, and the header and trailer carry the record
count and total amount as control totals.

Text that CP949 cannot encode follows one rule (`cp949_text`): NFKC first (full-width Latin
letters and compatibility forms become plain ones), control characters become spaces, and every
character still outside CP949 becomes `?`. Payments whose holder name lost a character that way
carry the warning `HOLDER_NAME_NOT_CP949` in the audit, so an officer can check the name the
bank saw.

Rendering is vectorised: records are built with polars string expressions and the whole file is
encoded with one `str.encode("cp949")`. Python touches only the distinct non-ASCII characters of
a file (to ask the codec which ones CP949 lacks), never one payee at a time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from flows.errors import UsageError
from flows.money import won_total
from flows.pay.credit import PaymentFile, attempt_of

ENCODING = "cp949"
NEWLINE = "\r\n"
KINDS = ("text", "number", "filler")
LAYOUT_SCHEMA = {
    "record": pl.String,
    "field": pl.String,
    "start": pl.Int64,
    "length": pl.Int64,
    "kind": pl.String,
    "description": pl.String,
}
RECORDS = ("H", "D", "T")
FIELDS = {
    "H": {
        "record_type",
        "batch_id",
        "file_date",
        "file_no",
        "payer_bank_code",
        "payer_account_no",
        "payer_name",
        "record_count",
        "total_amount",
    },
    "D": {"record_type", "seq", "bank_code", "account_no", "amount", "holder_name", "payment_id"}
    | {"memo", "attempt"},
}
FIELDS["T"] = FIELDS["H"]
# A bank's result file echoes each data record with its result appended (flows/results/).
RESULT_FIELDS = {**FIELDS, "D": FIELDS["D"] | {"result_code", "result_message"}}
REQUIRED = {"H": set(), "D": {"amount"}, "T": {"record_count", "total_amount"}}
UNENCODABLE = "?"


class BankFileError(UsageError):
    """A layout, setting or value that cannot make a correct bank file; names what to fix."""


@dataclass(frozen=True)
class Field:
    """One field of one record type."""

    record: str
    name: str
    start: int  # 1-based byte position
    length: int  # bytes after CP949 encoding
    kind: str


@dataclass(frozen=True)
class Layout:
    """A bank's byte layout: the fields of H, D and T records, all `record_length` bytes long."""

    name: str
    fields: tuple[Field, ...]
    record_length: int

    def record(self, code: str) -> list[Field]:
        """Return the fields of one record type in byte order."""
        return [f for f in self.fields if f.record == code]


@dataclass(frozen=True)
class BankSettings:
    """The paying account and the layout (rules/bank.yaml)."""

    payer_name: str
    payer_bank_code: str
    payer_account_no: str
    layout: Layout


def check_layout(fields: list[Field], source: str, known: dict[str, set[str]] | None = None) -> int:
    """Return the record length; raise BankFileError naming the first thing wrong.

    `known`: the field names each record may use (default `FIELDS`; a result layout's are
    `RESULT_FIELDS`).
    """
    known = FIELDS if known is None else known
    lengths = {}
    for code in RECORDS:
        record = sorted((f for f in fields if f.record == code), key=lambda f: f.start)
        if not record or record[0].name != "record_type" or record[0].length != 1:
            raise BankFileError(f"{source}: record {code} must start with record_type (1 byte)")
        position = 1
        for f in record:
            where = f"{source}: record {code} field {f.name}"
            if f.kind not in KINDS:
                raise BankFileError(f"{where}: kind {f.kind!r} is not one of {', '.join(KINDS)}")
            if f.length < 1:
                raise BankFileError(f"{where}: length must be at least 1")
            if f.start != position:
                raise BankFileError(
                    f"{where}: starts at byte {f.start}, expected {position} "
                    "(fields must follow each other with no gap or overlap)"
                )
            if f.kind != "filler" and f.name not in known[code]:
                names = ", ".join(sorted(known[code]))
                raise BankFileError(f"{where}: unknown field; known: {names}")
            position += f.length
        missing = REQUIRED[code] - {f.name for f in record}
        if missing:
            raise BankFileError(f"{source}: record {code} lacks {', '.join(sorted(missing))}")
        lengths[code] = position - 1
    if len(set(lengths.values())) != 1:
        raise BankFileError(f"{source}: records differ in length: {lengths}")
    return lengths["H"]


# -- CP949 text ------------------------------------------------------------------------------


def unencodable_chars(values: pl.Series) -> list[str]:
    """Return the distinct characters of `values` that CP949 cannot encode.

    Python sees each distinct non-ASCII character once (Hangul, Hanja, accented Latin: a few
    thousand at most), not each row.
    """
    non_ascii = values.filter(values.str.contains(r"[^\x00-\x7f]")).unique()
    distinct = (
        non_ascii.str.extract_all(r"[^\x00-\x7f]").explode().drop_nulls().unique().sort()
    ).to_list()  # bounded: one per distinct character
    bad = []
    for char in distinct:
        try:
            char.encode(ENCODING)
        except UnicodeEncodeError:
            bad.append(char)
    return bad


def cp949_text(expr: pl.Expr, unencodable: list[str]) -> pl.Expr:
    """Return text CP949 can encode: NFKC, control characters as spaces, the rest as `?`."""
    text = expr.fill_null("").str.normalize("NFKC").str.replace_all(r"[\x00-\x1f\x7f]", " ")
    if unencodable:
        text = text.str.replace_many(unencodable, [UNENCODABLE] * len(unencodable))
    return text


def cp949_len(expr: pl.Expr) -> pl.Expr:
    """Return the CP949 byte length of encodable text (ASCII 1 byte, anything else 2)."""
    return expr.str.len_chars() + expr.str.count_matches(r"[^\x00-\x7f]")


def cut_text(expr: pl.Expr, width: int) -> pl.Expr:
    """Cut text to at most `width` CP949 bytes at a character boundary.

    A Hangul character that would straddle the last byte is dropped whole, so a 2-byte
    character is never split.
    """
    width_of_char = pl.element().str.len_bytes().clip(upper_bound=2)
    return (
        expr.str.split("")
        .list.eval(pl.element().filter(width_of_char.cum_sum() <= width))
        .list.join("")
    )


def pad_text(expr: pl.Expr, width: int) -> pl.Expr:
    """Pad text of at most `width` CP949 bytes with spaces to exactly `width` bytes."""
    return pl.concat_str(expr, pl.lit(" " * width).str.slice(0, width - cp949_len(expr)))


def fit_text(values: pl.Series, width: int) -> pl.Series:
    """Return each value cut (at a character boundary) and padded to exactly `width` bytes.

    Cutting splits a value into characters, which costs; it runs only on the distinct values
    that are too long (a memo repeated on every record is cut once), mapped back by a hash
    replace. The rest are only padded.
    """
    frame = values.rename("v").to_frame()
    too_long = frame.filter(cp949_len(pl.col("v")) > width)["v"].unique()
    if too_long.len():
        cut = too_long.to_frame().select(cut_text(pl.col("v"), width))["v"]
        frame = frame.with_columns(pl.col("v").replace(too_long, cut))
    return frame.select(pad_text(pl.col("v"), width))["v"].rename(values.name)


def fit_number(expr: pl.Expr, width: int) -> pl.Expr:
    """Right-align a non-negative integer in `width` digits, zero-padded."""
    return expr.cast(pl.Int64).cast(pl.String).str.zfill(width)


def check_numbers(frame: pl.DataFrame, fields: list[Field], what: str) -> None:
    """Refuse numbers that are missing, negative or too wide for their field (never cut)."""
    for f in fields:
        if f.kind != "number":
            continue
        values = frame[f.name]
        bad = values.is_null() | (values < 0) | (values >= 10**f.length)
        if bad.any():
            first = values.filter(bad)[0]
            raise BankFileError(
                f"{what}: {f.name} value {first} does not fit {f.length} digits; the layout "
                "cannot carry it: split the file (max_records_per_file) or use the bank's layout"
            )


def render(frame: pl.DataFrame, fields: list[Field], unencodable: list[str]) -> pl.Series:
    """Return one fixed-length record string per row of `frame`."""
    safe = frame.select(
        cp949_text(pl.col(f.name).cast(pl.String), unencodable) for f in fields if f.kind == "text"
    )
    parts = []
    for f in fields:
        if f.kind == "filler":
            parts.append(pl.lit(" " * f.length))
        elif f.kind == "number":
            parts.append(fit_number(pl.col(f.name), f.length))
        else:
            parts.append(pl.lit(fit_text(safe[f.name], f.length)))
    return frame.select(pl.concat_str(parts).alias("record"))["record"]


def render_file(header: dict[str, Any], data: pl.DataFrame, layout: Layout, what: str) -> bytes:
    """Return one bank file's bytes: header, one data record per row, trailer, CRLF-terminated.

    `header` holds the header and trailer values; `record_count` and `total_amount` are computed
    here from `data`, so the control totals cannot disagree with the records.
    """
    control = dict(header, record_count=data.height, total_amount=won_total(data["amount"]))
    values = {k: control.get(k) for k in FIELDS["H"]}  # bounded: the header record's fields
    ends = pl.DataFrame([values]).with_columns(record_type=pl.lit("H"))
    data = data.with_columns(record_type=pl.lit("D"))
    unencodable = unencodable_chars(
        pl.concat(
            frame[c].unique().str.normalize("NFKC")
            for frame in (data, ends)
            for c in frame.columns
            if frame.schema[c] == pl.String
        )
    )
    check_numbers(data, layout.record("D"), what)
    check_numbers(ends, layout.record("H"), what)
    check_numbers(ends, layout.record("T"), what)
    lines = pl.concat(
        [
            render(ends, layout.record("H"), unencodable),
            render(data, layout.record("D"), unencodable),
            render(ends.with_columns(record_type=pl.lit("T")), layout.record("T"), unencodable),
        ]
    )
    content = (lines.str.join(NEWLINE).item() + NEWLINE).encode(ENCODING)
    if len(content) != lines.len() * (layout.record_length + len(NEWLINE)):
        raise RuntimeError(f"{what}: a record is not {layout.record_length} bytes: a bug")
    return content


def holder_name_lossy(names: pl.Series) -> pl.Series:
    """Return whether each name loses a character to `?` in the bank file (warning code)."""
    unencodable = unencodable_chars(names.fill_null("").str.normalize("NFKC"))
    frame = names.to_frame("n")
    if not unencodable:
        return frame.select(pl.lit(False).alias("lossy"))["lossy"]
    normalised = pl.col("n").fill_null("").str.normalize("NFKC")
    return frame.select(normalised.str.contains_any(unencodable).alias("lossy"))["lossy"]


def data_rows(payees: pl.DataFrame, memo: str) -> pl.DataFrame:
    """Return the data-record values of payees carrying `seq` and `payment_file`.

    `attempt` is the payees' attempt number, 1 when they carry none.
    """
    return payees.select(
        "payment_file",
        "seq",
        "bank_code",
        "account_no",
        pl.col("amount_krw").alias("amount"),
        pl.col("account_holder").alias("holder_name"),
        "payment_id",
        pl.lit(memo).alias("memo"),
        attempt_of(payees),
    )


def bank_files(
    rows: pl.DataFrame, settings: BankSettings, batch_id: str, file_date: dt.date
) -> list[PaymentFile]:
    """Render one bank file per `payment_file` of `rows` (from `data_rows`)."""
    files = []
    for file_no, ((name,), part) in enumerate(
        rows.sort("seq").group_by("payment_file", maintain_order=True), start=1
    ):
        header = {
            "batch_id": batch_id,
            "file_date": f"{file_date:%Y%m%d}",
            "file_no": file_no,
            "payer_bank_code": settings.payer_bank_code,
            "payer_account_no": settings.payer_account_no,
            "payer_name": settings.payer_name,
        }
        content = render_file(header, part.drop("payment_file"), settings.layout, str(name))
        files.append(
            PaymentFile(
                str(name),
                content,
                part.height,
                won_total(part["amount"]),
                format=f"kr_bulk_transfer:{settings.layout.name}",
            )
        )
    return files


# -- reader ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BankFile:
    """A bank file read back: header and trailer values and the data records."""

    header: dict[str, Any]
    data: pl.DataFrame
    trailer: dict[str, Any]


def read_records(content: bytes, fields: list[Field], rows: np.ndarray) -> pl.DataFrame:
    """Decode the fields of the given record rows (a uint8 matrix, one row per record)."""
    columns: dict[str, pl.Series] = {}
    for f in fields:
        if f.kind == "filler":
            continue
        raw = np.ascontiguousarray(rows[:, f.start - 1 : f.start - 1 + f.length])
        values = raw.view(f"S{f.length}").ravel()
        text = pl.Series(f.name, np.char.decode(values, ENCODING).tolist(), dtype=pl.String)
        if f.kind == "number":
            if not text.str.contains(r"^\d+$").all():
                raise BankFileError(f"field {f.name}: not all digits")
            columns[f.name] = text.cast(pl.Int64)
        else:
            columns[f.name] = text.str.strip_chars_end(" ")
    return pl.DataFrame(columns)


def read_bank_file(content: bytes, layout: Layout) -> BankFile:
    """Parse a bank file written with `layout`; check its shape and control totals."""
    width = layout.record_length + len(NEWLINE)
    if len(content) % width:
        raise BankFileError(f"file length {len(content)} is not a multiple of {width} bytes")
    matrix = np.frombuffer(content, dtype=np.uint8).reshape(-1, width)
    if not (matrix[:, -2:] == np.frombuffer(NEWLINE.encode(), dtype=np.uint8)).all():
        raise BankFileError("a record does not end with CRLF at its fixed length")
    codes = matrix[:, 0].tobytes().decode("ascii", errors="replace")
    if len(codes) < 2 or codes[0] != "H" or codes[-1] != "T" or set(codes[1:-1]) - {"D"}:
        raise BankFileError("records must be one H, then D records, then one T")
    header = read_records(content, layout.record("H"), matrix[:1]).row(0, named=True)
    trailer = read_records(content, layout.record("T"), matrix[-1:]).row(0, named=True)
    data = read_records(content, layout.record("D"), matrix[1:-1])
    count, total = data.height, won_total(data["amount"])
    for name, values in (("header", header), ("trailer", trailer)):
        if values.get("record_count", count) != count:
            raise BankFileError(f"{name} record count {values['record_count']} != {count}")
        if values.get("total_amount", total) != total:
            raise BankFileError(f"{name} total {values['total_amount']} != {total}")
    return BankFile(header, data, trailer)
