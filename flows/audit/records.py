"""Assemble decision records and the run record, and hash them into the program's chain."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from flows.audit import signing
from flows.decide.codes import OUTCOMES
from flows.decide.rules import Decisions, RunContext, keyed
from flows.i18n import _
from schemas.audit import DECISION_COLUMNS, DECISION_SCHEMA, SCHEMA_VERSION

# The keyed hashes of a payee's account and card start from these, so neither can equal the other
# (nor a person key) for the same digits.
ACCOUNT_PREFIX = "account:"
CARD_PREFIX = "card:"
RUN_STATUSES = ("committed", "dry_run", "rejected", "halted", "failed")


def decision_records(
    decisions: Decisions, ctx: RunContext, payment_files: pl.DataFrame
) -> pl.DataFrame:
    """Return one decision record per input row, registry rows first, in the audit's columns.

    `payment_files` maps `payment_id` to `payment_file`.
    """
    common = {
        "run_id": pl.lit(ctx.run_id),
        "program": pl.lit(ctx.program.id),
        "run_month": pl.lit(ctx.run_month),
        "rule_set_id": pl.lit(ctx.program.id),
        "rule_set_sha256": pl.lit(ctx.program.sha256),
        "decided_at": pl.lit(ctx.decided_at, pl.Datetime("us", "UTC")),
    }
    payout = pl.when(pl.col("outcome") == "PAID")
    registry = decisions.registry.with_columns(application_id=pl.lit(None, pl.String))
    enrollment = decisions.enrollment.with_columns(population=pl.lit(None, pl.String))
    # A payment's channel and its keyed account or card go on both of its rows.
    paid_through = payout_columns(decisions.payees, ctx.pii_key)
    registry, enrollment = (
        f.drop("payout", "bank_code", "account_no", strict=False)
        .join(paid_through, on="payment_id", how="left", maintain_order="left")
        .with_columns(payout=payout.then(pl.col("payout")))
        for f in (registry, enrollment)
    )
    # An application's population is its beneficiary's; take it from the registry.
    populations = registry.filter("kept").select("person_key", b_population="population")
    enrollment = enrollment.join(
        populations, on="person_key", how="left", maintain_order="left"
    ).with_columns(population="b_population")
    columns = list(DECISION_COLUMNS)
    frame = pl.concat(
        [
            f.with_columns(**common)
            .with_columns(
                instalment=pl.col("instalment").fill_null(ctx.instalment).cast(pl.Int64)
                if "instalment" in f.columns
                else pl.lit(ctx.instalment, pl.Int64)
            )
            .join(payment_files, on="payment_id", how="left", maintain_order="left")
            .select(columns)
            for f in (registry, enrollment)
        ]
    )
    return DECISION_SCHEMA.validate(frame)


def payout_columns(payees: pl.DataFrame, key: str) -> pl.DataFrame:
    """Return each payment's channel, bank code, account key, last four digits and card key.

    The account number and card id never leave this function: `account_key` is the HMAC-SHA256
    of `account:bank_code:account_no` and `card_key` that of `card:card_id`, with the deployment
    key, so auditors can see two payments went to the same account or card, and a payment file
    can be checked against its decision records (`flows.audit.payouts`), without learning
    either number.
    """
    bank = pl.col("payout") == "bank"
    card = pl.col("payout") == "local_currency"
    account = pl.concat_str(pl.col("bank_code"), pl.lit(":"), pl.col("account_no"))
    return payees.with_columns(account=account).select(
        "payment_id",
        "payout",
        bank_code=pl.when(bank).then(pl.col("bank_code")),
        account_key=pl.when(bank).then(keyed("account", key, prefix=ACCOUNT_PREFIX)),
        account_last4=pl.when(bank).then(pl.col("account_no").str.slice(-4)),
        card_key=pl.when(card).then(keyed("card_id", key, prefix=CARD_PREFIX)),
    )


PARTITION_COLUMNS = ("program", "run_month", "run_id")


def parquet_bytes(frame: pl.DataFrame, metadata: dict[str, str]) -> bytes:
    """Return zstd Parquet bytes of a frame with key-value metadata."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", compression_level=1, metadata=metadata)
    return buffer.getvalue()


def decisions_parquet(records: pl.DataFrame, ctx: RunContext) -> bytes:
    """Return the run's decision records as Parquet with schema-version metadata.

    The hive partition columns (program, run_month, run_id) live in the folder names, as hive
    readers expect (polars, DuckDB and pyarrow add them back), and in the file's metadata.
    """
    return parquet_bytes(records.drop(PARTITION_COLUMNS), decisions_metadata(ctx))


def decisions_metadata(ctx: RunContext) -> dict[str, str]:
    """Return the key-value metadata every decisions Parquet file carries."""
    return {
        "jiwon.schema_version": SCHEMA_VERSION,
        "jiwon.table": "decisions",
        "jiwon.run_id": ctx.run_id,
        "jiwon.program": ctx.program.id,
        "jiwon.run_month": ctx.run_month,
    }


