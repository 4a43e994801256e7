"""Build the local-currency credit file (지역화폐 충전) rows and split them into files.

Pure: returns frames and bytes; `flows.run.publish` writes them. The credit file is UTF-8 CSV
with the columns of spec/outputs.md; control totals go to `manifest.json`.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import polars as pl

from flows.money import won_total

CREDIT_COLUMNS = (
    "batch_id",
    "seq",
    "card_id",
    "amount",
    "payment_id",
    "program",
    "memo",
    "attempt",
)
FIRST_ATTEMPT = 1
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class PaymentFile:
    """One payment file's name, bytes and control totals."""

    file: str
    content: bytes
    records: int
    total_krw: int
    format: str = "local_currency_csv"

    @property
    def sha256(self) -> str:
        """Return the SHA-256 of the file's bytes."""
        return hashlib.sha256(self.content).hexdigest()


class FileTotals(Protocol):
    """What the manifest and the report say about a payment file."""

    @property
    def file(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def records(self) -> int: ...
    @property
    def total_krw(self) -> int: ...


@dataclass(frozen=True)
class StagedFile:
    """A payment file already written to staging: its totals without its bytes (large runs)."""

    file: str
    format: str
    sha256: str
    records: int
    total_krw: int

    @classmethod
    def of(cls, f: PaymentFile) -> StagedFile:
        """Return the totals of a rendered file."""
        return cls(f.file, f.format, f.sha256, f.records, f.total_krw)


def formula_safe(column: str) -> pl.Expr:
    """Prefix text a spreadsheet would run as a formula (=, +, -, @) with an apostrophe."""
    starts = pl.col(column).str.slice(0, 1).is_in(list(FORMULA_START))
    return (
        pl.when(starts)
        .then(pl.concat_str(pl.lit("'"), pl.col(column)))
        .otherwise(pl.col(column))
        .alias(column)
    )


def attempt_of(payees: pl.DataFrame | pl.LazyFrame) -> pl.Expr:
    """Return the payees' `attempt` (Int64), or 1 for payees that carry no such column.

    Every attempt to pay a payment id has a number (spec/lifecycle.md); payees decided before
    attempts were counted are each one's first attempt.
    """
    if "attempt" in payees.collect_schema():
        return pl.col("attempt").cast(pl.Int64)
    return pl.lit(FIRST_ATTEMPT, pl.Int64).alias("attempt")


def instruction_id(payment_id: pl.Expr, attempt: pl.Expr) -> pl.Expr:
    """Return the instruction id of an attempt: `<payment_id>-<attempt>`."""
    return pl.concat_str(payment_id, pl.lit("-"), attempt.cast(pl.String))


def assign_files(
    payees: pl.DataFrame, max_records: int, prefix: str, extension: str = "csv", before: int = 0
) -> pl.DataFrame:
    """Order payees by payment id and give each a sequence number and a payment file name.

    `before`: payees already numbered (a run that numbers its payees range by range).
    """
    return (
        payees.sort("payment_id")
        .with_columns(seq=pl.int_range(before + 1, before + pl.len() + 1, dtype=pl.Int64))
        .with_columns(
            payment_file=pl.format(
                "{}_{}.{}",
                pl.lit(prefix),
                ((pl.col("seq") - 1) // max_records + 1).cast(pl.String).str.zfill(4),
                pl.lit(extension),
            ),
        )
    )


def credit_rows(payees: pl.DataFrame, batch_id: str, program: str, memo: str) -> pl.DataFrame:
    """Return the credit file columns for payees that already carry `seq` and `payment_file`.

    `attempt` is the last column (1 when the payees carry none).
    """
    return payees.select(
        pl.lit(batch_id).alias("batch_id"),
        "seq",
        "card_id",
        pl.col("amount_krw").alias("amount"),
        "payment_id",
        pl.lit(program).alias("program"),
        pl.lit(memo).alias("memo"),
        attempt_of(payees),
        "payment_file",
    ).with_columns(
        formula_safe(c) for c in ("batch_id", "card_id", "payment_id", "program", "memo")
    )


def credit_files(rows: pl.DataFrame) -> list[PaymentFile]:
    """Render one CSV per `payment_file` with its record count and total."""
    files = []
    for (name,), part in rows.group_by("payment_file", maintain_order=True):
        buffer = io.BytesIO()
        part.select(CREDIT_COLUMNS).write_csv(buffer)
        files.append(
            PaymentFile(str(name), buffer.getvalue(), part.height, won_total(part["amount"]))
        )
    return sorted(files, key=lambda f: f.file)


def manifest(files: Sequence[FileTotals], run_id: str, program: str) -> bytes:
    """Return `manifest.json`: each file's SHA-256, records and total, and the grand totals."""
    body = {
        "run_id": run_id,
        "program": program,
        "currency": "KRW",
        "files": [
            {
                "file": f.file,
                "format": f.format,
                "sha256": f.sha256,
                "records": f.records,
                "total_krw": f.total_krw,
            }
            for f in files
        ],
        "records": sum(f.records for f in files),
        "total_krw": sum(f.total_krw for f in files),
    }
    return (json.dumps(body, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
