"""`jiwon audit verify` on a two-run trail: every kind of tampering names its first broken link.

The trail is the session's shared bank trail (two real flow runs, the first with bank payouts
so there is a credit CSV, a bank file and a manifest); each test tampers with its own copy.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import pytest

from flows.audit import records as audit
from flows.audit import signing
from flows.audit.verify import verify_trail
from tests.conftest import TEST_SIGNING_KEY
from tests.support.banktrail import BankTrail, copy_trail

pytestmark = [pytest.mark.flow]
PROGRAM = "paju-livelihood-2025"


@pytest.fixture
def trail(bank_trail: BankTrail, tmp_path: Path) -> tuple[Path, str, str]:
    """A private copy of the shared two-run trail to tamper with."""
    copy = tmp_path / "out"
    copy_trail(bank_trail.out, copy)
    return copy, bank_trail.first, bank_trail.second


def run_file(out: Path, run_id: str) -> Path:
    return out / "audit/runs" / f"program={PROGRAM}" / f"run_id={run_id}.parquet"


def payments(out: Path, run_id: str) -> Path:
    return out / "payments" / PROGRAM / run_id


def decision_file(out: Path, run_id: str) -> Path:
    return next(out.glob(f"audit/decisions/**/run_id={run_id}/*.parquet"))


def reseal(out: Path, run_id: str, signed: bool = True, **changes: object) -> None:
    """Edit a run record and recompute its seal: signed as an insider holding the city's signing
    key would (the chain and the totals must still catch it), or unsigned as anyone else."""
    row = pl.read_parquet(run_file(out, run_id)).row(0, named=True)
    record = audit.record_from_row(row | changes)
    key = signing.private_key(TEST_SIGNING_KEY) if signed else None
    run_file(out, run_id).write_bytes(audit.run_record_parquet(record.sealed(key)))


def test_a_run_record_resealed_without_the_signing_key_is_named_as_not_signed(
    trail: tuple[Path, str, str],
) -> None:
    out, first, _ = trail
    reseal(out, first, signed=False, total_paid_krw=0)
    problems, _ = verify_trail(out)
    assert first in problems[0] and "run record is not signed" in problems[0]


def test_a_run_record_signed_with_another_key_fails_against_the_auditors_public_key(
    trail: tuple[Path, str, str], tmp_path: Path
) -> None:
    out, first, _ = trail
    row = pl.read_parquet(run_file(out, first)).row(0, named=True)
    forged = audit.record_from_row(row | {"total_paid_krw": 0})
    other = signing.private_key(signing.new_private_hex())
    run_file(out, first).write_bytes(audit.run_record_parquet(forged.sealed(other)))
    (out / "audit/keys" / f"{signing.key_id(other)}.pem").write_bytes(signing.public_pem(other))
    # Against the keys stored beside the trail the forger's own key passes the signature...
    trusted = signing.public_key(signing.public_pem(signing.private_key(TEST_SIGNING_KEY)))
    problems, _ = verify_trail(out, [trusted])
    # ...but not against the auditor's trusted copy of the city's key.
    assert first in problems[0] and "signed with another signing key" in problems[0]


def first_problem(out: Path) -> str:
    problems, _ = verify_trail(out)
    assert problems, "tampering went unnoticed"
    return problems[0]


def test_an_untouched_trail_of_two_runs_verifies_clean(trail: tuple[Path, str, str]) -> None:
    out, _, _ = trail
    assert verify_trail(out) == ([], 2)


def test_verify_names_an_edited_value_in_a_decision_file(trail: tuple[Path, str, str]) -> None:
    out, first, _ = trail
    path = decision_file(out, first)
    frame = pl.read_parquet(path)
    frame.with_columns(
        outcome=pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("PAID")).otherwise("outcome")
    ).write_parquet(path)
    problem = first_problem(out)
    assert first in problem and "part-00000.parquet was changed" in problem


def test_verify_names_an_edited_value_in_a_run_record(trail: tuple[Path, str, str]) -> None:
    out, first, _ = trail
    frame = pl.read_parquet(run_file(out, first))
    frame.with_columns(operator=pl.lit("someone else")).write_parquet(run_file(out, first))
    problem = first_problem(out)
    assert first in problem and "run record was edited" in problem


def test_verify_recomputes_totals_so_a_resealed_run_record_with_a_false_total_is_named(
    trail: tuple[Path, str, str],
) -> None:
    out, first, second = trail
    reseal(out, first, total_paid_krw=0)
    problems, _ = verify_trail(out)
    assert (
        first in problems[0]
        and "audit PAID total 31,400,000 != run record total 0" in (problems[0])
    )
    assert any(second in p and "chain broken" in p for p in problems)


def test_verify_names_a_run_record_edited_and_resealed_by_the_next_runs_link(
    trail: tuple[Path, str, str],
) -> None:
    out, first, second = trail
    reseal(out, first, operator="someone else")
    problem = first_problem(out)
    assert second in problem and "chain broken" in problem
    assert "not in the trail" in problem


def test_verify_names_an_edited_credit_file(trail: tuple[Path, str, str]) -> None:
    out, first, _ = trail
    path = payments(out, first) / "local_currency_0001.csv"
    path.write_text(path.read_text().replace(",100000,", ",1000000,", 1))
    problem = first_problem(out)
    assert first in problem and "local_currency_0001.csv was changed" in problem


def test_verify_names_an_edited_bank_file(trail: tuple[Path, str, str]) -> None:
    out, first, _ = trail
    path = payments(out, first) / "bank_0001.dat"
    content = bytearray(path.read_bytes())
    content[102 + 12] = ord("9")  # first data record, first account digit
    path.write_bytes(bytes(content))
    problem = first_problem(out)
    assert first in problem and "bank_0001.dat was changed" in problem


def test_verify_names_a_deleted_payment_file(trail: tuple[Path, str, str]) -> None:
    out, first, _ = trail
    (payments(out, first) / "bank_0001.dat").unlink()
    problem = first_problem(out)
    assert first in problem and "bank_0001.dat is missing" in problem


def test_verify_names_a_deleted_decision_file(trail: tuple[Path, str, str]) -> None:
    out, first, _ = trail
    decision_file(out, first).unlink()
    problem = first_problem(out)
    assert first in problem and "part-00000.parquet is missing" in problem


def test_verify_names_a_deleted_run_record_by_the_outputs_it_left(
    trail: tuple[Path, str, str],
) -> None:
    out, first, second = trail
    run_file(out, first).unlink()
    problems, checked = verify_trail(out)
    assert checked == 1
    assert first in problems[0] and "run record is missing" in problems[0]
    assert any(second in p and "chain broken" in p for p in problems)


def test_verify_names_a_file_added_to_a_runs_payments(trail: tuple[Path, str, str]) -> None:
    out, first, _ = trail
    (payments(out, first) / "bank_0002.dat").write_bytes(b"D" * 100 + b"\r\n")
    problem = first_problem(out)
    assert first in problem and "bank_0002.dat was added" in problem


def test_verify_names_decision_records_added_for_a_run_that_never_ran(
    trail: tuple[Path, str, str],
) -> None:
    out, first, _ = trail
    forged = "20250501T000000Z-f0f0f0f0"
    target = decision_file(out, first).parent.parent / f"run_id={forged}"
    target.mkdir()
    shutil.copy(decision_file(out, first), target / "part-00000.parquet")
    problem = first_problem(out)
    assert forged in problem and "run record is missing" in problem


def test_verify_names_runs_reordered_in_time(trail: tuple[Path, str, str]) -> None:
    out, first, second = trail
    later = pl.read_parquet(run_file(out, second))["finished_at"][0] + dt.timedelta(hours=1)
    reseal(out, first, finished_at=later)  # the first run now sorts after the second
    problems, _ = verify_trail(out)
    assert second in problems[0] and "chain broken" in problems[0]
    assert any(first in p and "claims to be the first run" in p for p in problems)


def test_verify_names_run_records_swapped_between_files(trail: tuple[Path, str, str]) -> None:
    out, first, second = trail
    a, b = run_file(out, first), run_file(out, second)
    a_bytes = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(a_bytes)
    problem = first_problem(out)
    assert "renamed or swapped" in problem and first in problem


def test_verify_reads_payment_files_back_and_names_one_whose_content_disagrees_with_the_audit(
    tmp_path: Path,
) -> None:
    import hashlib

    from flows.audit.verify import verify_payment_files

    credit = b"batch_id,seq,card_id,amount,payment_id,program,memo\nb,1,1,100000,JW1,p,m\n"
    (tmp_path / "local_currency_0001.csv").write_bytes(credit)
    entry = {
        "file": "local_currency_0001.csv",
        "format": "local_currency_csv",
        "sha256": hashlib.sha256(credit).hexdigest(),
        "records": 1,
        "total_krw": 100_000,
    }
    manifest = {"files": [entry]}
    audit_rows = pl.DataFrame(
        {
            "source_kind": ["registry", "registry"],
            "outcome": ["PAID", "PAID"],
            "payment_file": ["local_currency_0001.csv"] * 2,
            "amount_krw": [100_000, 100_000],
        }
    )
    problems = verify_payment_files(tmp_path, manifest, audit_rows, "run R (p)")
    assert problems == [
        "run R (p): payment file local_currency_0001.csv: content has 1 records / 100,000 won, "
        "manifest 1 / 100,000, audit 2 / 200,000"
    ]
    assert verify_payment_files(tmp_path, manifest, audit_rows.head(1), "run R (p)") == []
