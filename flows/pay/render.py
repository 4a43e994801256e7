"""Split a run's payees by payout channel and render each channel's payment files.

- `local_currency`: the card operator's credit CSV (flows/pay/credit.py).
- `bank`: the Korean bulk-transfer fixed-length file (flows/pay/bankfile.py), or, when the run asks
  for `bank_file="pain.001"`, an ISO 20022 pain.001.001.09 message (flows/pay/pain001.py) instead.
  One format per run, never both, so every payment is in exactly one file and the manifest's
  total equals the audit's PAID total.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Literal

import polars as pl

from flows.decide.rules import RunContext
from flows.inputs import reference
from flows.pay import bankfile, pain001
from flows.pay import credit as payments

BankFormat = Literal["fixed_width", "pain.001"]
HOLDER_WARNING = "HOLDER_NAME_NOT_CP949"
SEOUL = dt.timezone(dt.timedelta(hours=9))


HEX = "0123456789ABCDEF"  # payment ids are "JW" + upper-case hex of a hash: uniform over these


def render_payments(
    payees: pl.DataFrame | pl.LazyFrame,
    ctx: RunContext,
    bank_format: BankFormat,
    write: Callable[[payments.PaymentFile], None],
    assigned: Callable[[int, pl.DataFrame], None],
) -> tuple[list[payments.StagedFile], pl.DataFrame, pl.DataFrame]:
    """Render every payment file of a run, local-currency payees a sixteenth at a time.

    The one renderer, for a run held in memory and for a partitioned one alike. Local-currency
    payees are ordered by payment id and split into files of the program's
    `max_records_per_file`, range by range (payment ids starting `JW0`, then `JW1`, ...), so
    memory holds one range and one unfinished file, not every payee. `assigned(range, frame)`
    receives each range's `payment_id -> payment_file` map (with the payees' other columns but
    their card ids, e.g. a partitioned run's `_bucket`). Bank payees (few) are rendered whole, in
    one format per run. `write` receives each file. Returns the files' totals, the bank payees'
    map and the payment ids whose holder name the bank file could not carry.

    Every file carries each payee's `attempt` (a column payees may lack: then 1).
    """
    program = ctx.program
    memo = program.title.ko
    extra = [c for c in payees.collect_schema() if c.startswith("_")]
    local = payees.filter(pl.col("payout") == "local_currency").select(
        "payment_id", "card_id", "amount_krw", payments.attempt_of(payees), *extra
    )
    expected = local.lazy().select(pl.len()).collect().item()
    staged: list[payments.StagedFile] = []
    ranges = payment_id_ranges(local)

    def emit(files: list[payments.PaymentFile]) -> None:
        for f in files:
            write(f)
            staged.append(payments.StagedFile.of(f))

    numbered, pending = 0, None
    for r, part in enumerate(ranges):
        part = payments.assign_files(
            part, program.max_records_per_file, prefix="local_currency", before=numbered
        )
        numbered += part.height
        assigned(r, part.select("payment_id", "payment_file", *extra))
        pending = part if pending is None else pl.concat([pending, part])
        if pending.height:
            last = pending["payment_file"][-1]  # may still grow with the next range
            done = pending.filter(pl.col("payment_file") != last)
            emit(payments.credit_files(payments.credit_rows(done, ctx.run_id, program.id, memo)))
            pending = pending.filter(pl.col("payment_file") == last)
    if pending is not None and pending.height:
        emit(payments.credit_files(payments.credit_rows(pending, ctx.run_id, program.id, memo)))
    if numbered != expected:
        raise RuntimeError(
            f"{expected - numbered} payees have a payment id outside JW[0-9A-F]: refusing to pay"
        )
    bank_payees = (
        payees.lazy()
        .filter(pl.col("payout") == "bank")
        .with_columns(payments.attempt_of(payees))
        .collect()
    )
    bank_files, bank_assigned = bank_payment_files(bank_payees, ctx, bank_format)
    emit(bank_files)
    lossy = lossy_holder_names(bank_payees, bank_format)
    return sorted(staged, key=lambda f: f.file), bank_assigned, lossy


def payment_id_ranges(local: pl.DataFrame | pl.LazyFrame) -> Iterator[pl.DataFrame]:
    """Yield the payees of each sixteenth of the payment ids (`JW0...` to `JWF...`), in order.

    Payees in memory are split once; a scan (a partitioned run's payees on disk) is read one
    range at a time, so memory holds one range.
    """
    digit = pl.col("payment_id").str.slice(2, 1)
    if isinstance(local, pl.DataFrame):
        split = local.with_columns(_digit=digit).partition_by("_digit", as_dict=True)
        for d in HEX:
            yield split[(d,)].drop("_digit") if (d,) in split else local.clear()
        return
    for d in HEX:
        yield local.filter(digit == d).collect()


def bank_payment_files(
    bank_payees: pl.DataFrame, ctx: RunContext, bank_format: BankFormat
) -> tuple[list[payments.PaymentFile], pl.DataFrame]:
    """Return the bank files (one format per run) and their `payment_id -> payment_file` map."""
    extra = [c for c in bank_payees.columns if c.startswith("_")]
    if bank_payees.height == 0:
        return [], bank_payees.select(
            "payment_id", pl.lit(None, pl.String).alias("payment_file"), *extra
        )
    program, memo = ctx.program, ctx.program.title.ko
    extension = "xml" if bank_format == "pain.001" else "dat"
    bank = payments.assign_files(
        bank_payees, program.max_records_per_file, prefix="bank", extension=extension
    )
    settings = reference.bank_settings()
    day = ctx.decided_at.astimezone(SEOUL).date()
    if bank_format == "pain.001":
        files = pain001.pain001_files(bank, settings, ctx.run_id, ctx.decided_at, day, memo)
    else:
        files = bankfile.bank_files(bankfile.data_rows(bank, memo), settings, ctx.run_id, day)
    return files, bank.select("payment_id", "payment_file", *extra)


def payment_files(
    payees: pl.DataFrame, ctx: RunContext, bank_format: BankFormat = "fixed_width"
) -> tuple[list[payments.PaymentFile], pl.DataFrame]:
    """Return every payment file of a run held in memory and its `payment_id -> file` map."""
    files: list[payments.PaymentFile] = []
    ranges: list[pl.DataFrame] = []
    _, bank, _ = render_payments(
        payees, ctx, bank_format, files.append, lambda _, frame: ranges.append(frame)
    )
    local = pl.concat(ranges) if ranges else bank.clear()
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
