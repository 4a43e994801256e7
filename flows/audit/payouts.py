"""Cross-check a run's payment files against the decision records they came from (issue 14).

A payment file line names a payment (`payment_id`) and its attempt number, a payee (a card id,
or a bank code and account number) and an amount. The decision records keep the payee only as a
keyed hash (`card_key`, `account_key`: `flows.audit.records.payout_columns`), so with the
deployment key (`JIWON_PII_KEY`) the payee of every line is keyed again and compared with the
PAID record of its payment. Reported: a line whose payee, amount, attempt, channel or file
differs from its PAID record, a line with no PAID record, a payment on more than one line, and
a PAID record on no line. Messages show card ids and account numbers masked (`****1234`),
never whole.

`cross_check` is pure (file bytes, decision records and key in, messages out);
`cross_check_trail` reads every committed run of an output root for `jiwon audit verify`.
Everything is polars expressions over whole files: no Python touches one line at a time.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.etree import ElementTree

import polars as pl

from flows.audit.records import ACCOUNT_PREFIX, CARD_PREFIX
from flows.decide.rules import keyed
from flows.i18n import _
from flows.pay import bankfile, pain001

CREDIT_FORMAT = "local_currency_csv"
BANK_FORMAT = "kr_bulk_transfer:"
# What a file line is read into; `payee` (the raw card id or bank_code:account_no) is keyed and
# masked, then dropped, before anything else sees the lines.
LINE_SCHEMA = {
    "file": pl.String,
    "line": pl.Int64,
    "place": pl.String,  # "line 3" or "transaction 2", for messages
    "payment_id": pl.String,
    "attempt": pl.Int64,  # null: the file names no attempt number jiwon can read
    "amount": pl.Int64,
    "payout": pl.String,
    "payee": pl.String,
    "shown": pl.String,
}
# The decision record columns the cross-check reads (`card_key` and `attempt` may be absent:
# older records; a record without `attempt` pays attempt 1).
RECORD_COLUMNS = (
    "outcome",
    "source_kind",
    "payment_id",
    "attempt",
    "payment_file",
    "amount_krw",
    "payout",
    "bank_code",
    "account_key",
    "account_last4",
    "card_key",
)


@dataclass(frozen=True)
class WrittenFile:
    """One payment file of a run as it is on disk: its name, format (manifest) and bytes."""

    file: str
    format: str
    content: bytes


@dataclass(frozen=True)
class CrossCheck:
    """What the cross-check found wrong, and what it could not check (and why)."""

    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


class Unreadable(ValueError):
    """A payment file whose payees cannot be read back."""


def masked(expr: pl.Expr) -> pl.Expr:
    """Return a card id or account number as `****` and its last four digits (long ones only)."""
    return (
        pl.when(expr.str.len_chars() >= 8)
        .then(pl.concat_str(pl.lit("****"), expr.str.slice(-4)))
        .otherwise(pl.lit("****"))
    )


def as_lines(
    data: pl.DataFrame,
    written: WrittenFile,
    first: int,
    word: str,
    payout: str,
    payee: pl.Expr,
    attempt: pl.Expr,
) -> pl.DataFrame:
    """Return a file's records as lines (`LINE_SCHEMA`): numbered from `first`, shown as
    `<word> <n>`, each paying `payee` (the raw card id or bank_code:account_no) by `payout`,
    attempt number `attempt`."""
    line = pl.int_range(pl.len(), dtype=pl.Int64) + first
    card = payout == "local_currency"
    shown = (
        pl.concat_str(pl.lit("card id "), masked(pl.col("card_id")))
        if card
        else pl.format("account {} {}", "bank_code", masked(pl.col("account_no")))
    )
    return data.select(
        file=pl.lit(written.file),
        line=line,
        place=pl.format(f"{word} {{}}", line),
        payment_id="payment_id",
        attempt=attempt,
        amount=pl.col("amount").str.strip_chars().cast(pl.Int64, strict=False)
        if data.schema["amount"] == pl.String
        else pl.col("amount").cast(pl.Int64),
        payout=pl.lit(payout),
        payee=payee,
        shown=shown,
    )


def whole_number(frame: pl.DataFrame, column: str) -> pl.Expr:
    """Return `column` as Int64 (text cast leniently: null when not a whole number), or 1
    when the file has no such column (files written before attempts were numbered)."""
    if column not in frame.columns:
        return pl.lit(1, pl.Int64)
    if frame.schema[column] == pl.String:
        return pl.col(column).str.strip_chars().cast(pl.Int64, strict=False)
    return pl.col(column).cast(pl.Int64)


def bank_payee() -> pl.Expr:
    """Return a bank payout's payee as the run keyed it: `bank_code:account_no`."""
    return pl.concat_str("bank_code", pl.lit(":"), "account_no")


