"""Read a result file from the bank or card operator into one row per answered attempt.

Three formats (spec/lifecycle.md, "Results from the bank or card operator"), told apart by their
content, never by their name:

- `pain.002`: ISO 20022 `pain.002.001.11` (customer payment status report), validated against
  the official XSD (schemas/xsd/pain.002.001.11.xsd). One row per `TxInfAndSts`.
- `bank_result`: the bulk-transfer file echoed back by the bank, CP949 fixed width, each data
  record followed by a 4-character result code and a message (the result layout,
  schemas/payment_layouts/<layout>_result.csv). One row per data record.
- `card_csv`: the local-currency card operator's UTF-8 CSV `payment_id, attempt, card_id,
  amount, status, reason_code, processed_at`. One row per line. The card id is only checked to
  be present: it never leaves this module.

Every row names the attempt it answers (`payment_id`, `attempt`, `instruction_id` =
`<payment_id>-<attempt>`) and says `SETTLED`, `REJECTED`, `RETURNED` or `IN_FLIGHT`, with the
reason's code, its Korean and English meaning and whether the payout details must change before
a retry (`details_wrong`), from the code tables in rules/results/. The readers never decide
that a pain.002 `RJCT` is a return: whether that attempt was settled before is the importer's
knowledge, not the file's.

A file is read whole or refused whole: any fault raises `InputRejected` naming the file, the
line and the fault (exit 3), never a traceback. `parse_result_file` is pure (bytes in, rows
out); `read_result_file` reads the file and the tables.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum, auto
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from lxml import etree

from flows.errors import InputRejected, UsageError, scrub
from flows.i18n import _
from flows.inputs.reference import LAYOUTS_DIR, ROOT, load_layout
from flows.pay.bankfile import RESULT_FIELDS, Layout

ResultFormat = Literal["pain.002", "bank_result", "card_csv"]
RESULT_SCHEMA: dict[str, pl.DataType] = {
    "result_file": pl.String(),
    "result_sha256": pl.String(),
    "result_format": pl.String(),
    "line": pl.Int64(),
    "payment_id": pl.String(),
    "attempt": pl.Int64(),
    "instruction_id": pl.String(),
    "status": pl.String(),
    "reason_code": pl.String(),
    "details_wrong": pl.Boolean(),
    "reason_ko": pl.String(),
    "reason_en": pl.String(),
    "amount_krw": pl.Int64(),
    "processed_at": pl.Datetime("us", "UTC"),
}


class ResultStatus(StrEnum):
    """What a result line says about an attempt (spec/lifecycle.md, "Payment states").

    `RETURNED` only where the file says so (a bank return code, a card `RETURNED` line): a
    pain.002 `RJCT` after an earlier `ACSC` is read as `REJECTED`, and the importer, which
    knows the attempt was settled, records it as returned.
    """

    @staticmethod
    def _generate_next_value_(name: str, start: int, count: int, last_values: list[Any]) -> str:
        return name  # each value is its name

    SETTLED = auto()
    REJECTED = auto()
    RETURNED = auto()
    IN_FLIGHT = auto()


STATUSES = tuple(s.value for s in ResultStatus)
SETTLED, REJECTED, RETURNED, IN_FLIGHT = STATUSES
# What a row without a reason code says (settled, or still in flight).
STATUS_TEXT = {
    SETTLED: ("정상처리", "settled"),
    IN_FLIGHT: ("처리중", "still being processed"),
}
PAIN002 = "pain.002.001.11"
PAIN002_NAMESPACE = f"urn:iso:std:iso:20022:tech:xsd:{PAIN002}"
PAIN002_XSD = ROOT / "schemas" / "xsd" / f"{PAIN002}.xsd"
# pain.002 transaction statuses (ISO external code list ExternalPaymentTransactionStatus1Code).
# ACTC (technically accepted) and RCVD (received) are still in flight, like ACCP/ACSP/PDNG.
ISO_STATUS = {
    "ACSC": SETTLED,
    "ACCC": SETTLED,
    "RJCT": REJECTED,
    "ACCP": IN_FLIGHT,
    "ACSP": IN_FLIGHT,
    "PDNG": IN_FLIGHT,
    "ACTC": IN_FLIGHT,
    "RCVD": IN_FLIGHT,
}
CARD_HEADER = (
    "payment_id",
    "attempt",
    "card_id",
    "amount",
    "status",
    "reason_code",
    "processed_at",
)
CARD_STATUS = {"CREDITED": SETTLED, "REJECTED": REJECTED, "RETURNED": RETURNED}
CODES_DIR = ROOT / "rules" / "results"
CODE_TABLES = {
    "bank_result": "bank_result_codes.csv",
    "pain.002": "iso_status_reasons.csv",
    "card_csv": "card_result_codes.csv",
}
CODE_SCHEMA = {
    "code": pl.String,
    "status": pl.String,
    "reason_ko": pl.String,
    "reason_en": pl.String,
    "details_wrong": pl.Boolean,
}
DEFAULT_RESULT_LAYOUT = "kr_bulk_transfer_default_result"
BANK_ENCODING = "cp949"
CRLF = b"\r\n"
SEOUL = dt.timezone(dt.timedelta(hours=9))
WHOLE_WON = re.compile(r"^\d{1,15}(\.0*)?$")  # up to 15 digits: a quadrillion won


class CodeTableError(UsageError):
    """A code table in rules/results/ that cannot be used (exit 2); names the file and fault."""


@dataclass(frozen=True)
class ResultCodes:
    """The code tables: what each reason code means, by format (rules/results/*.csv)."""

    tables: dict[str, pl.DataFrame]

    def of(self, fmt: str) -> pl.DataFrame:
        """Return the code table of one format."""
        return self.tables[fmt]


# -- reference data (the only reads besides the file itself) ---------------------------------


def load_code_table(path: Path) -> pl.DataFrame:
    """Load one code table strictly: its columns, unique codes, known statuses, true/false."""
    try:
        frame = pl.read_csv(path, schema=CODE_SCHEMA, comment_prefix="#")
    except (OSError, pl.exceptions.PolarsError) as e:
        raise CodeTableError(
            f"{path}: not a code table with columns {', '.join(CODE_SCHEMA)} "
            f"(details_wrong true or false): {str(e).splitlines()[0]}"
        ) from None
    if frame.null_count().sum_horizontal().item():
        raise CodeTableError(f"{path}: a cell is blank; every code needs every column")
    repeated = frame.filter(pl.col("code").is_duplicated())["code"].unique().sort().to_list()
    if repeated:
        raise CodeTableError(f"{path}: code(s) listed twice: {', '.join(repeated)}")
    unknown = set(frame["status"]) - {SETTLED, REJECTED, RETURNED}
    if unknown:
        raise CodeTableError(f"{path}: status must be SETTLED, REJECTED or RETURNED: {unknown}")
    if frame.filter(pl.col("status") == SETTLED, pl.col("details_wrong")).height:
        raise CodeTableError(f"{path}: a SETTLED code cannot say the details are wrong")
    return frame


@cache
def result_codes(folder: Path = CODES_DIR) -> ResultCodes:
    """Load the three code tables of rules/results/."""
    return ResultCodes({fmt: load_code_table(folder / name) for fmt, name in CODE_TABLES.items()})


@cache
def result_layout(name: str = DEFAULT_RESULT_LAYOUT, layouts_dir: Path = LAYOUTS_DIR) -> Layout:
    """Load a bank result layout: a bulk-transfer layout whose data records carry the result."""
    layout = load_layout(name, layouts_dir, RESULT_FIELDS)
    missing = {"payment_id", "amount", "result_code"} - {f.name for f in layout.record("D")}
    if missing:
        raise CodeTableError(
            f"result layout {name}: its D record lacks {', '.join(sorted(missing))}"
        )
    return layout


@cache
def pain002_schema() -> etree.XMLSchema:
    """Return the official pain.002.001.11 schema."""
    return etree.XMLSchema(etree.parse(str(PAIN002_XSD)))


def read_result_file(path: Path, layout: Layout | None = None) -> pl.DataFrame:
    """Read one result file into `RESULT_SCHEMA` rows; refuse it whole (`InputRejected`).

    `layout`: the bank result layout (default `kr_bulk_transfer_default_result`).
    """
    content = path.read_bytes()
    return parse_result_file(
        path.name, content, layout or result_layout(), result_codes(), pain002_schema()
    )


# -- the pure part ---------------------------------------------------------------------------


def parse_result_file(
    name: str,
    content: bytes,
    layout: Layout,
    codes: ResultCodes,
    schema: etree.XMLSchema,
) -> pl.DataFrame:
    """Return a result file's rows (`RESULT_SCHEMA`), its format told from its content."""
    fmt = detect_format(name, content)
    if fmt == "pain.002":
        rows = pain002_rows(name, content, schema)
    elif fmt == "bank_result":
        rows = bank_result_rows(name, content, layout, codes.of(fmt))
    else:
        rows = card_rows(name, content)
    rows = explained(name, rows, codes.of(fmt), CODE_TABLES[fmt])
    return rows.select(
        result_file=pl.lit(name),
        result_sha256=pl.lit(hashlib.sha256(content).hexdigest()),
        result_format=pl.lit(fmt),
        line="line",
        payment_id="payment_id",
        attempt="attempt",
        instruction_id=pl.format("{}-{}", "payment_id", "attempt"),
        status="status",
        reason_code="reason_code",
        details_wrong="details_wrong",
        reason_ko="reason_ko",
        reason_en="reason_en",
        amount_krw="amount_krw",
        processed_at="processed_at",
    ).cast(RESULT_SCHEMA)  # type: ignore[arg-type]


def detect_format(name: str, content: bytes) -> ResultFormat:
    """Tell a result file's format from its first bytes (and, for XML, its root element)."""
    start = content.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not start:
        raise InputRejected(
            name, _("is an empty result file"), _("Ask the bank or card operator to send it again.")
        )
    if start.startswith(b"<"):
        return "pain.002"
    if start[:1] == b"H":
        return "bank_result"
    first = start.split(b"\n", 1)[0].rstrip(b"\r")
    if first == ",".join(CARD_HEADER).encode():
        return "card_csv"
    raise InputRejected(
        name,
        _(
            "is not a result file jiwon reads (a pain.002.001.11 status "
            "report, a bank bulk-transfer result file starting with its H "
            "record, or the card operator's credit result CSV with the "
            "header "
            "payment_id,attempt,card_id,amount,status,reason_code,processed_at)"
        ),
        _(
            "Import the result file the bank or card operator sent, as it "
            "came (a payment file jiwon wrote is not a result)."
        ),
        line=1,
    )


def row_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Return parsed rows as a frame of the columns every reader hands to `explained`."""
    return pl.DataFrame(
        rows,
        schema={
            "_at": pl.Int64,
            "_where": pl.String,
            "line": pl.Int64,
            "payment_id": pl.String,
            "attempt": pl.Int64,
            "status": pl.String,
            "reason_code": pl.String,
            "amount_krw": pl.Int64,
            "processed_at": pl.Datetime("us", "UTC"),
        },
    )


def explained(name: str, rows: pl.DataFrame, table: pl.DataFrame, table_file: str) -> pl.DataFrame:
    """Give each row its reason's meaning from `table`; refuse unknown codes and duplicates.

    `_at` is the file line a message names and `_where` what precedes the fault in it (a
    pain.002 transaction's number). A row without a status (bank results) takes its code's.
    """
    if rows.height == 0:
        raise InputRejected(
            name,
            _("answers no payment (it has no result lines)"),
            _("Ask the sender for the file with its results; an empty answer is not imported."),
        )
    joined = rows.join(
        table.rename({"status": "_code_status"}), left_on="reason_code", right_on="code", how="left"
    ).sort("line")
    unknown = first_row(
        joined.filter(pl.col("reason_code").is_not_null(), pl.col("reason_en").is_null())
    )
    if unknown:
        raise InputRejected(
            name,
            _("{where}unknown reason code {reason_code}").format(
                where=unknown["_where"], reason_code=unknown["reason_code"]
            ),
            _(
                "Ask the sender what the code means, add it to "
                "rules/results/{table_file} (with whether the payout details "
                "must change before a retry) and import the file again."
            ).format(table_file=table_file),
            line=unknown["_at"],
        )
    joined = joined.with_columns(status=pl.coalesce("status", "_code_status"))
    clash = first_row(
        joined.filter(
            pl.col("_code_status").is_not_null(), pl.col("_code_status") != pl.col("status")
        )
    )
    if clash:
        raise InputRejected(
            name,
            _(
                "{where}reason code {reason_code} is a {code_status} code, but "
                "the line's status is {status}"
            ).format(
                where=clash["_where"],
                reason_code=clash["reason_code"],
                code_status=clash["_code_status"],
                status=clash["status"],
            ),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=clash["_at"],
        )
    low = first_row(joined.filter(pl.col("attempt") < 1))
    if low:
        raise InputRejected(
            name,
            _("{where}attempt {attempt} is not a number from 1").format(
                where=low["_where"], attempt=low["attempt"]
            ),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=low["_at"],
        )
    refuse_duplicates(name, joined)
    reasoned = pl.col("reason_code").is_not_null() & pl.col("status").is_in([REJECTED, RETURNED])
    text = {s: pl.col("status") == s for s in STATUS_TEXT}
    return joined.with_columns(
        reason_code=pl.when(reasoned).then("reason_code"),
        details_wrong=pl.when(reasoned).then("details_wrong").otherwise(False),
        reason_ko=pl.when(reasoned)
        .then("reason_ko")
        .when(text[SETTLED])
        .then(pl.lit(STATUS_TEXT[SETTLED][0]))
        .otherwise(pl.lit(STATUS_TEXT[IN_FLIGHT][0])),
        reason_en=pl.when(reasoned)
        .then("reason_en")
        .when(text[SETTLED])
        .then(pl.lit(STATUS_TEXT[SETTLED][1]))
        .otherwise(pl.lit(STATUS_TEXT[IN_FLIGHT][1])),
    )


def refuse_duplicates(name: str, rows: pl.DataFrame) -> None:
    """Refuse a file that answers one attempt (instruction id) twice."""
    key = ["payment_id", "attempt"]
    again = first_row(
        rows.with_columns(
            _n=pl.int_range(pl.len()).over(key), _first=pl.col("_at").first().over(key)
        ).filter(pl.col("_n") > 0)
    )
    if again:
        raise InputRejected(
            name,
            _(
                "{where}instruction {payment_id}-{attempt} is answered twice "
                "(first on line {first})"
            ).format(
                where=again["_where"],
                payment_id=again["payment_id"],
                attempt=again["attempt"],
                first=again["_first"],
            ),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=again["_at"],
        )


def first_row(frame: pl.DataFrame) -> dict[str, Any] | None:
    """Return the first row of `frame` (the first fault), or None when it has none."""
    return frame.row(0, named=True) if frame.height else None


def timestamp(text: str) -> dt.datetime | None:
    """Return an ISO 8601 date and time in UTC (no offset: Asia/Seoul), or None if it is not one."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
        if value.tzinfo is None:
            value = value.replace(tzinfo=SEOUL)
        return value.astimezone(dt.UTC)
    except (ValueError, OverflowError):  # not a time, or beyond year 1-9999 in UTC
        return None


def whole_won(text: str) -> int | None:
    """Return an amount as whole won (`100000`, `100000.00`), or None if it is not one."""
    text = text.strip()
    if not WHOLE_WON.fullmatch(text):
        return None
    return int(Decimal(text))


# -- pain.002.001.11 -------------------------------------------------------------------------


def xml_root(name: str, content: bytes) -> etree._Element:
    """Parse XML without entities, DTDs or network access; refuse a broken document."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        return etree.fromstring(content, parser)
    except etree.XMLSyntaxError as e:
        raise InputRejected(
            name,
            _("is not well-formed XML: {scrub}").format(scrub=scrub(str(e.msg))),
            _(
                "Ask the bank to send the status report again (it looks "
                "truncated or damaged); do not edit it by hand."
            ),
            line=e.lineno,
        ) from None


def schema_message(message: str) -> str:
    """Return an XSD error without namespaces and with quoted values hidden (personal data)."""
    plain = re.sub(r"\{[^}]*\}", "", message)
    plain = re.sub(r"Element '([\w:]+)'", r"element \1", plain)
    plain = re.sub(r"attribute '([\w:]+)'", r"attribute \1", plain)
    return scrub(plain)


def pain002_rows(name: str, content: bytes, schema: etree.XMLSchema) -> pl.DataFrame:
    """Read a pain.002.001.11 report: one row per `TxInfAndSts`, its totals checked."""
    root = xml_root(name, content)
    ns = {"p": PAIN002_NAMESPACE}
    if etree.QName(root).localname != "Document" or not any(
        isinstance(child.tag, str) and etree.QName(child).localname == "CstmrPmtStsRpt"
        for child in root
    ):
        raise InputRejected(
            name,
            _(
                "is XML but not a payment status report (its root is not a "
                "Document holding CstmrPmtStsRpt)"
            ),
            _(
                "Import the result file the bank or card operator sent, as it "
                "came (a payment file jiwon wrote is not a result)."
            ),
            line=root.sourceline,
        )
    if not schema.validate(root):
        error = schema.error_log[0]
        raise InputRejected(
            name,
            _("is not a valid {pain002} message: {schema_message}").format(
                pain002=PAIN002, schema_message=schema_message(error.message)
            ),
            _(
                "Ask the bank for a pain.002.001.11 status report that validates "
                "against the official schema."
            ),
            line=error.line,
        )
    report = root.find("p:CstmrPmtStsRpt", ns)
    group = None if report is None else report.find("p:OrgnlGrpInfAndSts", ns)
    if report is None or group is None:  # the schema requires both: a bug if reached
        raise RuntimeError(f"{name}: a valid pain.002 without CstmrPmtStsRpt/OrgnlGrpInfAndSts")
    created = timestamp(report.findtext("p:GrpHdr/p:CreDtTm", "", ns))
    rows: list[dict[str, Any]] = []
    for payment in report.iterfind("p:OrgnlPmtInfAndSts", ns):
        outer = [group, payment]
        first = len(rows)
        for tx in payment.iterfind("p:TxInfAndSts", ns):
            rows.append(transaction(name, tx, len(rows) + 1, outer, created))
        check_totals(
            name,
            payment,
            rows[first:],
            f"OrgnlPmtInfAndSts {payment.findtext('p:OrgnlPmtInfId', '', ns)}",
        )
    check_totals(name, group, rows, "OrgnlGrpInfAndSts")
    return row_frame(rows)


def reason_of(element: etree._Element) -> str | None:
    """Return the first status reason code (`Cd` or `Prtry`) of an element, or None."""
    ns = {"p": PAIN002_NAMESPACE}
    for path in ("p:StsRsnInf/p:Rsn/p:Cd", "p:StsRsnInf/p:Rsn/p:Prtry"):
        code = element.findtext(path, None, ns)
        if code and code.strip():
            return code.strip()
    return None


def status_of(element: etree._Element) -> str | None:
    """Return the status code of a transaction, payment information or group element."""
    ns = {"p": PAIN002_NAMESPACE}
    for tag in ("p:TxSts", "p:PmtInfSts", "p:GrpSts"):
        code = element.findtext(tag, None, ns)
        if code:
            return code.strip()
    return None


def transaction(
    name: str,
    tx: etree._Element,
    position: int,
    outer: list[etree._Element],
    created: dt.datetime | None,
) -> dict[str, Any]:
    """Return one `TxInfAndSts` as a row; `outer` is its group and payment information."""
    ns = {"p": PAIN002_NAMESPACE}
    where, at = f"transaction {position}: ", tx.sourceline
    ids = {}
    for tag in ("OrgnlEndToEndId", "OrgnlInstrId"):
        ids[tag] = (tx.findtext(f"p:{tag}", "", ns) or "").strip()
        if not ids[tag]:
            raise InputRejected(
                name,
                _("{where}the original id {tag} is missing or blank").format(where=where, tag=tag),
                _("Ask the sender for a corrected file; nothing of this one was recorded."),
                line=at,
            )
    payment_id, instruction = ids["OrgnlEndToEndId"], ids["OrgnlInstrId"]
    number = instruction.removeprefix(f"{payment_id}-")
    if number == instruction or not number.isdigit() or str(int(number)) != number:
        raise InputRejected(
            name,
            _(
                "{where}OrgnlInstrId {instruction} is not OrgnlEndToEndId "
                "{payment_id} followed by -<attempt>"
            ).format(where=where, instruction=instruction, payment_id=payment_id),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=at,
        )
    rejected_above = [e for e in outer if status_of(e) == "RJCT"]
    code = (
        "RJCT"
        if rejected_above
        else status_of(tx) or next((s for e in reversed(outer) if (s := status_of(e))), None)
    )
    status = ISO_STATUS.get(code or "")
    if status is None:
        raise InputRejected(
            name,
            _(
                "{where}unknown status {value} (ACSC or ACCC settled, RJCT "
                "rejected, ACCP, ACSP, PDNG, ACTC or RCVD in flight)"
            ).format(where=where, value=code or "(none)"),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=at,
        )
    reason = None
    if status == REJECTED:
        reason = reason_of(tx) or next(
            (r for e in reversed(rejected_above) if (r := reason_of(e))), None
        )
        if reason is None:
            raise InputRejected(
                name,
                _("{where}is rejected (RJCT) without a reason code (StsRsnInf/Rsn/Cd)").format(
                    where=where
                ),
                _("Ask the sender for a corrected file; nothing of this one was recorded."),
                line=at,
            )
    amount = tx.find("p:OrgnlTxRef/p:Amt/p:InstdAmt", ns)
    if amount is None:
        raise InputRejected(
            name,
            _("{where}OrgnlTxRef/Amt/InstdAmt (the amount) is missing").format(where=where),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=at,
        )
    if amount.get("Ccy") != "KRW":
        raise InputRejected(
            name,
            _("{where}amount in {get}, not KRW").format(where=where, get=amount.get("Ccy")),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=amount.sourceline,
        )
    won = whole_won(amount.text or "")
    if won is None:
        raise InputRejected(
            name,
            _("{where}amount {text} is not a whole number of won").format(
                where=where, text=amount.text
            ),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=amount.sourceline,
        )
    accepted = tx.findtext("p:AccptncDtTm", None, ns)
    return {
        "_at": at,
        "_where": where,
        "line": position,
        "payment_id": payment_id,
        "attempt": int(number),
        "status": status,
        "reason_code": reason,
        "amount_krw": won,
        "processed_at": timestamp(accepted) if accepted else created,
    }


def check_totals(name: str, element: etree._Element, rows: list[dict[str, Any]], what: str) -> None:
    """Refuse control totals (`OrgnlNbOfTxs`, `OrgnlCtrlSum`) that differ from the rows."""
    ns = {"p": PAIN002_NAMESPACE}
    count = element.findtext("p:OrgnlNbOfTxs", None, ns)
    if count is not None and int(count) != len(rows):
        raise InputRejected(
            name,
            _("{what} OrgnlNbOfTxs {count} differs from the {len} transactions it reports").format(
                what=what, count=count, len=len(rows)
            ),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=element.sourceline,
        )
    total = element.findtext("p:OrgnlCtrlSum", None, ns)
    won = sum(r["amount_krw"] for r in rows)
    if total is not None and Decimal(total) != won:
        raise InputRejected(
            name,
            _(
                "{what} OrgnlCtrlSum {total} differs from the {won} won of the "
                "transactions it reports"
            ).format(what=what, total=total, won=won),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=element.sourceline,
        )


# -- bank bulk-transfer result file ----------------------------------------------------------


def bank_result_rows(
    name: str, content: bytes, layout: Layout, table: pl.DataFrame
) -> pl.DataFrame:
    """Read a bank result file (`layout`): one row per D record, its control totals checked."""
    try:
        content.decode(BANK_ENCODING)
    except UnicodeDecodeError as e:
        raise InputRejected(
            name,
            _("is not CP949 text (byte {value} is not a CP949 character)").format(
                value=e.start + 1
            ),
            _("Ask the sender for the file again; do not edit it by hand."),
            line=content.count(b"\n", 0, e.start) + 1,
        ) from None
    records = content.split(CRLF)
    if records[-1]:
        raise InputRejected(
            name,
            _("does not end with CRLF: the last record looks truncated"),
            _("Ask the sender for the file again; do not edit it by hand."),
            line=len(records),
        )
    records = records[:-1]
    for number, record in enumerate(records, start=1):
        if len(record) != layout.record_length:
            raise InputRejected(
                name,
                _(
                    "record is {len} bytes, the result layout {name} has "
                    "{record_length} bytes per record (ending in CRLF)"
                ).format(len=len(record), name=layout.name, record_length=layout.record_length),
                _(
                    "Check that the file is the bank's result file for this layout "
                    "(a payment file jiwon wrote is not a result); otherwise ask the "
                    "bank to send it again."
                ),
                line=number,
            )
    if len(records) < 2:
        raise InputRejected(
            name,
            _(
                "has {len} record(s): a result file has one H record, its D "
                "records and one T record"
            ).format(len=len(records)),
            _("Ask the sender for the file again; do not edit it by hand."),
            line=1,
        )
    for number, record in enumerate(records, start=1):
        expected = "H" if number == 1 else "T" if number == len(records) else "D"
        if record[:1] != expected.encode():
            raise InputRejected(
                name,
                _(
                    "record type {decode} where {expected} was expected (one H "
                    "record, then D records, then one T record)"
                ).format(decode=record[:1].decode("ascii", "replace"), expected=expected),
                _("Ask the sender for the file again; do not edit it by hand."),
                line=number,
            )
    matrix = np.frombuffer(b"".join(records), dtype=np.uint8).reshape(len(records), -1)
    data = fields_of(name, matrix[1:-1], layout, "D", first_line=2)
    for at, code in ((1, "H"), (len(records), "T")):
        ends = fields_of(name, matrix[at - 1 : at], layout, code, first_line=at).row(0, named=True)
        check_control(name, ends, data, code, at)
    attempt = pl.col("attempt") if "attempt" in data.columns else pl.lit(1, pl.Int64)
    blank = first_row(
        data.with_row_index("_i").filter(
            (pl.col("payment_id") == "") | (pl.col("result_code") == "")
        )
    )
    if blank:
        field = "payment_id" if blank["payment_id"] == "" else "result_code"
        raise InputRejected(
            name,
            _("field {field} is blank").format(field=field),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=blank["_i"] + 2,
        )
    return data.select(
        _at=pl.int_range(2, pl.len() + 2, dtype=pl.Int64),
        _where=pl.lit(""),
        line=pl.int_range(2, pl.len() + 2, dtype=pl.Int64),
        payment_id="payment_id",
        attempt=attempt,
        status=pl.lit(None, pl.String),
        reason_code="result_code",
        amount_krw="amount",
        processed_at=pl.lit(None, pl.Datetime("us", "UTC")),
    )


def fields_of(
    name: str, rows: np.ndarray, layout: Layout, code: str, first_line: int
) -> pl.DataFrame:
    """Decode the fields of one record type (a uint8 matrix, one row per record)."""
    columns: dict[str, pl.Series] = {}
    for f in layout.record(code):
        if f.kind == "filler" or f.name == "record_type":
            continue
        raw = np.ascontiguousarray(rows[:, f.start - 1 : f.start - 1 + f.length])
        values = raw.view(f"S{f.length}").ravel()
        try:
            decoded = np.char.decode(values, BANK_ENCODING).tolist()
        except UnicodeDecodeError:
            bad = next(i for i, v in enumerate(values) if not decodes(v))
            raise InputRejected(
                name,
                _("field {name} splits a CP949 character (it is not whole text)").format(
                    name=f.name
                ),
                _("Ask the sender for the file again; do not edit it by hand."),
                line=first_line + bad,
            ) from None
        text = pl.Series(f.name, decoded, dtype=pl.String)
        if f.kind == "number":
            digits = text.str.contains(r"^\d+$")
            if not digits.all():
                raise InputRejected(
                    name,
                    _("field {name} holds something other than digits").format(name=f.name),
                    _("Ask the sender for a corrected file; nothing of this one was recorded."),
                    line=first_line + int(digits.arg_min() or 0),
                )
            columns[f.name] = text.cast(pl.Int64)
        else:
            columns[f.name] = text.str.strip_chars_end(" ")
    return pl.DataFrame(columns)


def decodes(value: bytes) -> bool:
    """Return whether bytes are CP949 text."""
    try:
        value.decode(BANK_ENCODING)
    except UnicodeDecodeError:
        return False
    return True


def check_control(name: str, ends: dict[str, Any], data: pl.DataFrame, code: str, at: int) -> None:
    """Refuse a header or trailer whose record count or total differs from the data records."""
    count, total = data.height, int(data["amount"].sum())
    if "record_count" in ends and ends["record_count"] != count:
        raise InputRejected(
            name,
            _("{code} record_count {record_count} differs from the {count} data records").format(
                code=code, record_count=ends["record_count"], count=count
            ),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=at,
        )
    if "total_amount" in ends and ends["total_amount"] != total:
        raise InputRejected(
            name,
            _(
                "{code} total_amount {total_amount} differs from the {total} won "
                "of the data records"
            ).format(code=code, total_amount=ends["total_amount"], total=total),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=at,
        )


# -- card operator's credit result CSV -------------------------------------------------------


def card_lines(name: str, content: bytes) -> Iterator[tuple[int, list[str]]]:
    """Yield (line, fields) of each record after the header; refuse a wrong field count."""
    try:
        text = content.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise InputRejected(
            name,
            _("is not UTF-8 text (byte {value} is not UTF-8)").format(value=e.start + 1),
            _(
                "Ask the card operator to send the result file again as UTF-8; "
                "do not re-save it in a spreadsheet."
            ),
            line=content.count(b"\n", 0, e.start) + 1,
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)  # the header, which `detect_format` read
    try:
        for fields in reader:
            if len(fields) != len(CARD_HEADER):
                raise InputRejected(
                    name,
                    _("has {len} fields, the header has {len2}").format(
                        len=len(fields), len2=len(CARD_HEADER)
                    ),
                    _("Ask the sender for a corrected file; nothing of this one was recorded."),
                    line=reader.line_num,
                )
            yield reader.line_num, fields
    except csv.Error as e:
        raise InputRejected(
            name,
            _("is not a well-formed result CSV: {e}").format(e=e),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=reader.line_num,
        ) from None


def card_rows(name: str, content: bytes) -> pl.DataFrame:
    """Read the card operator's credit result CSV: one row per line after the header."""
    lines = list(card_lines(name, content))
    frame = pl.DataFrame(
        [dict(zip(CARD_HEADER, f, strict=True), _at=n) for n, f in lines],
        schema={**dict.fromkeys(CARD_HEADER, pl.String), "_at": pl.Int64},
    ).with_columns(pl.col(c).str.strip_chars() for c in CARD_HEADER)
    required = [c for c in CARD_HEADER if c != "reason_code"]
    for column in required:
        blank = first_row(frame.filter(pl.col(column) == ""))
        if blank:
            raise InputRejected(
                name,
                _("{column} is blank").format(column=column),
                _("Ask the sender for a corrected file; nothing of this one was recorded."),
                line=blank["_at"],
            )
    status = first_row(frame.filter(~pl.col("status").is_in(list(CARD_STATUS))))
    if status:
        raise InputRejected(
            name,
            _("unknown status {status} (CREDITED, REJECTED or RETURNED)").format(
                status=status["status"]
            ),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=status["_at"],
        )
    credited = pl.col("status") == "CREDITED"
    reason = first_row(frame.filter(credited != (pl.col("reason_code") == "")))
    if reason:
        raise InputRejected(
            name,
            _(
                "status {status} with reason code '{reason_code}' (a CREDITED "
                "line has no reason code, a REJECTED or RETURNED line has one)"
            ).format(status=reason["status"], reason_code=reason["reason_code"]),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=reason["_at"],
        )
    attempt = first_row(frame.filter(~pl.col("attempt").str.contains(r"^[1-9]\d{0,8}$")))
    if attempt:
        raise InputRejected(
            name,
            _("attempt {attempt} is not a number from 1").format(attempt=attempt["attempt"]),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=attempt["_at"],
        )
    amount = first_row(frame.filter(~pl.col("amount").str.contains(WHOLE_WON.pattern)))
    if amount:
        raise InputRejected(
            name,
            _("amount {amount} is not a whole number of won").format(amount=amount["amount"]),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=amount["_at"],
        )
    times = {t: timestamp(t) for t in frame["processed_at"].unique().to_list()}
    when = first_row(
        frame.filter(pl.col("processed_at").is_in([t for t, v in times.items() if v is None]))
    )
    if when:
        raise InputRejected(
            name,
            _("processed_at {processed_at} is not an ISO 8601 date and time").format(
                processed_at=when["processed_at"]
            ),
            _("Ask the sender for a corrected file; nothing of this one was recorded."),
            line=when["_at"],
        )
    return frame.select(
        "_at",
        _where=pl.lit(""),
        line="_at",
        payment_id="payment_id",
        attempt=pl.col("attempt").cast(pl.Int64),
        status=pl.col("status").replace_strict(CARD_STATUS),
        reason_code=pl.when(~credited).then("reason_code"),
        amount_krw=pl.col("amount").str.replace(r"\.0*$", "").cast(pl.Int64),
        processed_at=pl.col("processed_at").replace_strict(
            times, return_dtype=pl.Datetime("us", "UTC")
        ),
    )
