"""A simulated bank and card operator: answer a committed run's payment files with result files.

For tests, demos and rehearsals of the result import, never for money. Given a run's payment
folder (`OUT/payments/<program>/<run_id>/`: its payment files and `manifest.json`, the bank's
own input), it writes what the bank and the card operator would send back:

- for each credit CSV, a card operator result CSV (`<file>_result.csv`);
- for each bulk-transfer file, the bank's result file in the layout `<layout>_result`
  (`<file>_result.dat`);
- for each pain.001, a pain.002.001.11 status report (`<file>_pain002.xml`), valid against the
  official schema.

A share of the payments (`reject_share`, over the whole run) is rejected with a realistic reason
(mostly ones that mean the payout details are wrong, some temporary failures); another share
(`return_share`) is settled in the first answer and sent back later, in a separate file per
payment file (`<file>_returns.csv`, `<file>_returns.dat`, `<file>_returns_pain002.xml`). Which
payments and which reasons follow from `seed` alone: the same folder and seed give the same
bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import polars as pl
from lxml import etree

from flows.errors import UsageError
from flows.i18n import _
from flows.inputs.reference import load_layout
from flows.pay import bankfile, pain001
from flows.results import formats

SEOUL = formats.SEOUL
# How often a simulated answer picks a reason of the code table: mostly reasons that mean the
# payout details are wrong, some temporary failures.
WEIGHT_DETAILS_WRONG, WEIGHT_TEMPORARY = 3, 1
RESULT_MESSAGE_BYTES = 40


@dataclass(frozen=True)
class PaymentFileIn:
    """One payment file of the run as the bank receives it."""

    file: str
    format: str
    content: bytes


def simulate(
    payment_dir: Path,
    dest: Path,
    reject_share: float = 0.05,
    return_share: float = 0.01,
    seed: int = 0,
) -> list[Path]:
    """Write result files answering every payment of a run's payment folder into `dest`.

    Returns the files written: first the answers (settled or rejected, one file per payment
    file), then the returns (separate later files, only for payment files with returns).
    """
    manifest = json.loads((payment_dir / "manifest.json").read_text(encoding="utf-8"))
    files = [
        PaymentFileIn(e["file"], e["format"], (payment_dir / e["file"]).read_bytes())
        for e in manifest["files"]
    ]
    layouts = {
        name: (load_layout(name), formats.result_layout(f"{name}_result"))
        for f in files
        if f.format.startswith("kr_bulk_transfer:")
        for name in [f.format.removeprefix("kr_bulk_transfer:")]
    }
    answered_at = answer_time(str(manifest.get("run_id", "")))
    written = simulated_files(
        files, layouts, formats.result_codes(), reject_share, return_share, seed, answered_at
    )
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in written:
        path = dest / name
        path.write_bytes(content)
        paths.append(path)
    return paths


def answer_time(run_id: str) -> dt.datetime:
    """Return when the simulated bank answers: a day after the run (its id starts with its time)."""
    try:
        started = dt.datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        started = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return started + dt.timedelta(days=1)


def simulated_files(
    files: list[PaymentFileIn],
    layouts: dict[str, tuple[bankfile.Layout, bankfile.Layout]],
    codes: formats.ResultCodes,
    reject_share: float,
    return_share: float,
    seed: int,
    answered_at: dt.datetime,
) -> list[tuple[str, bytes]]:
    """Return (name, bytes) of every result file: answers first, then returns."""
    if min(reject_share, return_share) < 0 or reject_share + return_share > 1:
        raise UsageError(
            _("reject_share and return_share must be between 0 and 1 and add up to at most 1")
        )
    payments = [payments_of(f, layouts) for f in files]
    fates = outcomes(
        pl.concat([p.select("payment_id", "_fmt") for p in payments]),
        reasons(codes),
        reject_share,
        return_share,
        seed,
    )
    answers, returns = [], []
    returned_at = answered_at + dt.timedelta(days=7)
    for written, rows in zip(files, payments, strict=True):
        rows = rows.join(fates, on="payment_id", how="left", maintain_order="left")
        stem = written.file.rsplit(".", 1)[0]
        late = rows.filter(pl.col("_fate") == "returned")
        if written.format == "local_currency_csv":
            answers.append((f"{stem}_result.csv", card_csv(rows, answered_at, final=False)))
            if late.height:
                returns.append((f"{stem}_returns.csv", card_csv(late, returned_at, final=True)))
        elif written.format == pain001.FORMAT:
            original = pain001_header(written.content)
            answers.append(
                (f"{stem}_pain002.xml", pain002(rows, original, answered_at, returns=False))
            )
            if late.height:
                returns.append(
                    (f"{stem}_returns_pain002.xml", pain002(late, original, returned_at, True))
                )
        else:
            layout, result = layouts[written.format.removeprefix("kr_bulk_transfer:")]
            read = bankfile.read_bank_file(written.content, layout)
            table = codes.of("bank_result")
            answers.append(
                (f"{stem}_result.dat", bank_result(read, rows, result, table, final=False))
            )
            if late.height:
                returns.append(
                    (f"{stem}_returns.dat", bank_result(read, late, result, table, final=True))
                )
    return answers + returns


def payments_of(
    written: PaymentFileIn, layouts: dict[str, tuple[bankfile.Layout, bankfile.Layout]]
) -> pl.DataFrame:
    """Return a payment file's payments in file order: payment_id, attempt, amount, and `_fmt`
    (the result format answering it); the credit CSV's card id as `card_id`."""
    if written.format == "local_currency_csv":
        frame = pl.read_csv(io.BytesIO(written.content), infer_schema=False)
        attempt = pl.col("attempt") if "attempt" in frame.columns else pl.lit("1")
        return frame.select(
            "payment_id",
            attempt=attempt.cast(pl.Int64),
            amount=pl.col("amount").cast(pl.Int64),
            card_id="card_id",
            _fmt=pl.lit("card_csv"),
        )
    if written.format == pain001.FORMAT:
        ns = {"p": pain001.NAMESPACE}
        root = etree.fromstring(written.content, etree.XMLParser(resolve_entities=False))
        txs = root.findall(".//p:CdtTrfTxInf", ns)
        return pl.DataFrame(
            {
                "payment_id": [tx.findtext("p:PmtId/p:EndToEndId", "", ns) for tx in txs],
                "attempt": [
                    int(tx.findtext("p:PmtId/p:InstrId", "-1", ns).rsplit("-", 1)[1]) for tx in txs
                ],
                "amount": [int(tx.findtext("p:Amt/p:InstdAmt", "0", ns)) for tx in txs],
                "card_id": [None] * len(txs),
                "_fmt": ["pain.002"] * len(txs),
            },
            schema={
                "payment_id": pl.String,
                "attempt": pl.Int64,
                "amount": pl.Int64,
                "card_id": pl.String,
                "_fmt": pl.String,
            },
        )
    layout, _kinds = layouts[written.format.removeprefix("kr_bulk_transfer:")]
    data = bankfile.read_bank_file(written.content, layout).data
    attempt = pl.col("attempt") if "attempt" in data.columns else pl.lit(1, pl.Int64)
    return data.select(
        "payment_id",
        attempt=attempt,
        amount="amount",
        card_id=pl.lit(None, pl.String),
        _fmt=pl.lit("bank_result"),
    )