def credit_lines(written: WrittenFile) -> pl.DataFrame:
    """Read the local-currency credit CSV's lines (header is line 1)."""
    try:
        frame = pl.read_csv(io.BytesIO(written.content), infer_schema=False)
    except pl.exceptions.PolarsError as e:
        raise Unreadable(f"not a CSV ({str(e).splitlines()[0]})") from None
    missing = [c for c in ("payment_id", "card_id", "amount") if c not in frame.columns]
    if missing:
        raise Unreadable(f"it has no column {', '.join(missing)}")
    return as_lines(
        frame,
        written,
        2,
        "line",
        "local_currency",
        pl.col("card_id"),
        whole_number(frame, "attempt"),
    )


def bank_lines(written: WrittenFile, layouts: dict[str, bankfile.Layout]) -> pl.DataFrame | None:
    """Read the bulk-transfer file's data records (the header is line 1); None if its layout
    carries no payment id, bank code or account number to check."""
    name = written.format.removeprefix(BANK_FORMAT)
    if name not in layouts:
        raise Unreadable(f"its layout {name!r} is not known here")
    try:
        data = bankfile.read_bank_file(written.content, layouts[name]).data
    except (bankfile.BankFileError, UnicodeDecodeError, ValueError) as e:
        raise Unreadable(str(e)) from None
    if not {"payment_id", "bank_code", "account_no"} <= set(data.columns):
        return None
    return as_lines(data, written, 2, "line", "bank", bank_payee(), whole_number(data, "attempt"))


PAIN001_FIELDS = {  # where a transaction (`CdtTrfTxInf`) keeps what is checked; each occurs once
    "payment_id": "p:PmtId/p:EndToEndId",
    "instruction_id": "p:PmtId/p:InstrId",
    "amount": "p:Amt/p:InstdAmt",
    "bank_code": "p:CdtrAgt/p:FinInstnId/p:ClrSysMmbId/p:MmbId",
    "account_no": "p:CdtrAcct/p:Id/p:Othr/p:Id",
}


def pain001_lines(written: WrittenFile) -> pl.DataFrame:
    """Read a pain.001 message's transactions, numbered from 1, as a bank's XML parser reads
    them (entities, CDATA, namespace prefixes), like `pain001.read_totals`."""
    ns = {"p": pain001.NAMESPACE}
    try:
        root = ElementTree.fromstring(written.content)
    except (ElementTree.ParseError, ValueError) as e:
        raise Unreadable(f"not an XML message ({e})") from None
    if root.tag != f"{{{pain001.NAMESPACE}}}Document":
        raise Unreadable(f"not a {pain001.FORMAT} message")
    txs = root.findall(".//p:CdtTrfTxInf", ns)
    data = pl.DataFrame(
        {
            name: [tx.findtext(path, namespaces=ns) for tx in txs]
            for name, path in PAIN001_FIELDS.items()
        },
        schema=dict.fromkeys(PAIN001_FIELDS, pl.String),
    )
    return as_lines(data, written, 1, "transaction", "bank", bank_payee(), pain001_attempt())


def pain001_attempt() -> pl.Expr:
    """Return the attempt a transaction's `InstrId` (`<payment_id>-<attempt>`) names: 1 when it
    has no `InstrId` (messages written before attempts), null when the id is not of that form."""
    prefix = pl.concat_str("payment_id", pl.lit("-"))
    number = pl.col("instruction_id").str.slice(pl.col("payment_id").str.len_chars() + 1)
    return (
        pl.when(pl.col("instruction_id").is_null())
        .then(pl.lit(1, pl.Int64))
        .when(pl.col("instruction_id").str.starts_with(prefix) & number.str.contains(r"^\d+$"))
        .then(number.cast(pl.Int64, strict=False))
    )


