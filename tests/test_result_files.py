"""Result files from the bank and card operator: read back exactly, or refused whole with a line.

The payment files are rendered by the project's own renderers (credit CSV, bulk-transfer file,
pain.001) from payees with attempts 1 and 2; the simulated bank answers them, and the answers
are read back and compared with the payment files. Broken files are made from those answers.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import polars as pl
import pytest
from lxml import etree

from flows.errors import InputRejected
from flows.inputs.reference import load_layout
from flows.pay import bankfile, credit, pain001
from flows.pay.bankfile import BankSettings
from flows.results import formats, simulate
from flows.results.formats import RESULT_SCHEMA, read_result_file

RUN_ID = "20250301T000000Z-abcdef12"
MEMO = "파주시 민생회복 생활안정지원금"
LAYOUT = load_layout("kr_bulk_transfer_default")
SETTINGS = BankSettings("파주시", "011", "3010123456781", LAYOUT)
RESULT_LAYOUT = formats.result_layout()
XSD = etree.XMLSchema(etree.parse(str(formats.PAIN002_XSD)))
LOCAL, BANK = 120, 40


def local_payees() -> pl.DataFrame:
    i = pl.int_range(LOCAL, dtype=pl.Int64)
    return pl.select(
        payment_id=pl.format("JW{}", (i * 7919).cast(pl.String).str.zfill(22)),
        card_id=pl.format("9410{}", (i + 10**11).cast(pl.String)),
        amount_krw=100_000 + i,
        attempt=pl.when(i % 5 == 0).then(2).otherwise(1).cast(pl.Int64),
    )


def bank_payees(extension: str) -> pl.DataFrame:
    i = pl.int_range(BANK, dtype=pl.Int64)
    payees = pl.select(
        payment_id=pl.format("JWB{}", i.cast(pl.String).str.zfill(21)),
        amount_krw=200_000 + i,
        bank_code=pl.lit("088"),
        account_no=pl.format("1102{}", (i + 1_000_000).cast(pl.String)),
        account_holder=pl.when(i == 0).then(pl.lit("Nguyễn Văn An")).otherwise(pl.lit("김민수")),
        attempt=pl.when(i % 4 == 0).then(2).otherwise(1).cast(pl.Int64),
    )
    return credit.assign_files(payees, 100, prefix="bank", extension=extension)


def payment_folder(folder: Path, bank_format: str) -> Path:
    """Render a run's payment files (two credit CSVs and one bank file) and its manifest."""
    local = credit.assign_files(local_payees(), 70, prefix="local_currency")
    files = credit.credit_files(credit.credit_rows(local, RUN_ID, "paju-livelihood-2025", MEMO))
    day = dt.date(2025, 3, 1)
    if bank_format == "pain.001":
        created = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
        files += pain001.pain001_files(bank_payees("xml"), SETTINGS, RUN_ID, created, day, MEMO)
    else:
        files += bankfile.bank_files(
            bankfile.data_rows(bank_payees("dat"), MEMO), SETTINGS, RUN_ID, day
        )
    folder.mkdir(parents=True)
    for f in files:
        (folder / f.file).write_bytes(f.content)
    (folder / "manifest.json").write_bytes(credit.manifest(files, RUN_ID, "paju-livelihood-2025"))
    return folder


