"""Bank payouts end to end: the bank file or pain.001, the manifest, and no account number leaks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pytest
from lxml import etree

from flows.audit.explain import explain_person
from flows.audit.verify import verify_trail
from flows.inputs import reference
from flows.pay import bankfile
from tests.conftest import ROOT
from tests.support.banktrail import BANK_ROWS, HOLDERS, BankTrail, bank_run
from tests.support.flowrun import decisions, runs

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend")]

XSD = ROOT / "schemas/xsd/pain.001.001.09.xsd"
PAIN = "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.09}"


@pytest.fixture(scope="module")
def fixed_width(bank_trail: BankTrail) -> tuple[Path, Path, str]:
    return bank_trail.story, bank_trail.out, bank_trail.first


@pytest.fixture(scope="module")
def pain(tmp_path_factory: pytest.TempPathFactory, prefect_backend: None) -> tuple:
    return bank_run(tmp_path_factory, bank_file="pain.001")


def account_numbers(story: Path) -> list[str]:
    town = pl.read_csv(story / "enrollments/enrollments_town.csv", infer_schema=False)
    return town.filter(pl.col("payout") == "bank")["account_no"].to_list()


def paid_rows(out: Path, run_id: str) -> pl.DataFrame:
    return decisions(out, run_id).filter(pl.col("outcome") == "PAID")


def test_bank_payouts_go_into_the_bank_file_with_control_totals_equal_to_the_audit(
    fixed_width: tuple[Path, Path, str],
) -> None:
    _, out, run_id = fixed_width
    folder = out / "payments/paju-livelihood-2025" / run_id
    read = bankfile.read_bank_file(
        (folder / "bank_0001.dat").read_bytes(), reference.bank_settings().layout
    )
    paid = paid_rows(out, run_id).filter(pl.col("source_kind") == "registry")
    by_bank = paid.filter(pl.col("payout") == "bank")
    assert by_bank.height == BANK_ROWS
    assert set(read.data["payment_id"]) == set(by_bank["payment_id"])
    assert read.trailer["total_amount"] == by_bank["amount_krw"].sum() == BANK_ROWS * 100_000
    assert set(by_bank["payment_file"]) == {"bank_0001.dat"}
    manifest = json.loads((folder / "manifest.json").read_text())
    formats = {f["file"]: f["format"] for f in manifest["files"]}
    assert formats["bank_0001.dat"] == "kr_bulk_transfer:kr_bulk_transfer_default"
    credits = pl.read_csv(folder / "local_currency_0001.csv", infer_schema=False)
    assert credits.height == paid.height - BANK_ROWS
    assert verify_trail(out) == ([], 2)


@pytest.mark.parametrize(
    ("run", "bank_file"), [("fixed_width", "bank_0001.dat"), ("pain", "bank_0001.xml")]
)
def test_manifest_lists_every_payment_file_and_its_totals_equal_the_audit_paid_total(
    run: str, bank_file: str, request: pytest.FixtureRequest
) -> None:
    _, out, run_id = request.getfixturevalue(run)
    folder = out / "payments/paju-livelihood-2025" / run_id
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {f["file"]: f for f in manifest["files"]}
    on_disk = {p.name for p in folder.iterdir()} - {"manifest.json"}
    assert set(listed) == on_disk == {"local_currency_0001.csv", bank_file}
    paid = paid_rows(out, run_id).filter(pl.col("source_kind") == "registry")
    for name, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256((folder / name).read_bytes()).hexdigest()
        carried = paid.filter(pl.col("payment_file") == name)
        assert entry["records"] == carried.height > 0
        assert entry["total_krw"] == carried["amount_krw"].sum()
    assert manifest["total_krw"] == paid["amount_krw"].sum() == runs(out)["total_paid_krw"][0]
    assert manifest["records"] == paid.height
    record_outputs = {Path(o["file"]).name: o for o in runs(out)["outputs"][0]}
    assert record_outputs[bank_file]["total_krw"] == listed[bank_file]["total_krw"]


def test_account_numbers_never_reach_the_audit_report_or_manifest_only_hash_and_last_four(
    fixed_width: tuple[Path, Path, str],
) -> None:
    story, out, run_id = fixed_width
    numbers = account_numbers(story)
    paid = paid_rows(out, run_id).filter(pl.col("payout") == "bank")
    assert paid.height == 2 * BANK_ROWS  # the registry row and the enrollment row
    assert paid["account_key"].str.contains(r"^[0-9a-f]{64}$").all()
    assert sorted(set(paid["account_last4"])) == sorted({n[-4:] for n in numbers})
    assert paid["bank_code"].unique().to_list() == ["088"]
    for path in out.rglob("*"):
        if not path.is_file() or "quarantine" in path.parts or path.suffix == ".dat":
            continue
        content = path.read_bytes()
        if path.suffix == ".parquet":
            content = str(pl.read_parquet(path).to_dicts()).encode()
        assert not any(n.encode() in content for n in numbers), path


def test_a_holder_name_cp949_cannot_encode_is_sent_with_question_marks_and_warned_in_the_audit(
    fixed_width: tuple[Path, Path, str],
) -> None:
    _, out, run_id = fixed_width
    folder = out / "payments/paju-livelihood-2025" / run_id
    read = bankfile.read_bank_file(
        (folder / "bank_0001.dat").read_bytes(), reference.bank_settings().layout
    )
    assert "Nguy?n V?n An" in read.data["holder_name"].to_list()
    assert "가나다라마바사아자차" in read.data["holder_name"].to_list()  # cut at 20 bytes
    warned = paid_rows(out, run_id).filter(
        pl.col("warning_codes").list.contains("HOLDER_NAME_NOT_CP949")
    )
    assert warned.height == 2  # both rows of that one payment
    assert warned["application_id"].drop_nulls().to_list() == ["T00000"]


def test_pain001_option_writes_an_iso20022_message_that_validates_against_the_official_xsd(
    pain: tuple[Path, Path, str],
) -> None:
    _, out, run_id = pain
    folder = out / "payments/paju-livelihood-2025" / run_id
    message = etree.parse(str(folder / "bank_0001.xml"))
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    assert schema.validate(message), schema.error_log
    paid = paid_rows(out, run_id).filter(
        pl.col("source_kind") == "registry", pl.col("payout") == "bank"
    )
    assert message.findtext(f".//{PAIN}GrpHdr/{PAIN}NbOfTxs") == str(BANK_ROWS)
    assert message.findtext(f".//{PAIN}GrpHdr/{PAIN}CtrlSum") == str(paid["amount_krw"].sum())
    ids = [e.text for e in message.iter(f"{PAIN}EndToEndId")]
    assert sorted(ids) == sorted(paid["payment_id"].to_list())
    amounts = list(message.iter(f"{PAIN}InstdAmt"))
    assert {a.get("Ccy") for a in amounts} == {"KRW"}
    assert {a.text for a in amounts} == {"100000"}  # whole won, no decimals
    holders = [e.text for e in message.iter(f"{PAIN}Nm")]
    assert HOLDERS[0] in holders  # UTF-8 XML carries the name exactly
    assert not paid["warning_codes"].list.contains("HOLDER_NAME_NOT_CP949").any()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {f["file"]: f["format"] for f in manifest["files"]}["bank_0001.xml"] == (
        "pain.001.001.09"
    )


def test_explain_by_payment_id_says_which_bank_and_masked_account_a_payment_went_to(
    fixed_width: tuple[Path, Path, str],
) -> None:
    story, out, run_id = fixed_width
    paid = paid_rows(out, run_id).filter(
        pl.col("source_kind") == "registry", pl.col("payout") == "bank"
    )
    payment = paid.row(0, named=True)
    text = explain_person(out, payment_id=payment["payment_id"])
    assert f"(bank 088, account ****{payment['account_last4']})" in text
    assert not any(n in text for n in account_numbers(story))