def file_lines(written: WrittenFile, layouts: dict[str, bankfile.Layout]) -> pl.DataFrame | None:
    """Read a payment file's lines in `LINE_SCHEMA`; None when its format carries no payees."""
    if written.format == CREDIT_FORMAT:
        lines: pl.DataFrame | None = credit_lines(written)
    elif written.format.startswith(BANK_FORMAT):
        lines = bank_lines(written, layouts)
    elif written.format == pain001.FORMAT:
        lines = pain001_lines(written)
    else:
        raise Unreadable(f"its format {written.format!r} is not one jiwon writes")
    if lines is None:
        return None
    return lines.cast(LINE_SCHEMA).with_columns(  # type: ignore[arg-type]
        pl.col("shown").fill_null("(none)")
    )


def keyed_lines(lines: pl.DataFrame, key: str) -> pl.DataFrame:
    """Replace each line's raw payee with its keyed hash, as the run keyed it (`payee_key`)."""
    prefix = (
        pl.when(pl.col("payout") == "bank")
        .then(pl.lit(ACCOUNT_PREFIX))
        .otherwise(pl.lit(CARD_PREFIX))
    )
    return (
        lines.with_columns(payee=pl.concat_str(prefix, pl.col("payee")))
        .with_columns(payee_key=keyed("payee", key))
        .drop("payee")
    )


def cross_check(
    files: Sequence[WrittenFile],
    records: pl.DataFrame,
    key: str,
    where: str,
    layouts: dict[str, bankfile.Layout] | None = None,
) -> CrossCheck:
    """Return every payment of `files` that differs from its PAID decision record, and back.

    `records`: the run's decision records (at least `RECORD_COLUMNS` but `card_key`, which
    records written before it lack: then card ids are not compared, and it says so). `key`:
    the deployment key the run used. `layouts`: the bulk-transfer layouts by name. `where`
    starts every message (the run).
    """
    result = CrossCheck()
    parts, skipped = [], []
    for written in files:
        try:
            lines = file_lines(written, layouts or {})
        except Unreadable as e:
            result.problems.append(
                _(
                    "{where}: payment file {file} cannot be read back to cross-check "
                    "its payees against the decision records: {e}"
                ).format(where=where, file=written.file, e=e)
            )
            skipped.append(written.file)
            continue
        if lines is None:
            result.unchecked.append(
                _(
                    "{where}: payment file {file}: its layout has no payment_id, "
                    "bank_code or account_no field, so its payees were not "
                    "cross-checked"
                ).format(where=where, file=written.file)
            )
            skipped.append(written.file)
            continue
        parts.append(keyed_lines(lines, key))
    empty = pl.DataFrame(schema=LINE_SCHEMA).drop("payee").with_columns(payee_key=pl.lit(""))
    lines = pl.concat(parts) if parts else empty.clear()
    card_keys = "card_key" in records.columns
    attempts = pl.col("attempt") if "attempt" in records.columns else pl.lit(1, pl.Int64)
    if not card_keys:
        result.unchecked.append(
            _(
                "{where}: its decision records were written before card_key: "
                "card ids were not cross-checked (amounts and bank accounts were)"
            ).format(where=where)
        )
    paid = (
        records.lazy()
        .filter(pl.col("outcome") == "PAID", pl.col("source_kind") == "registry")
        .with_columns(card_key=pl.col("card_key") if card_keys else pl.lit(None, pl.String))
        .filter(~pl.col("payment_file").fill_null("").is_in(skipped))
        .select(
            "payment_id",
            r_found=pl.lit(True),
            r_file="payment_file",
            r_amount="amount_krw",
            r_attempt=attempts.cast(pl.Int64),
            r_payout="payout",
            r_key=pl.when(pl.col("payout") == "bank").then("account_key").otherwise("card_key"),
            r_shown=pl.when(pl.col("payout") == "bank").then(
                pl.format("account {} ****{}", "bank_code", "account_last4")
            ),
        )
        .collect()
    )
    result.problems.extend(problems(lines, paid, where, card_keys))
    return result


