"""Split a run's payees by payout channel and render each channel's payment files.

- `local_currency`: the card operator's credit CSV (flows/payments.py).
- `bank`: the Korean bulk-transfer fixed-length file (flows/bankfile.py), or, when the run asks
  for `bank_file="pain.001"`, an ISO 20022 pain.001.001.09 message (flows/pain001.py) instead.
  One format per run, never both, so every payment is in exactly one file and the manifest's
  total equals the audit's PAID total.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import polars as pl

from flows import bankfile, pain001, payments
from flows.decide import RunContext

BankFormat = Literal["fixed_width", "pain.001"]
HOLDER_WARNING = "HOLDER_NAME_NOT_CP949"
SEOUL = dt.timezone(dt.timedelta(hours=9))


def payment_files(
    payees: pl.DataFrame, ctx: RunContext, bank_format: BankFormat = "fixed_width"
) -> tuple[list[payments.PaymentFile], pl.DataFrame]:
    """Return every payment file of the run and a `payment_id -> payment_file` map."""
    program = ctx.program
    memo = program.title.ko
    local = payments.assign_files(
        payees.filter(pl.col("payout") == "local_currency"),
        program.max_records_per_file,
        prefix="local_currency",
    )
    files = payments.credit_files(payments.credit_rows(local, ctx.run_id, program.id, memo))
    bank_payees = payees.filter(pl.col("payout") == "bank")
    bank: pl.DataFrame = local.clear()
    if bank_payees.height:
        extension = "xml" if bank_format == "pain.001" else "dat"
        bank = payments.assign_files(
            bank_payees, program.max_records_per_file, prefix="bank", extension=extension
        )
        settings = bankfile.bank_settings()
        day = ctx.decided_at.astimezone(SEOUL).date()
        if bank_format == "pain.001":
            files += pain001.pain001_files(bank, settings, ctx.run_id, ctx.decided_at, day, memo)
        else:
            files += bankfile.bank_files(bankfile.data_rows(bank, memo), settings, ctx.run_id, day)
    assigned = pl.concat([local, bank]).select("payment_id", "payment_file")
    return sorted(files, key=lambda f: f.file), assigned


def lossy_holder_names(payees: pl.DataFrame, bank_format: BankFormat) -> pl.DataFrame:
    """Return the payment ids whose holder name the bank file could not carry exactly."""
    bank = payees.filter(pl.col("payout") == "bank")
    if bank_format != "fixed_width" or bank.height == 0:
        return bank.select("payment_id").clear()
    return bank.filter(bankfile.holder_name_lossy(bank["account_holder"])).select("payment_id")


def with_holder_warnings(records: pl.DataFrame, lossy: pl.DataFrame) -> pl.DataFrame:
    """Add `HOLDER_NAME_NOT_CP949` to both decision records of each lossy payment."""
    if lossy.height == 0:
        return records
    hit = pl.col("payment_id").is_in(lossy["payment_id"].implode())
    return records.with_columns(
        warning_codes=pl.when(hit)
        .then(pl.concat_list("warning_codes", pl.lit([HOLDER_WARNING])))
        .otherwise("warning_codes")
    )