def reasons(codes: formats.ResultCodes) -> dict[tuple[str, str], dict[str, int]]:
    """Return the reasons to choose from, by (format, fate), weighted, from the code tables.

    A pain.002 has no return codes of its own (a return is a later `RJCT`): its returns
    choose among the rejection reasons that mean the details are wrong.
    """
    choices: dict[tuple[str, str], dict[str, int]] = {}
    for fmt in formats.CODE_TABLES:
        table = codes.of(fmt).with_columns(
            weight=pl.when("details_wrong").then(WEIGHT_DETAILS_WRONG).otherwise(WEIGHT_TEMPORARY)
        )
        for fate, status in (("rejected", formats.REJECTED), ("returned", formats.RETURNED)):
            rows = table.filter(pl.col("status") == status)
            if fate == "returned" and rows.height == 0:
                rows = table.filter(pl.col("status") == formats.REJECTED, "details_wrong")
            choices[(fmt, fate)] = dict(zip(rows["code"], rows["weight"], strict=True))
    return choices


def outcomes(
    payments: pl.DataFrame,
    choices: dict[tuple[str, str], dict[str, int]],
    reject_share: float,
    return_share: float,
    seed: int,
) -> pl.DataFrame:
    """Choose each payment's fate (`settled`, `rejected`, `returned`) and reason, by `seed`.

    Exactly round(n * share) payments of the run are rejected, and as many returned.
    """
    rng = np.random.default_rng(seed)
    n = payments.height
    order = rng.permutation(n)
    rejected = round(n * reject_share)
    returned = min(round(n * return_share), n - rejected)
    fate = np.full(n, "settled", dtype=object)
    fate[order[:rejected]] = "rejected"
    fate[order[rejected : rejected + returned]] = "returned"
    picks = rng.random(n)
    chosen = [
        None if f == "settled" else weighted(choices[(fmt, f)], float(pick))
        for f, fmt, pick in zip(fate, payments["_fmt"], picks, strict=True)
    ]
    return payments.select(
        "payment_id",
        _fate=pl.Series(fate.tolist(), dtype=pl.String),
        _reason=pl.Series(chosen, dtype=pl.String),
    )


def weighted(choices: dict[str, int], pick: float) -> str:
    """Return the choice a uniform `pick` in [0, 1) falls on, by weight."""
    total, running = sum(choices.values()), 0
    for code, weight in choices.items():
        running += weight
        if pick * total < running:
            return code
    return next(reversed(choices))


def seoul_time(moment: dt.datetime) -> str:
    """Return a moment as ISO 8601 in Asia/Seoul, to the second."""
    return moment.astimezone(SEOUL).replace(microsecond=0).isoformat()


# -- the card operator -----------------------------------------------------------------------


