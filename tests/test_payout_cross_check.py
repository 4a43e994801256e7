"""Payout details kept as keyed hashes in the trail (issue 14, item 2): a payment file is checked
against the decision records it came from.

The trail is the session's bank trail (a real run paying 40 payees by bank, fixed-width file,
and the rest by local-currency card), plus one run writing pain.001. The attacker rewrites a
card id or an account number in a committed payment file and, as far as they can, the hashes
that cover it (the manifest's SHA-256; the run record is signed, so verify also names the file's
hash): the cross-check names the payment, the file, the line and what differs, masked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.audit import payouts
from flows.audit.verify import cross_check_run, cross_check_trail, written_payment_files
from flows.cli import app
from flows.inputs import reference
from tests.conftest import TEST_KEY
from tests.support.banktrail import BankTrail, bank_run, copy_trail
from tests.support.flowrun import decisions

pytestmark = [pytest.mark.flow]
PROGRAM = "paju-livelihood-2025"
CREDIT = "local_currency_0001.csv"
BANK = "bank_0001.dat"


def hmac_hex(value: str) -> str:
    """The keyed hash as an auditor holding the key computes it, with no jiwon code."""
    return hmac.new(TEST_KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


def folder(out: Path, run_id: str) -> Path:
    return out / "payments" / PROGRAM / run_id


def paid_records(out: Path, run_id: str) -> pl.DataFrame:
    return decisions(out, run_id).filter(pl.col("outcome") == "PAID")


def cross_checked(out: Path, run_id: str) -> payouts.CrossCheck:
    """Call the pure cross-check on the run's files and decision records as they are on disk."""
    files = written_payment_files(folder(out, run_id))
    layouts = {"kr_bulk_transfer_default": reference.load_layout("kr_bulk_transfer_default")}
    records = decisions(out, run_id)
    return payouts.cross_check(files, records, TEST_KEY, f"run {run_id} ({PROGRAM})", layouts)


def restamp_manifest(out: Path, run_id: str, name: str) -> None:
    """Recompute a payment file's SHA-256 in the manifest, as an attacker would."""
    manifest = folder(out, run_id) / "manifest.json"
    body = json.loads(manifest.read_text())
    for entry in body["files"]:
        if entry["file"] == name:
            entry["sha256"] = hashlib.sha256((folder(out, run_id) / name).read_bytes()).hexdigest()
    manifest.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n")


def verify(
    out: Path, monkeypatch: pytest.MonkeyPatch, key: str | None = TEST_KEY
) -> tuple[int, str]:
    """Run `jiwon audit verify` with the given JIWON_PII_KEY (None: unset)."""
    if key is None:
        monkeypatch.delenv("JIWON_PII_KEY", raising=False)
    else:
        monkeypatch.setenv("JIWON_PII_KEY", key)
    result = CliRunner().invoke(app, ["audit", "verify", "--out", str(out)])
    return result.exit_code, result.output


@pytest.fixture
def trail(bank_trail: BankTrail, tmp_path: Path) -> tuple[Path, str]:
    """A private copy of the shared bank trail to tamper with, and its paying run."""
    return copy_trail(bank_trail.out, tmp_path / "out"), bank_trail.first


def test_every_card_payout_keeps_card_key_the_keyed_hash_of_the_card_id_in_its_credit_file(
    bank_trail: BankTrail,
) -> None:
    out, run_id = bank_trail.out, bank_trail.first
    paid = paid_records(out, run_id)
    card = paid.filter(pl.col("payout") == "local_currency")
    assert card.height > 0 and card["card_key"].null_count() == 0
    assert card["account_key"].null_count() == card.height
    bank = paid.filter(pl.col("payout") == "bank")
    assert bank.height > 0 and bank["card_key"].null_count() == bank.height
    unpaid = decisions(out, run_id).filter(pl.col("outcome") != "PAID")
    assert unpaid["card_key"].null_count() == unpaid.height
    credit = pl.read_csv(folder(out, run_id) / CREDIT, infer_schema=False)
    ids = zip(credit["payment_id"], credit["card_id"], strict=True)
    expected = {p: hmac_hex(f"card:{c}") for p, c in ids}
    assert len(expected) == card.filter(pl.col("source_kind") == "registry").height
    # Both of a payment's records (registry and enrollment) carry its card's key.
    assert dict(zip(card["payment_id"], card["card_key"], strict=True)) == expected
    assert card.height == 2 * len(expected)