def problems(lines: pl.DataFrame, paid: pl.DataFrame, where: str, card_keys: bool) -> list[str]:
    """Return the messages of lines and PAID records that do not agree (see `cross_check`).

    Lines come first, by file and line, then payments on several lines, then PAID records on no
    line, by payment id.
    """
    at = pl.lit(where)
    pid = pl.col("payment_id").fill_null("(none)")
    amount = pl.col("amount").cast(pl.String).fill_null("(not a whole number)")
    joined = lines.join(paid, on="payment_id", how="left")
    unrecorded = joined.filter(pl.col("r_found").is_null()).select(
        "file",
        "line",
        message=pl.format(
            "{}: payment file {} {} (payment {}, {} won to {}): no PAID decision record of this "
            "run pays it",
            at,
            "file",
            "place",
            pid,
            amount,
            "shown",
        ),
    )
    card = pl.col("r_payout") == "local_currency"
    key_differs = (
        (pl.col("payout") == pl.col("r_payout"))
        & pl.col("payee_key").ne_missing(pl.col("r_key"))
        & (~card | pl.lit(card_keys))
    )
    differences = pl.concat_list(
        pl.when(pl.col("file").ne_missing(pl.col("r_file"))).then(
            pl.format(
                "its decision record names payment file {}", pl.col("r_file").fill_null("none")
            )
        ),
        pl.when(pl.col("payout").ne_missing(pl.col("r_payout"))).then(
            pl.format(
                "it pays by {} but its decision record by {}",
                "payout",
                pl.col("r_payout").fill_null("none"),
            )
        ),
        pl.when(pl.col("amount").ne_missing(pl.col("r_amount"))).then(
            pl.format("amount {} won, its decision record {} won", amount, "r_amount")
        ),
        pl.when(pl.col("attempt").ne_missing(pl.col("r_attempt"))).then(
            pl.format(
                "attempt {}, its decision record attempt {}",
                pl.col("attempt").cast(pl.String).fill_null("(not a number)"),
                pl.col("r_attempt").cast(pl.String).fill_null("(none)"),
            )
        ),
        pl.when(key_differs & card).then(
            pl.format("{} is not the card of its decision record (card_key differs)", "shown")
        ),
        pl.when(key_differs & ~card).then(
            pl.format(
                "{} is not the account of its decision record ({}; account_key differs)",
                "shown",
                pl.col("r_shown").fill_null("none"),
            )
        ),
    ).list.drop_nulls()
    differing = (
        joined.filter(pl.col("r_found"))
        .with_columns(differences=differences)
        .filter(pl.col("differences").list.len() > 0)
        .select(
            "file",
            "line",
            message=pl.format(
                "{}: payment file {} {} (payment {}): {}",
                at,
                "file",
                "place",
                pid,
                pl.col("differences").list.join("; "),
            ),
        )
    )
    repeated = (
        lines.filter(pl.col("payment_id").is_not_null())
        .sort("file", "line")
        .group_by("payment_id", maintain_order=True)
        .agg(n=pl.len(), places=pl.format("{} {}", "file", "place").str.join(", "))
        .filter(pl.col("n") > 1)
        .select(
            message=pl.format(
                "{}: payment {} is on {} lines ({}): one payment paid more than once",
                at,
                "payment_id",
                "n",
                "places",
            )
        )
    )
    lineless = (
        paid.join(lines, on="payment_id", how="anti")
        .sort("payment_id")
        .select(
            message=pl.format(
                "{}: payment {} (PAID {} won{} in {} by its decision record) is on no line of "
                "the run's payment files",
                at,
                "payment_id",
                "r_amount",
                pl.when(pl.col("r_shown").is_not_null())
                .then(pl.format(" to {},", "r_shown"))
                .otherwise(pl.lit(",")),
                pl.col("r_file").fill_null("no file"),
            )
        )
    )
    by_line = pl.concat([unrecorded, differing]).sort("file", "line").select("message")
    messages = pl.concat([by_line, repeated, lineless])["message"]
    return messages.to_list()  # bounded: the mismatches found, each one a line to show
