"""The story with bank payouts: a program offering them and 40 town applicants asking for one.

`write_bank_trail` runs the real flow twice on it (March pays, April finds every enrollment file
consumed); the session fixture `bank_trail` (conftest.py) shares that trail read-only between
the bank payout, verify, auditor guide and report tests. Copy it before tampering.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import ROOT, STORY, TEST_KEY
from tests.support.flowrun import run_flow

BANK_ROWS = 40  # the first 40 town applications ask for a bank transfer
HOLDERS = ["Nguyễn Văn An", "가나다라마바사아자차카타"]  # one CP949 cannot encode, one too long


@dataclass(frozen=True)
class BankTrail:
    """Where the bank story and its two-run trail are."""

    story: Path
    out: Path
    first: str
    second: str


def bank_story(target: Path) -> Path:
    """Copy the story, offer bank payouts, and let 40 town applicants ask for one.

    The program offering bank payouts is `target/programs`: runs pass it as `programs_dir`.
    """
    shutil.copytree(STORY / "registry", target / "registry")
    shutil.copytree(STORY / "enrollments", target / "enrollments")
    programs = target / "programs"
    source = ROOT / "rules/programs/paju-livelihood-2025/program.yaml"
    program = programs / "paju-livelihood-2025/program.yaml"
    program.parent.mkdir(parents=True)
    program.write_text(
        source.read_text().replace(
            "payout_channels: [local_currency]", "payout_channels: [local_currency, bank]"
        )
    )
    town = target / "enrollments/enrollments_town.csv"
    frame = pl.read_csv(town, infer_schema=False)
    i = pl.int_range(pl.len())
    bank = i < BANK_ROWS
    holder = (
        pl.when(i == 0)
        .then(pl.lit(HOLDERS[0]))
        .when(i == 1)
        .then(pl.lit(HOLDERS[1]))
        .otherwise(pl.format("예금주{}", i))
    )
    frame.with_columns(
        payout=pl.when(bank).then(pl.lit("bank")).otherwise("payout"),
        card_id=pl.when(bank).then(None).otherwise("card_id"),
        bank_code=pl.when(bank).then(pl.lit("088")),
        account_no=pl.when(bank).then(pl.format("1102{}", (i + 1000000).cast(pl.String))),
        account_holder=pl.when(bank).then(holder),
    ).write_csv(town)
    return target


def bank_run(factory: pytest.TempPathFactory, **overrides: str) -> tuple[Path, Path, str]:
    """Run the flow once on the bank story; return (story, out, run_id)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("JIWON_PII_KEY", TEST_KEY)
    try:
        story = bank_story(factory.mktemp("bank-story"))
        out = factory.mktemp("bank-out")
        summary = run_flow(story, out, programs_dir=story / "programs", **overrides)
    finally:
        mp.undo()
    return story, out, summary.run_id


def write_bank_trail(factory: pytest.TempPathFactory) -> BankTrail:
    """Run the bank story for 2025-03 (pays) and 2025-04 (nothing new) into one output root."""
    mp = pytest.MonkeyPatch()
    mp.setenv("JIWON_PII_KEY", TEST_KEY)
    try:
        story = bank_story(factory.mktemp("bank-story"))
        out = factory.mktemp("bank-trail") / "out"
        first = run_flow(story, out, programs_dir=story / "programs")
        second = run_flow(story, out, run_month="2025-04", programs_dir=story / "programs")
    finally:
        mp.undo()
    return BankTrail(story, out, first.run_id, second.run_id)


def copy_trail(source: Path, target: Path) -> Path:
    """Copy an output root and its anchors (kept outside it, per output root) to `target`.

    As an operator moving a trail would, after `jiwon audit anchor`; here the anchors are copied.
    """
    from flows.audit import anchor

    shutil.copytree(source, target)
    for folder in (source / "audit/runs").glob("program=*"):
        program = folder.name.removeprefix("program=")
        kept = anchor.anchor_file(source, program)
        if kept.exists():
            shutil.copy(kept, anchor.anchor_file(target, program))
    return target