def card_csv(rows: pl.DataFrame, at: dt.datetime, final: bool) -> bytes:
    """Return the card operator's credit result CSV: the first answer, or the later returns."""
    rejected = pl.col("_fate") == "rejected"
    status = (
        pl.lit("RETURNED")
        if final
        else pl.when(rejected).then(pl.lit("REJECTED")).otherwise(pl.lit("CREDITED"))
    )
    reason = pl.col("_reason") if final else pl.when(rejected).then("_reason")
    frame = rows.select(
        "payment_id",
        "attempt",
        "card_id",
        "amount",
        status=status,
        reason_code=reason,
        processed_at=pl.lit(seoul_time(at)),
    )
    return frame.write_csv(null_value="").encode("utf-8")


# -- the bank: bulk-transfer result file -----------------------------------------------------


def bank_result(
    read: bankfile.BankFile,
    rows: pl.DataFrame,
    layout: bankfile.Layout,
    table: pl.DataFrame,
    final: bool,
) -> bytes:
    """Return the bank's result file: the answered data records echoed with code and message."""
    code = (
        pl.col("_reason")
        if final
        else pl.when(pl.col("_fate") == "rejected").then("_reason").otherwise(pl.lit("0000"))
    )
    answered = rows.select("payment_id", "attempt", result_code=code)
    data = read.data.join(
        answered, on=["payment_id", "attempt"], how="inner", maintain_order="left"
    )
    data = data.join(
        table.select("code", result_message="reason_ko"),
        left_on="result_code",
        right_on="code",
        how="left",
        maintain_order="left",
    )
    header = {k: v for k, v in read.header.items() if k not in ("record_type",)}
    return bankfile.render_file(header, data.drop("record_type", strict=False), layout, "result")


# -- the bank: pain.002 ----------------------------------------------------------------------


def pain001_header(content: bytes) -> dict[str, Any]:
    """Return what a status report repeats of the original pain.001: ids and control totals."""
    ns = {"p": pain001.NAMESPACE}
    root = etree.fromstring(content, etree.XMLParser(resolve_entities=False))
    return {
        "msg_id": root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", "", ns),
        "created": root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CreDtTm", "", ns),
        "pmt_inf_id": root.findtext("p:CstmrCdtTrfInitn/p:PmtInf/p:PmtInfId", "", ns),
    }


def pain002(rows: pl.DataFrame, original: dict[str, Any], at: dt.datetime, returns: bool) -> bytes:
    """Return a pain.002.001.11 status report answering `rows` of one pain.001 message.

    The first answer carries the original message's control totals (every transaction is
    answered); a later report of returns says `RJCT` with the return reason, without totals.
    """
    rejected = pl.col("_fate") == "rejected"
    status = (
        pl.lit("RJCT")
        if returns
        else pl.when(rejected).then(pl.lit("RJCT")).otherwise(pl.lit("ACSC"))
    )
    reason = (
        pl.format("<StsRsnInf><Rsn><Cd>{}</Cd></Rsn></StsRsnInf>", "_reason")
        if returns
        else pl.when(rejected)
        .then(pl.format("<StsRsnInf><Rsn><Cd>{}</Cd></Rsn></StsRsnInf>", "_reason"))
        .otherwise(pl.lit(""))
    )
    when = seoul_time(at)
    body = rows.select(
        pl.format(
            "<TxInfAndSts><OrgnlInstrId>{}-{}</OrgnlInstrId><OrgnlEndToEndId>{}</OrgnlEndToEndId>"
            "<TxSts>{}</TxSts>{}<AccptncDtTm>{}</AccptncDtTm>"
            '<OrgnlTxRef><Amt><InstdAmt Ccy="KRW">{}</InstdAmt></Amt></OrgnlTxRef></TxInfAndSts>',
            "payment_id",
            "attempt",
            "payment_id",
            status,
            reason,
            pl.lit(when),
            "amount",
        ).alias("tx")
    )["tx"]
    kind = "returns" if returns else "status"
    message_id = "SIM-" + hashlib.sha256(f"{original['msg_id']}:{kind}".encode()).hexdigest()[:24]
    totals = (
        ""
        if returns
        else (
            f"<OrgnlNbOfTxs>{rows.height}</OrgnlNbOfTxs>"
            f"<OrgnlCtrlSum>{int(rows['amount'].sum())}</OrgnlCtrlSum>"
        )
    )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="{formats.PAIN002_NAMESPACE}"><CstmrPmtStsRpt>'
        f"<GrpHdr><MsgId>{message_id}</MsgId><CreDtTm>{when}</CreDtTm></GrpHdr>"
        f"<OrgnlGrpInfAndSts><OrgnlMsgId>{escape(original['msg_id'])}</OrgnlMsgId>"
        f"<OrgnlMsgNmId>{pain001.FORMAT}</OrgnlMsgNmId>{totals}</OrgnlGrpInfAndSts>"
        f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{escape(original['pmt_inf_id'])}</OrgnlPmtInfId>\n"
        + body.str.join("\n").item()
        + "\n</OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>\n"
    )
    return text.encode("utf-8")
