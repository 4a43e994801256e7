"""Checks shared by the crash tests: nobody paid twice, nobody owed lost, the trail intact."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from flows.audit.verify import verify_trail

PROGRAM = "paju-livelihood-2025"


def committed_payments(out: Path) -> pl.DataFrame:
    """Return the PAID registry decisions of every committed run (person, amount, payment id)."""
    runs = pl.read_parquet(out / "audit/runs/**/*.parquet")
    committed = runs.filter(pl.col("status") == "committed", ~pl.col("dry_run"))["run_id"]
    decisions = pl.read_parquet(out / "audit/decisions/**/*.parquet", hive_partitioning=True)
    return decisions.filter(
        pl.col("run_id").is_in(committed.implode()),
        pl.col("source_kind") == "registry",
        pl.col("outcome") == "PAID",
    ).select("person_key", "instalment", "amount_krw", "payment_id", "run_id")


def released_payment_ids(out: Path) -> pl.Series:
    """Return the payment ids in every released credit file (what the card operator receives)."""
    files = sorted((out / "payments" / PROGRAM).glob("*/*.csv"))
    if not files:
        return pl.Series("payment_id", [], pl.String)
    frames = [pl.read_csv(f, schema_overrides={"payment_id": pl.String}) for f in files]
    return pl.concat([f.select("payment_id") for f in frames])["payment_id"]


def assert_exactly_once(out: Path, clean: pl.DataFrame) -> None:
    """Assert the trail verifies and pays exactly whom a single clean run pays, each once."""
    problems, _ = verify_trail(out)
    assert problems == []
    paid = committed_payments(out)
    assert paid["person_key"].is_duplicated().sum() == 0, "somebody was paid twice"
    expected = clean.select("person_key", "amount_krw").sort("person_key")
    assert paid.select("person_key", "amount_krw").sort("person_key").equals(expected), (
        "who was paid (or how much) differs from a clean single run"
    )
    released = released_payment_ids(out)
    assert released.is_duplicated().sum() == 0, "a payment id was released twice"
    assert set(released) == set(paid["payment_id"]), "released files differ from the audit"
    for manifest in (out / "payments" / PROGRAM).glob("*/manifest.json"):
        run_id = manifest.parent.name
        assert run_id in set(paid["run_id"]) or json.loads(manifest.read_text())["total_krw"] == 0
    staging = out / ".staging"
    assert not staging.exists() or not any(staging.iterdir()), "staging left behind"