@pytest.fixture(scope="module", params=["fixed_width", "pain.001"])
def answered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A payment folder in one bank format and the simulated answers to it (seed 7)."""
    root = tmp_path_factory.mktemp(request.param.replace(".", ""))
    folder = payment_folder(root / "payments", request.param)
    written = simulate.simulate(
        folder, root / "results", reject_share=0.1, return_share=0.05, seed=7
    )
    return folder, written, request.param


def issued(folder: Path) -> pl.DataFrame:
    """Every payment of the folder as its payees were rendered: id, attempt, amount."""
    local = local_payees().select("payment_id", "attempt", "amount_krw")
    bank = bank_payees("dat").select("payment_id", "attempt", "amount_krw")
    return pl.concat([local, bank])


def test_simulated_answers_read_back_every_payment_once_with_its_attempt_and_amount(
    answered: tuple,
) -> None:
    folder, written, _ = answered
    manifest = json.loads((folder / "manifest.json").read_text())
    answers = [p for p in written if "_returns" not in p.name]
    assert len(answers) == len(manifest["files"])  # one answer per payment file
    rows = pl.concat([read_result_file(p) for p in answers])
    assert rows.schema == pl.Schema(RESULT_SCHEMA)
    assert rows["instruction_id"].is_unique().all()
    expected = issued(folder).sort("payment_id")
    got = rows.select("payment_id", "attempt", "amount_krw").sort("payment_id")
    assert got.equals(expected)
    assert (
        rows["instruction_id"] == rows["payment_id"] + "-" + rows["attempt"].cast(pl.String)
    ).all()
    assert set(rows["attempt"]) == {1, 2}
    n = LOCAL + BANK
    assert rows.filter(pl.col("status") == "REJECTED").height == round(n * 0.1)
    assert rows.filter(pl.col("status") == "SETTLED").height == n - round(n * 0.1)
    settled = rows.filter(pl.col("status") == "SETTLED")
    assert settled["reason_code"].null_count() == settled.height
    assert not settled["details_wrong"].any()
    rejected = rows.filter(pl.col("status") == "REJECTED")
    assert rejected["reason_code"].null_count() == 0 and rejected["reason_en"].null_count() == 0


def test_simulated_returns_are_later_files_of_payments_the_answers_settled(
    answered: tuple,
) -> None:
    _, written, bank_format = answered
    names = [p.name for p in written]
    first_return = next(i for i, n in enumerate(names) if "_returns" in n)
    assert all("_returns" in n for n in names[first_return:])  # answers first, then returns
    answers = pl.concat([read_result_file(p) for p in written[:first_return]])
    returns = pl.concat([read_result_file(p) for p in written[first_return:]])
    assert returns.height == round((LOCAL + BANK) * 0.05)
    before = answers.join(returns.select("instruction_id"), on="instruction_id")
    assert before.height == returns.height and set(before["status"]) == {"SETTLED"}
    by_format = dict(returns.group_by("result_format").agg(pl.col("status").unique()).rows())
    assert by_format.get("card_csv", ["RETURNED"]) == ["RETURNED"]
    # A pain.002 return is a later RJCT: the reader says REJECTED, the importer decides.
    expected = "REJECTED" if bank_format == "pain.001" else "RETURNED"
    bank = "pain.002" if bank_format == "pain.001" else "bank_result"
    assert by_format.get(bank, [expected]) == [expected]


def test_simulated_pain002_validates_against_the_official_schema(answered: tuple) -> None:
    _, written, bank_format = answered
    xml = [p for p in written if p.suffix == ".xml"]
    assert len(xml) == (0 if bank_format == "fixed_width" else 2)
    for path in xml:
        assert XSD.validate(etree.parse(str(path))), XSD.error_log


def test_the_simulator_is_deterministic_for_a_seed(answered: tuple, tmp_path: Path) -> None:
    folder, written, _ = answered
    again = simulate.simulate(folder, tmp_path / "a", reject_share=0.1, return_share=0.05, seed=7)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]
    other = simulate.simulate(folder, tmp_path / "b", reject_share=0.1, return_share=0.05, seed=8)
    assert [p.read_bytes() for p in other] != [p.read_bytes() for p in written]


def test_a_reject_share_of_one_rejects_every_payment_with_a_table_reason(tmp_path: Path) -> None:
    folder = payment_folder(tmp_path / "payments", "fixed_width")
    written = simulate.simulate(folder, tmp_path / "r", reject_share=1.0, return_share=0.0)
    rows = pl.concat([read_result_file(p) for p in written])
    assert rows.height == LOCAL + BANK and set(rows["status"]) == {"REJECTED"}
    assert rows["details_wrong"].any() and not rows["details_wrong"].all()


# -- each format read to the expected rows ---------------------------------------------------

CARD = (
    "payment_id,attempt,card_id,amount,status,reason_code,processed_at\n"
    "JWA,1,9410000000000001,100000,CREDITED,,2025-03-02T10:00:00+09:00\n"
    "JWB,2,9410000000000002,250000,REJECTED,CARD_LOST,2025-03-02T10:00:01\n"
    "JWC,1,9410000000000003,100000,REJECTED,SYSTEM_ERROR,2025-03-02T01:00:02Z\n"
    "JWD,1,9410000000000004,100000.00,RETURNED,CARD_CLOSED_REFUND,2025-03-09T10:00:00+09:00\n"
)


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_a_card_result_csv_reads_to_statuses_reasons_and_utc_times(tmp_path: Path) -> None:
    rows = read_result_file(write(tmp_path, "card.csv", CARD))
    assert rows.select(
        "line", "instruction_id", "status", "reason_code", "details_wrong", "amount_krw"
    ).rows() == [
        (2, "JWA-1", "SETTLED", None, False, 100_000),
        (3, "JWB-2", "REJECTED", "CARD_LOST", True, 250_000),
        (4, "JWC-1", "REJECTED", "SYSTEM_ERROR", False, 100_000),
        (5, "JWD-1", "RETURNED", "CARD_CLOSED_REFUND", True, 100_000),
    ]
    assert rows["processed_at"].dt.hour().to_list() == [1, 1, 1, 1]  # Seoul 10:00 is 01:00 UTC
    assert rows["reason_ko"][1] == "분실 신고된 카드"
    assert set(rows["result_format"]) == {"card_csv"} and set(rows["result_file"]) == {"card.csv"}
    assert "card_id" not in rows.columns
    assert not any("9410" in str(v) for row in rows.rows() for v in row)


def bank_result_bytes(
    codes: list[str], attempts: list[int] | None = None, rows: list[int] | None = None
) -> bytes:
    """A bank result file rendered with the result layout, one data record per code (of the
    bank payees `rows`, default the first ones)."""
    payees = bank_payees("dat")[rows or list(range(len(codes)))]
    if attempts is not None:
        payees = payees.with_columns(attempt=pl.Series(attempts, dtype=pl.Int64))
    data = bankfile.data_rows(payees, MEMO).drop("payment_file")
    data = data.with_columns(result_code=pl.Series(codes), result_message=pl.lit("처리결과"))
    header = {"batch_id": RUN_ID, "file_date": "20250301", "file_no": 1}
    header |= {"payer_bank_code": "011", "payer_account_no": "3010123456781"}
    return bankfile.render_file(header, data, RESULT_LAYOUT, "result")


def test_a_bank_result_file_reads_to_settled_rejected_and_returned_rows(tmp_path: Path) -> None:
    content = bank_result_bytes(["0000", "0012", "0031", "R011"], [1, 2, 1, 3])
    assert len(content.split(b"\r\n")[0]) == RESULT_LAYOUT.record_length == 144
    rows = read_result_file(write(tmp_path, "bank_result.dat", content))
    assert rows.select(
        "line", "attempt", "status", "reason_code", "details_wrong", "reason_ko", "amount_krw"
    ).rows() == [
        (2, 1, "SETTLED", None, False, "정상처리", 200_000),
        (3, 2, "REJECTED", "0012", True, "해지계좌", 200_001),
        (4, 1, "REJECTED", "0031", False, "은행 시스템 일시 장애", 200_002),
        (5, 3, "RETURNED", "R011", True, "입금 후 반환(계좌 해지)", 200_003),
    ]
    assert rows["processed_at"].null_count() == 4
    assert set(rows["result_format"]) == {"bank_result"}


PAIN002_TX = (
    "<TxInfAndSts><OrgnlInstrId>{iid}</OrgnlInstrId><OrgnlEndToEndId>{pid}</OrgnlEndToEndId>"
    '<TxSts>{sts}</TxSts>{rsn}<OrgnlTxRef><Amt><InstdAmt Ccy="KRW">{amt}</InstdAmt></Amt>'
    "</OrgnlTxRef></TxInfAndSts>"
)


def pain002_text(txs: list[dict[str, str]], group: str = "", totals: str = "") -> str:
    body = "\n".join(
        PAIN002_TX.format(
            iid=t.get("iid", f"{t['pid']}-1"),
            pid=t["pid"],
            sts=t["sts"],
            rsn=f"<StsRsnInf><Rsn><Cd>{t['rsn']}</Cd></Rsn></StsRsnInf>" if t.get("rsn") else "",
            amt=t.get("amt", "100000"),
        )
        for t in txs
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="{formats.PAIN002_NAMESPACE}"><CstmrPmtStsRpt>\n'
        "<GrpHdr><MsgId>STS-1</MsgId><CreDtTm>2025-03-02T10:00:00+09:00</CreDtTm></GrpHdr>\n"
        f"<OrgnlGrpInfAndSts><OrgnlMsgId>M-1</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09"
        f"</OrgnlMsgNmId>{totals}{group}</OrgnlGrpInfAndSts>\n"
        "<OrgnlPmtInfAndSts><OrgnlPmtInfId>M-1</OrgnlPmtInfId>\n"
        f"{body}\n</OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>\n"
    )


TXS = [
    {"pid": "JWA", "sts": "ACSC"},
    {"pid": "JWB", "iid": "JWB-2", "sts": "RJCT", "rsn": "AC04", "amt": "250000.00"},
    {"pid": "JWC", "sts": "RJCT", "rsn": "AM04"},
    {"pid": "JWD", "sts": "PDNG"},
]


def test_a_pain002_reads_to_one_row_per_transaction_numbered_from_one(tmp_path: Path) -> None:
    totals = "<OrgnlNbOfTxs>4</OrgnlNbOfTxs><OrgnlCtrlSum>550000</OrgnlCtrlSum>"
    rows = read_result_file(write(tmp_path, "sts.xml", pain002_text(TXS, totals=totals)))
    assert rows.select(
        "line", "instruction_id", "status", "reason_code", "details_wrong", "amount_krw"
    ).rows() == [
        (1, "JWA-1", "SETTLED", None, False, 100_000),
        (2, "JWB-2", "REJECTED", "AC04", True, 250_000),
        (3, "JWC-1", "REJECTED", "AM04", False, 100_000),
        (4, "JWD-1", "IN_FLIGHT", None, False, 100_000),
    ]
    assert set(rows["processed_at"]) == {dt.datetime(2025, 3, 2, 1, tzinfo=dt.UTC)}


def test_a_pain002_group_status_rjct_rejects_every_transaction_with_the_group_reason(
    tmp_path: Path,
) -> None:
    group = "<GrpSts>RJCT</GrpSts><StsRsnInf><Rsn><Cd>FF01</Cd></Rsn></StsRsnInf>"
    rows = read_result_file(write(tmp_path, "sts.xml", pain002_text(TXS[:2], group)))
    assert rows.select("status", "reason_code").rows() == [
        ("REJECTED", "FF01"),
        ("REJECTED", "AC04"),  # its own reason first
    ]


# -- broken files: refused whole, naming the file and the line -------------------------------


def refused(tmp_path: Path, name: str, content: bytes | str) -> InputRejected:
    with pytest.raises(InputRejected) as caught:
        read_result_file(write(tmp_path, name, content))
    assert caught.value.file == name and caught.value.exit_code == 3
    assert "Traceback" not in str(caught.value) and "\n" not in str(caught.value)
    return caught.value


def line_replaced(text: str, number: int, old: str, new: str) -> str:
    lines = text.split("\n")
    assert old in lines[number - 1]
    lines[number - 1] = lines[number - 1].replace(old, new, 1)
    return "\n".join(lines)


CARD_BROKEN = [
    (
        "huge amount",
        line_replaced(CARD, 2, ",100000,", ",99999999999999999999,"),
        2,
        "amount 99999999999999999999 is not a whole number of won",
    ),
    ("unknown status", line_replaced(CARD, 3, "REJECTED", "BOUNCED"), 3, "unknown status BOUNCED"),
    (
        "unknown code",
        line_replaced(CARD, 4, "SYSTEM_ERROR", "CARD_MELTED"),
        4,
        "unknown reason code CARD_MELTED",
    ),
    (
        "decimals",
        line_replaced(CARD, 2, ",100000,", ",100000.5,"),
        2,
        "amount 100000.5 is not a whole",
    ),
    (
        "duplicate",
        CARD + CARD.split("\n")[2] + "\n",
        6,
        "instruction JWB-2 is answered twice (first on line 3)",
    ),
    ("blank card id", line_replaced(CARD, 5, "9410000000000004", ""), 5, "card_id is blank"),
    ("few fields", line_replaced(CARD, 3, ",CARD_LOST", ""), 3, "has 6 fields, the header has 7"),
    (
        "return code on reject",
        line_replaced(CARD, 3, "CARD_LOST", "CARD_CLOSED_REFUND"),
        3,
        "is a RETURNED code",
    ),
    (
        "credited with reason",
        line_replaced(CARD, 2, "CREDITED,", "CREDITED,CARD_LOST"),
        2,
        "status CREDITED with reason",
    ),
    (
        "attempt zero",
        line_replaced(CARD, 2, "JWA,1", "JWA,0"),
        2,
        "attempt 0 is not a number from 1",
    ),
    (
        "bad time",
        line_replaced(CARD, 4, "2025-03-02T01:00:02Z", "yesterday"),
        4,
        "processed_at yesterday",
    ),
]


@pytest.mark.parametrize(
    ("case", "content", "line", "fault"), CARD_BROKEN, ids=[c[0] for c in CARD_BROKEN]
)
def test_a_broken_card_result_csv_is_refused_naming_the_line(
    tmp_path: Path, case: str, content: str, line: int, fault: str
) -> None:
    error = refused(tmp_path, "card.csv", content)
    assert (error.line, fault in error.problem) == (line, True), str(error)
    assert f"card.csv, line {line}: " in str(error)


def test_a_card_result_csv_in_another_encoding_is_refused_naming_the_line(tmp_path: Path) -> None:
    content = CARD.encode(
        "utf-8"
    ) + "JWE,1,9410000000000005,100000,REJECTED,CARD_LOST,분실\n".encode("cp949")
    error = refused(tmp_path, "card.csv", content)
    assert error.line == 6 and "is not UTF-8 text" in error.problem


def bank_lines(content: bytes) -> list[bytes]:
    return content.split(b"\r\n")[:-1]


def joined(lines: list[bytes]) -> bytes:
    return b"\r\n".join(lines) + b"\r\n"


def edited_bank(line: int, start: int, new: bytes) -> bytes:
    """A bank result file with bytes at `start` (0-based) of 1-based `line` replaced."""
    lines = bank_lines(bank_result_bytes(["0000", "0012", "0031"]))
    record = lines[line - 1]
    lines[line - 1] = record[:start] + new + record[start + len(new) :]
    return joined(lines)


def payment_bank_file() -> bytes:
    rows = bankfile.data_rows(bank_payees("dat").head(2), MEMO)
    return bankfile.bank_files(rows, SETTINGS, RUN_ID, dt.date(2025, 3, 1))[0].content


def bank_broken() -> list[tuple[str, bytes, int, str]]:
    good = bank_lines(bank_result_bytes(["0000", "0012", "0031"]))
    return [
        ("unknown code", edited_bank(3, 100, b"0777"), 3, "unknown reason code 0777"),
        ("trailer total", edited_bank(5, 23, b"9"), 5, "T total_amount"),
        ("header count", edited_bank(1, 67, b"9"), 1, "H record_count 9 differs from the 3"),
        (
            "duplicate",
            bank_result_bytes(["0000", "0012", "0031"], rows=[0, 1, 0]),
            4,
            "instruction JWB000000000000000000000-2 is answered twice (first on line 2)",
        ),
        ("short record", joined([*good[:2], good[2][:-1], *good[3:]]), 3, "record is 143 bytes"),
        (
            "amount letters",
            edited_bank(2, 26, b"00000000001x0"),
            2,
            "field amount holds something other than digits",
        ),
        ("blank code", edited_bank(4, 100, b"    "), 4, "field result_code is blank"),
        ("payment file", payment_bank_file(), 1, "record is 100 bytes"),
        ("truncated", joined(good)[:-5], 5, "does not end with CRLF"),
        ("encoding", edited_bank(2, 104, b"\xff\xff"), 2, "is not CP949 text"),
        ("attempt zero", edited_bank(3, 96, b"000"), 3, "attempt 0 is not a number from 1"),
    ]


@pytest.mark.parametrize(
    ("case", "content", "line", "fault"), bank_broken(), ids=[c[0] for c in bank_broken()]
)
def test_a_broken_bank_result_file_is_refused_naming_the_line(
    tmp_path: Path, case: str, content: bytes, line: int, fault: str
) -> None:
    error = refused(tmp_path, "bank_result.dat", content)
    assert (error.line, fault in error.problem) == (line, True), str(error)


def payment_xml() -> str:
    created, day = dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.date(2025, 3, 1)
    payees = bank_payees("xml").head(1)
    return pain001.pain001_files(payees, SETTINGS, RUN_ID, created, day, MEMO)[0].content.decode()


def pain002_broken() -> list[tuple[str, str, int, str]]:
    good = pain002_text(TXS)
    totals = "<OrgnlNbOfTxs>4</OrgnlNbOfTxs><OrgnlCtrlSum>550001</OrgnlCtrlSum>"
    return [
        (
            "control sum",
            pain002_text(TXS, totals=totals),
            4,
            "OrgnlGrpInfAndSts OrgnlCtrlSum 550001 differs from the 550000 won",
        ),
        (
            "control count",
            pain002_text(TXS, totals="<OrgnlNbOfTxs>5</OrgnlNbOfTxs>"),
            4,
            "OrgnlNbOfTxs 5 differs from the 4 transactions",
        ),
        (
            "duplicate",
            pain002_text([*TXS, TXS[0]]),
            10,
            "transaction 5: instruction JWA-1 is answered twice (first on line 6)",
        ),
        (
            "unknown status",
            pain002_text([{"pid": "JWA", "sts": "PART"}]),
            6,
            "transaction 1: unknown status PART",
        ),
        (
            "unknown reason",
            pain002_text([{"pid": "JWA", "sts": "RJCT", "rsn": "ZZ99"}]),
            6,
            "transaction 1: unknown reason code ZZ99",
        ),
        (
            "no reason",
            pain002_text([{"pid": "JWA", "sts": "RJCT"}]),
            6,
            "rejected (RJCT) without a reason code",
        ),
        (
            "decimals",
            pain002_text([{"pid": "JWA", "sts": "ACSC", "amt": "100000.50"}]),
            6,
            "amount 100000.50 is not a whole number of won",
        ),
        (
            "instruction id",
            pain002_text([TXS[0], {"pid": "JWB", "iid": "JWC-1", "sts": "ACSC"}]),
            7,
            "transaction 2: OrgnlInstrId JWC-1 is not OrgnlEndToEndId JWB",
        ),
        (
            "no attempt",
            pain002_text([{"pid": "JWB", "iid": "JWB-01", "sts": "ACSC"}]),
            6,
            "OrgnlInstrId JWB-01 is not",
        ),
        ("truncated", good[: len(good) // 2], 7, "is not well-formed XML"),
        ("garbage", "<<<not xml at all", 1, "is not well-formed XML"),
        (
            "comment first",
            "<Document><!-- a note --><Other/></Document>",
            1,
            "not a payment status",
        ),
        (
            "xsd invalid",
            good.replace("<TxSts>ACSC</TxSts>", "<TxSts>ACSC</TxSts><Bogus/>", 1),
            6,
            "is not a valid pain.002.001.11 message: element Bogus",
        ),
        (
            "xsd bad value",
            good.replace(">100000<", ">12abc<", 1),
            6,
            "is not a valid pain.002.001.11 message",
        ),
        ("not a report", payment_xml(), 2, "not a payment status report"),
    ]


@pytest.mark.parametrize(
    ("case", "content", "line", "fault"), pain002_broken(), ids=[c[0] for c in pain002_broken()]
)
def test_a_broken_pain002_is_refused_naming_the_line(
    tmp_path: Path, case: str, content: str, line: int, fault: str
) -> None:
    error = refused(tmp_path, "sts.xml", content)
    assert (error.line, fault in error.problem) == (line, True), str(error)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is an empty result file"),
        (b"batch_id,seq,card_id,amount,payment_id,program,memo,attempt\n", "is not a result file"),
        (b"\x00\x01binary", "is not a result file"),
        (
            b"payment_id,attempt,card_id,amount,status,reason_code,processed_at\n",
            "answers no payment",
        ),
    ],
)
def test_a_file_of_no_known_result_format_is_refused(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    assert problem in refused(tmp_path, "x.txt", content).problem


def test_a_credit_file_jiwon_wrote_is_not_taken_for_a_result(tmp_path: Path) -> None:
    rows = credit.credit_rows(
        credit.assign_files(local_payees(), 10, "local_currency"), RUN_ID, "p", MEMO
    )
    content = credit.credit_files(rows)[0].content
    assert pl.read_csv(io.BytesIO(content)).columns[-1] == "attempt"
    assert "is not a result file" in refused(tmp_path, "local_currency_0001.csv", content).problem
