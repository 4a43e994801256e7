"""ISO 20022 `pain.001.001.09` (customer credit transfer initiation) for banks that take it.

One `GrpHdr` (`MsgId`, `CreDtTm`, `NbOfTxs`, `CtrlSum`), one `PmtInf` for the one paying account
(rules/bank.yaml), one `CdtTrfTxInf` per payment with `InstrId` = `<payment_id>-<attempt>` (the
attempt, spec/lifecycle.md), `EndToEndId` = `payment_id` and `InstdAmt Ccy="KRW"` in whole won
(KRW has no minor unit). The payee's bank is named by its 3-digit Korean bank code as a
clearing-system member id.

Transactions are rendered as XML text with polars string expressions (escaped for XML, control
characters removed), not one element object per payee; the tests validate the result against the
official XSD (schemas/xsd/pain.001.001.09.xsd).
"""

from __future__ import annotations

import datetime as dt
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import polars as pl

from flows.money import won_total
from flows.pay.bankfile import BankSettings
from flows.pay.credit import PaymentFile, attempt_of, instruction_id

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
FORMAT = "pain.001.001.09"
MAX35 = 35
MAX140 = 140


def xml_text(expr: pl.Expr, max_chars: int) -> pl.Expr:
    """Return text safe inside an XML element: no control characters, escaped, cut to length."""
    clean = expr.cast(pl.String).fill_null("").str.replace_all(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "")
    return (
        clean.str.slice(0, max_chars)
        .str.replace_all("&", "&amp;", literal=True)
        .str.replace_all("<", "&lt;", literal=True)
        .str.replace_all(">", "&gt;", literal=True)
    )


def transactions(rows: pl.DataFrame, memo: str) -> pl.Series:
    """Return one `CdtTrfTxInf` element (as text) per payee row.

    `InstrId` names the attempt (`<payment_id>-<attempt>`, attempt 1 when the rows carry none);
    `EndToEndId` is the payment id, the same for every attempt.
    """
    return rows.select(
        pl.format(
            "<CdtTrfTxInf><PmtId><InstrId>{}</InstrId><EndToEndId>{}</EndToEndId></PmtId>"
            '<Amt><InstdAmt Ccy="KRW">{}</InstdAmt></Amt>'
            "<CdtrAgt><FinInstnId><ClrSysMmbId><MmbId>{}</MmbId></ClrSysMmbId></FinInstnId>"
            "</CdtrAgt><Cdtr><Nm>{}</Nm></Cdtr>"
            "<CdtrAcct><Id><Othr><Id>{}</Id></Othr></Id></CdtrAcct>"
            "<RmtInf><Ustrd>{}</Ustrd></RmtInf></CdtTrfTxInf>",
            xml_text(instruction_id(pl.col("payment_id"), attempt_of(rows)), MAX35),
            xml_text(pl.col("payment_id"), MAX35),
            pl.col("amount_krw").cast(pl.Int64),
            xml_text(pl.col("bank_code"), MAX35),
            xml_text(pl.col("account_holder"), MAX140),
            xml_text(pl.col("account_no"), 34),
            xml_text(pl.lit(memo), MAX140),
        ).alias("tx")
    )["tx"]


def document(
    rows: pl.DataFrame,
    settings: BankSettings,
    message_id: str,
    created_at: dt.datetime,
    execution_date: dt.date,
    memo: str,
) -> bytes:
    """Return one pain.001.001.09 message for `rows` (payment_id, amount_krw, bank_code,
    account_no, account_holder), its control totals computed from the rows."""
    count = rows.height
    total = won_total(rows["amount_krw"])
    created = created_at.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    payer = escape(settings.payer_name[:MAX140])
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="{NAMESPACE}"><CstmrCdtTrfInitn>'
        f"<GrpHdr><MsgId>{escape(message_id[:MAX35])}</MsgId><CreDtTm>{created}</CreDtTm>"
        f"<NbOfTxs>{count}</NbOfTxs><CtrlSum>{total}</CtrlSum>"
        f"<InitgPty><Nm>{payer}</Nm></InitgPty></GrpHdr>"
        f"<PmtInf><PmtInfId>{escape(message_id[:MAX35])}</PmtInfId><PmtMtd>TRF</PmtMtd>"
        f"<NbOfTxs>{count}</NbOfTxs><CtrlSum>{total}</CtrlSum>"
        f"<ReqdExctnDt><Dt>{execution_date.isoformat()}</Dt></ReqdExctnDt>"
        f"<Dbtr><Nm>{payer}</Nm></Dbtr>"
        f"<DbtrAcct><Id><Othr><Id>{escape(settings.payer_account_no)}</Id></Othr></Id>"
        f"<Ccy>KRW</Ccy></DbtrAcct>"
        f"<DbtrAgt><FinInstnId><ClrSysMmbId><MmbId>{escape(settings.payer_bank_code)}</MmbId>"
        f"</ClrSysMmbId></FinInstnId></DbtrAgt>"
    )
    body = transactions(rows, memo).str.join("\n").item() if count else ""
    return (head + "\n" + body + "\n</PmtInf></CstmrCdtTrfInitn></Document>\n").encode("utf-8")


def pain001_files(
    rows: pl.DataFrame,
    settings: BankSettings,
    batch_id: str,
    created_at: dt.datetime,
    execution_date: dt.date,
    memo: str,
) -> list[PaymentFile]:
    """Render one pain.001 message per `payment_file` of payee rows carrying `seq`."""
    files = []
    for file_no, ((name,), part) in enumerate(
        rows.sort("seq").group_by("payment_file", maintain_order=True), start=1
    ):
        message_id = f"{batch_id}-{file_no:04d}"
        content = document(part, settings, message_id, created_at, execution_date, memo)
        files.append(
            PaymentFile(
                str(name), content, part.height, won_total(part["amount_krw"]), format=FORMAT
            )
        )
    return files


def read_totals(content: bytes) -> tuple[int, int]:
    """Return (transactions, total won) summed from a message's own `InstdAmt` elements.

    Also checks the message's `NbOfTxs` and `CtrlSum` against them; a mismatch raises.
    """
    root = ElementTree.fromstring(content)
    ns = {"p": NAMESPACE}
    amounts = [int(e.text or "") for e in root.iterfind(".//p:InstdAmt", ns)]
    count, total = len(amounts), sum(amounts)
    for element in ("p:CstmrCdtTrfInitn/p:GrpHdr", "p:CstmrCdtTrfInitn/p:PmtInf"):
        found = root.find(element, ns)
        if found is None:
            raise ValueError(f"pain.001 message has no {element}")
        if found.findtext("p:NbOfTxs", namespaces=ns) != str(count) or found.findtext(
            "p:CtrlSum", namespaces=ns
        ) != str(total):
            raise ValueError(f"pain.001 {element} control totals differ from its transactions")
    return count, total