def test_a_clean_trail_cross_checks_clean_and_verify_says_payees_were_checked(
    bank_trail: BankTrail, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cross_checked(bank_trail.out, bank_trail.first) == payouts.CrossCheck()
    assert cross_check_trail(bank_trail.out, TEST_KEY) == payouts.CrossCheck()
    code, output = verify(bank_trail.out, monkeypatch)
    assert code == 0, output
    assert "payees and amounts against the decisions" in output
    assert "note:" not in output


def test_without_the_key_verify_says_in_one_line_payouts_were_not_cross_checked(
    bank_trail: BankTrail, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = verify(bank_trail.out, monkeypatch, key=None)
    assert code == 0, output
    notes = [line for line in output.splitlines() if "not cross-checked" in line]
    assert notes == [
        "note: payout details (card ids, account numbers) in the payment files were not "
        "cross-checked against the decision records: that needs JIWON_PII_KEY, the key the runs "
        "used"
    ]
    assert "payees and amounts" not in output


def test_with_another_key_verify_cross_checks_nothing_and_says_the_key_is_not_the_runs(
    bank_trail: BankTrail, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = verify(bank_trail.out, monkeypatch, key="another-key-0123456789")
    assert code == 0, output
    assert f"program {PROGRAM}: JIWON_PII_KEY is not the key its runs used" in output
    assert "card_key differs" not in output and "account_key differs" not in output


def test_a_card_id_rewritten_in_a_committed_credit_file_is_named_by_the_cross_check(
    trail: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, run_id = trail
    path = folder(out, run_id) / CREDIT
    credit = pl.read_csv(path, infer_schema=False)
    victim = credit.row(2, named=True)  # line 4 of the file (the header is line 1)
    forged = "9" * 12 + victim["card_id"][-4:][::-1]
    assert forged != victim["card_id"]
    credit.with_columns(
        card_id=pl.when(pl.col("payment_id") == victim["payment_id"])
        .then(pl.lit(forged))
        .otherwise("card_id")
    ).write_csv(path)
    restamp_manifest(out, run_id, CREDIT)

    found = cross_checked(out, run_id)
    expected = (
        f"run {run_id} ({PROGRAM}): payment file {CREDIT} line 4 (payment "
        f"{victim['payment_id']}): card id ****{forged[-4:]} is not the card of its decision "
        "record (card_key differs)"
    )
    assert found == payouts.CrossCheck([expected])
    assert cross_check_run(out, PROGRAM, "2025-03", run_id, TEST_KEY).problems == [expected]

    code, output = verify(out, monkeypatch)
    assert code == 1
    assert expected in output
    assert f"file payments/{PROGRAM}/{run_id}/{CREDIT} was changed" in output  # signed record
    assert forged not in output and victim["card_id"] not in output


def bank_records(content: bytes) -> list[bytes]:
    return content.split(b"\r\n")[:-1]


def test_an_account_number_rewritten_in_a_committed_bank_file_is_named_by_the_cross_check(
    trail: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, run_id = trail
    path = folder(out, run_id) / BANK
    lines = bank_records(path.read_bytes())
    victim = lines[3]  # line 4: the third data record
    account = victim[12:26].decode().rstrip()  # bytes 13-26 of the default layout
    payment_id = victim[59:83].decode().rstrip()
    forged = "3333" + account[4:]
    lines[3] = victim[:12] + forged.encode().ljust(14) + victim[26:]
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    restamp_manifest(out, run_id, BANK)
    record = paid_records(out, run_id).filter(
        pl.col("payment_id") == payment_id, pl.col("source_kind") == "registry"
    )
    assert record["account_key"].item() == hmac_hex(f"account:088:{account}")

    expected = (
        f"run {run_id} ({PROGRAM}): payment file {BANK} line 4 (payment {payment_id}): account "
        f"088 ****{forged[-4:]} is not the account of its decision record (account 088 "
        f"****{account[-4:]}; account_key differs)"
    )
    assert cross_checked(out, run_id) == payouts.CrossCheck([expected])

    code, output = verify(out, monkeypatch)
    assert code == 1 and expected in output
    assert forged not in output and account not in output


def test_amounts_lines_and_payments_that_disagree_with_the_decision_records_are_each_named(
    bank_trail: BankTrail,
) -> None:
    out, run_id = bank_trail.out, bank_trail.first
    where = f"run {run_id} ({PROGRAM})"
    files = {f.file: f for f in written_payment_files(folder(out, run_id))}
    credit = pl.read_csv(files[CREDIT].content, infer_schema=False)
    first, second, last = credit.row(0, named=True), credit.row(1, named=True), credit[-1]
    edited = pl.concat(
        [
            credit.slice(0, 1).with_columns(amount=pl.lit("1")),  # line 2: amount changed
            credit.slice(1, 1),  # line 3: kept
            credit.slice(1, 1),  # line 4: the same payment again
            credit.slice(2, credit.height - 3),  # the last line is dropped
            credit.slice(0, 1).with_columns(payment_id=pl.lit("JW0000000000000000000000")),
        ]
    )
    tampered = payouts.WrittenFile(CREDIT, payouts.CREDIT_FORMAT, edited.write_csv().encode())
    layouts = {"kr_bulk_transfer_default": reference.load_layout("kr_bulk_transfer_default")}
    found = payouts.cross_check(
        [tampered, files[BANK]], decisions(out, run_id), TEST_KEY, where, layouts
    )
    assert found.unchecked == []
    added = edited.height + 1
    assert found.problems == [
        f"{where}: payment file {CREDIT} line 2 (payment {first['payment_id']}): amount 1 won, "
        f"its decision record {first['amount']} won",
        f"{where}: payment file {CREDIT} line {added} (payment JW0000000000000000000000, "
        f"{first['amount']} won to card id ****{first['card_id'][-4:]}): no PAID decision "
        "record of this run pays it",
        f"{where}: payment {second['payment_id']} is on 2 lines ({CREDIT} line 3, {CREDIT} "
        "line 4): one payment paid more than once",
        f"{where}: payment {last['payment_id'].item()} (PAID {last['amount'].item()} won, in "
        f"{CREDIT} by its decision record) is on no line of the run's payment files",
    ]
    assert all(c not in "\n".join(found.problems) for c in credit["card_id"])


def test_records_written_before_card_key_are_cross_checked_on_all_but_card_ids_and_say_so(
    bank_trail: BankTrail,
) -> None:
    out, run_id = bank_trail.out, bank_trail.first
    where = f"run {run_id} ({PROGRAM})"
    files = written_payment_files(folder(out, run_id))
    layouts = {"kr_bulk_transfer_default": reference.load_layout("kr_bulk_transfer_default")}
    older = decisions(out, run_id).drop("card_key")
    assert payouts.cross_check(files, older, TEST_KEY, where, layouts) == payouts.CrossCheck(
        [],
        [
            f"{where}: its decision records were written before card_key: card ids were not "
            "cross-checked (amounts and bank accounts were)"
        ],
    )


@pytest.fixture(scope="module")
def pain(tmp_path_factory: pytest.TempPathFactory, prefect_backend: None) -> tuple:
    return bank_run(tmp_path_factory, bank_file="pain.001")


def test_an_account_number_rewritten_in_a_pain001_message_is_named_by_the_cross_check(
    pain: tuple[Path, Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, source, run_id = pain
    out = copy_trail(source, tmp_path / "out")
    assert cross_checked(out, run_id) == payouts.CrossCheck()
    path = folder(out, run_id) / "bank_0001.xml"
    text = path.read_text(encoding="utf-8")
    tx = text.split("<CdtTrfTxInf>")[2]  # the second transaction
    payment_id = tx.split("<EndToEndId>")[1].split("<")[0]
    account = tx.split("<CdtrAcct><Id><Othr><Id>")[1].split("<")[0]
    forged = "3333" + account[4:]
    # Written with a character reference, as a bank's parser still reads it as the digits.
    path.write_text(text.replace(f"<Id>{account}</Id>", f"<Id>&#51;{forged[1:]}</Id>", 1))
    restamp_manifest(out, run_id, "bank_0001.xml")

    expected = (
        f"run {run_id} ({PROGRAM}): payment file bank_0001.xml transaction 2 (payment "
        f"{payment_id}): account 088 ****{forged[-4:]} is not the account of its decision "
        f"record (account 088 ****{account[-4:]}; account_key differs)"
    )
    assert cross_checked(out, run_id) == payouts.CrossCheck([expected])
    code, output = verify(out, monkeypatch)
    assert code == 1 and expected in output
    assert forged not in output and account not in output


def test_an_attempt_that_differs_from_the_decision_records_is_named_in_every_format(
    bank_trail: BankTrail, pain: tuple[Path, Path, str]
) -> None:
    out, run_id = bank_trail.out, bank_trail.first
    where = f"run {run_id} ({PROGRAM})"
    files = {f.file: f for f in written_payment_files(folder(out, run_id))}
    layouts = {"kr_bulk_transfer_default": reference.load_layout("kr_bulk_transfer_default")}
    credit = pl.read_csv(files[CREDIT].content, infer_schema=False)
    assert credit.columns[-1] == "attempt" and set(credit["attempt"]) == {"1"}
    second = credit.with_columns(
        attempt=pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("2")).otherwise("attempt")
    )
    lines = bank_records(files[BANK].content)
    lines[2] = lines[2][:96] + b"007" + lines[2][99:]  # the second data record's attempt
    bank_payment = lines[2][59:83].decode().rstrip()
    tampered = [
        payouts.WrittenFile(CREDIT, payouts.CREDIT_FORMAT, second.write_csv().encode()),
        payouts.WrittenFile(BANK, files[BANK].format, b"\r\n".join(lines) + b"\r\n"),
    ]
    found = payouts.cross_check(tampered, decisions(out, run_id), TEST_KEY, where, layouts)
    assert found.problems == [
        f"{where}: payment file {BANK} line 3 (payment {bank_payment}): attempt 7, its "
        "decision record attempt 1",
        f"{where}: payment file {CREDIT} line 3 (payment {credit['payment_id'][1]}): attempt 2, "
        "its decision record attempt 1",
    ]
    # Decision records that carry an attempt column are compared with it.
    records = decisions(out, run_id).with_columns(attempt=pl.lit(2, pl.Int64))
    assert payouts.cross_check(tampered[:1], records, TEST_KEY, where, layouts).problems[:1] == [
        f"{where}: payment file {CREDIT} line 2 (payment {credit['payment_id'][0]}): attempt 1, "
        "its decision record attempt 2",
    ]

    _, pain_out, pain_run = pain
    xml = written_payment_files(folder(pain_out, pain_run))
    message = next(f for f in xml if f.file == "bank_0001.xml")
    first_id = message.content.split(b"<EndToEndId>")[1].split(b"<")[0].decode()
    edited = message.content.replace(f"{first_id}-1<".encode(), b"JW0-1<", 1)
    found = payouts.cross_check(
        [payouts.WrittenFile(message.file, message.format, edited)],
        decisions(pain_out, pain_run).filter(pl.col("payout") == "bank"),
        TEST_KEY,
        where,
        layouts,
    )
    assert found.problems == [
        f"{where}: payment file bank_0001.xml transaction 1 (payment {first_id}): attempt "
        "(not a number), its decision record attempt 1"
    ]