@dataclass(frozen=True)
class RunRecord:
    """One run, committed or not (spec/outputs.md): the run manifest auditors start from."""

    run_id: str
    flow_run_id: str | None
    program: str
    run_month: str
    reference_date: dt.date
    trigger: str
    operator: str
    reason: str | None
    dry_run: bool
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime
    code_version: str
    rule_set_id: str
    rule_set_sha256: str
    parameters: str  # JSON: the run's parameters and the program values it used
    message: str
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    total_paid_krw: int = 0
    key_fingerprint: str | None = None  # flows.audit.keyprint; None in records written before it
    prev_run_sha256: str | None = None
    run_sha256: str = ""
    signing_key: str | None = None  # id of the key that signed it (flows.audit.signing)
    signature: str | None = None  # Ed25519 signature (hex) of `canonical()`
    # A signing-key rotation's second signature of `canonical()`, by the retiring key (0014)
    cosignature: str | None = None

    def canonical(self) -> bytes:
        """Return the bytes `run_sha256` and `signature` cover: every field but those two.

        A record from before `key_fingerprint` or `signing_key` existed has none and was sealed
        without it.
        """
        body = asdict(self)
        body.pop("run_sha256")
        body.pop("signature")
        body.pop("cosignature")
        for optional in ("key_fingerprint", "signing_key"):
            if body[optional] is None:
                body.pop(optional)
        # records from before rows_closed (0012) were sealed without it
        for item in body["inputs"]:  # bounded: a JSON list, one item per input file
            if "rows_closed" in item and item["rows_closed"] is None:
                item.pop("rows_closed")
        return json.dumps(body, sort_keys=True, default=str, ensure_ascii=False).encode()

    def seal_holds(self) -> bool:
        """Return whether `run_sha256` still matches the record's content."""
        return hashlib.sha256(self.canonical()).hexdigest() == self.run_sha256

    def sealed(self, key: Ed25519PrivateKey | None = None) -> RunRecord:
        """Return a copy with `run_sha256` over its canonical form, signed with `key` if given.

        The key's id is part of what is hashed and signed.
        """
        record = replace(self, signing_key=signing.key_id(key) if key else None, signature=None)
        body = record.canonical()
        return replace(
            record,
            run_sha256=hashlib.sha256(body).hexdigest(),
            signature=signing.sign(key, body) if key else None,
        )

    def signature_problem(self, keys: list[Ed25519PublicKey]) -> str | None:
        """Return why the record is signed by none of `keys` (for a message), or None."""
        if any(self.signed_by(k) for k in keys):
            return None
        if not self.signature:
            return _("is not signed (a record written by hand, or by a version before signatures)")
        ids = [signing.key_id(k) for k in keys]
        if self.signing_key not in ids:
            checked = ", ".join(f"{i[:12]}…" for i in ids) or "none"
            return _(
                "is signed with another signing key (id {value}…; checked "
                "against {checked}; if the city changed its signing key, rotate "
                "it for this program too: `jiwon keys rotate signing`)"
            ).format(value=str(self.signing_key)[:12], checked=checked)
        return _("has a signature that does not match its content (edited and resealed)")

    def signed_by(self, key: Ed25519PublicKey) -> bool:
        """Return whether the record carries the key's valid signature of its content."""
        return self.signing_key == signing.key_id(key) and signing.signed_by(
            key, self.canonical(), self.signature
        )


INPUT_TYPE = pa.struct(
    [
        ("kind", pa.string()),
        ("file", pa.string()),
        ("sha256", pa.string()),
        ("rows", pa.int64()),
        ("encoding", pa.string()),
        ("skipped_by_run", pa.string()),
        ("rows_closed", pa.int64()),
    ]
)
OUTPUT_TYPE = pa.struct(
    [
        ("file", pa.string()),
        ("sha256", pa.string()),
        ("records", pa.int64()),
        ("total_krw", pa.int64()),
    ]
)
RUN_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("flow_run_id", pa.string()),
        ("program", pa.string()),
        ("run_month", pa.string()),
        ("reference_date", pa.date32()),
        ("trigger", pa.string()),
        ("operator", pa.string()),
        ("reason", pa.string()),
        ("dry_run", pa.bool_()),
        ("status", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("code_version", pa.string()),
        ("rule_set_id", pa.string()),
        ("rule_set_sha256", pa.string()),
        ("parameters", pa.string()),
        ("message", pa.string()),
        ("inputs", pa.list_(INPUT_TYPE)),
        ("outputs", pa.list_(OUTPUT_TYPE)),
        ("counts", pa.struct([(o, pa.int64()) for o in OUTCOMES])),
        ("total_paid_krw", pa.int64()),
        ("key_fingerprint", pa.string()),
        ("prev_run_sha256", pa.string()),
        ("run_sha256", pa.string()),
        ("signing_key", pa.string()),
        ("signature", pa.string()),
        ("cosignature", pa.string()),
    ]
)


def run_record_parquet(record: RunRecord) -> bytes:
    """Return the run record as a one-row Parquet file."""
    table = pa.Table.from_pylist([asdict(record)], schema=RUN_SCHEMA)
    table = table.replace_schema_metadata(
        {b"jiwon.schema_version": SCHEMA_VERSION.encode(), b"jiwon.table": b"runs"}
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def record_from_row(row: dict[str, Any]) -> RunRecord:
    """Rebuild a RunRecord from a row read back from `audit/runs` (for verification)."""
    names = set(RunRecord.__dataclass_fields__)
    return RunRecord(**{k: v for k, v in row.items() if k in names})
