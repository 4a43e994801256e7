"""pain.001.001.09: valid against the official XSD, exact control totals, golden bytes."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pytest
from lxml import etree

from flows.inputs.reference import load_layout
from flows.pay import pain001
from flows.pay.bankfile import BankSettings

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests/golden/pain001_0001.xml"
SCHEMA = etree.XMLSchema(etree.parse(str(ROOT / "schemas/xsd/pain.001.001.09.xsd")))
NS = {"p": pain001.NAMESPACE}
SETTINGS = BankSettings("파주시", "011", "3010123456781", load_layout("kr_bulk_transfer_default"))
CREATED = dt.datetime(2025, 3, 1, 0, 30, 15, 123456, tzinfo=dt.UTC)


def rows() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "payment_file": ["bank_0001.xml"] * 3,
            "seq": [1, 2, 3],
            "payment_id": ["JWAAAAAAAAAAAAAAAAAAAAAA", "JWBBBBBBBBBBBBBBBBBBBBBB", "JWC"],
            "amount_krw": [100_000, 250_000, 1],
            "bank_code": ["004", "088", "090"],
            "account_no": ["1234567890", "12345678901234", "3333012345678"],
            "account_holder": ["김<민>수 & Co", "Nguyễn Văn An", "이\x01름"],
        }
    )


def message() -> bytes:
    files = pain001.pain001_files(
        rows(), SETTINGS, "20250301T003015Z-abcdef12", CREATED, dt.date(2025, 3, 1), "지원금"
    )
    assert len(files) == 1
    return files[0].content


def test_pain001_validates_against_the_official_schema() -> None:
    document = etree.fromstring(message())
    assert SCHEMA.validate(document), SCHEMA.error_log


def test_pain001_control_totals_end_to_end_ids_and_whole_won_amounts() -> None:
    document = etree.fromstring(message())
    for header in ("p:CstmrCdtTrfInitn/p:GrpHdr", "p:CstmrCdtTrfInitn/p:PmtInf"):
        assert document.findtext(f"{header}/p:NbOfTxs", namespaces=NS) == "3"
        assert document.findtext(f"{header}/p:CtrlSum", namespaces=NS) == "350001"
    ids = [e.text for e in document.iterfind(".//p:EndToEndId", NS)]
    assert ids == rows()["payment_id"].to_list()
    instructions = [e.text for e in document.iterfind(".//p:PmtId/p:InstrId", NS)]
    assert instructions == [f"{p}-1" for p in ids]  # no attempt column: every payee's first
    amounts = document.findall(".//p:InstdAmt", NS)
    assert [(a.get("Ccy"), a.text) for a in amounts] == [
        ("KRW", "100000"),
        ("KRW", "250000"),
        ("KRW", "1"),
    ]
    names = [e.text for e in document.iterfind(".//p:Cdtr/p:Nm", NS)]
    assert names == ["김<민>수 & Co", "Nguyễn Văn An", "이름"]  # escaped, control char dropped
    assert document.findtext(".//p:GrpHdr/p:CreDtTm", namespaces=NS) == "2025-03-01T00:30:15Z"


def test_pain001_instruction_ids_name_each_payees_attempt_and_still_validate() -> None:
    later = rows().with_columns(attempt=pl.Series([2, 1, 10], dtype=pl.Int64))
    files = pain001.pain001_files(
        later, SETTINGS, "20250301T003015Z-abcdef12", CREATED, dt.date(2025, 3, 1), "지원금"
    )
    document = etree.fromstring(files[0].content)
    assert SCHEMA.validate(document), SCHEMA.error_log
    pmt_ids = [
        (e.findtext("p:InstrId", namespaces=NS), e.findtext("p:EndToEndId", namespaces=NS))
        for e in document.iterfind(".//p:CdtTrfTxInf/p:PmtId", NS)
    ]
    assert pmt_ids == [
        ("JWAAAAAAAAAAAAAAAAAAAAAA-2", "JWAAAAAAAAAAAAAAAAAAAAAA"),
        ("JWBBBBBBBBBBBBBBBBBBBBBB-1", "JWBBBBBBBBBBBBBBBBBBBBBB"),
        ("JWC-10", "JWC"),
    ]


def test_pain001_matches_the_golden_file_byte_for_byte() -> None:
    if os.environ.get("JIWON_UPDATE_GOLDEN"):
        GOLDEN.write_bytes(message())
    assert message() == GOLDEN.read_bytes()


def test_reading_totals_back_refuses_a_message_whose_ctrlsum_was_edited() -> None:
    assert pain001.read_totals(message()) == (3, 350_001)
    edited = message().replace(b"<CtrlSum>350001</CtrlSum>", b"<CtrlSum>350002</CtrlSum>", 1)
    with pytest.raises(ValueError, match="control totals differ"):
        pain001.read_totals(edited)
