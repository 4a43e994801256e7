"""docs/auditors.md: every Python block of the guide runs, in order, against a generated trail."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.conftest import ROOT
from tests.support.banktrail import BankTrail
from tests.support.flowrun import decisions, runs

pytestmark = [pytest.mark.flow]
GUIDE = ROOT / "docs/auditors.md"


def guide_blocks() -> list[str]:
    """Return the guide's ```python blocks in order."""
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture(scope="module")
def results_trail(bank_trail: BankTrail, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-run bank trail, then the bank's and card operator's answers to its first run
    (a third rejected or returned), a re-issue run in May and its answers (all settled)."""
    from flows.results.simulate import simulate
    from flows.run.results import ImportParams, import_results
    from tests.conftest import TEST_KEY
    from tests.support.approval import release_run
    from tests.support.banktrail import copy_trail
    from tests.support.flowrun import run_flow

    root = tmp_path_factory.mktemp("results-trail")
    out = copy_trail(bank_trail.out, root / "out")
    programs = bank_trail.story / "programs"
    mp = pytest.MonkeyPatch()
    mp.setenv("JIWON_PII_KEY", TEST_KEY)
    try:

        def answer(run_id: str, rejected: float, returned: float) -> None:
            release_run(out, run_id, programs_dir=programs)
            payments = out / "payments" / "paju-livelihood-2025" / run_id
            files = simulate(payments, root / "replies" / run_id, rejected, returned, seed=7)
            import_results(
                ImportParams(
                    program="paju-livelihood-2025", out=out, files=files, programs_dir=programs
                )
            )

        answer(bank_trail.first, 0.25, 0.1)
        again = run_flow(
            bank_trail.story,
            out,
            run_month="2025-05",
            trigger="rerun",
            reason="re-issue what the bank refused",
            programs_dir=programs,
        )
        answer(again.run_id, 0, 0)
    finally:
        mp.undo()
    return out


@pytest.fixture(scope="module")
def guide_run(results_trail: Path) -> tuple[Path, str, dict[str, Any]]:
    """Run the guide's code against the bank trail with results and a re-issue run."""
    out = results_trail
    unpaid = decisions(out).filter(
        pl.col("source_kind") == "registry", pl.col("outcome") == "UNENROLLED"
    )
    person = unpaid["person_key"][0]
    mp = pytest.MonkeyPatch()
    mp.setenv("JIWON_OUT", str(out))
    mp.setenv("JIWON_PERSON_KEY", person)
    mp.setenv("JIWON_MONTH", "2025-03")
    namespace: dict[str, Any] = {}
    try:
        for block in guide_blocks():
            exec(compile(block, str(GUIDE), "exec"), namespace)
    finally:
        mp.undo()
    return out, person, namespace


def test_the_guide_has_duckdb_polars_and_pyarrow_queries() -> None:
    code = "\n".join(guide_blocks())
    assert len(guide_blocks()) >= 7
    assert "import duckdb" in code and "import polars" in code and "import pyarrow" in code


def test_guide_paid_by_district_agrees_in_duckdb_polars_and_pyarrow_and_with_the_audit(
    guide_run: tuple[Path, str, dict[str, Any]],
) -> None:
    out, _, ns = guide_run
    paid = decisions(out).filter(
        pl.col("run_month") == "2025-03",
        pl.col("outcome") == "PAID",
        pl.col("source_kind") == "registry",
    )
    expected = paid.group_by("admin_code").agg(people=pl.len(), won=pl.col("amount_krw").sum())
    expected = expected.sort("admin_code")
    duck = ns["paid_by_district"]
    assert duck["admin_code"].to_list() == expected["admin_code"].to_list()
    assert duck["won"].cast(pl.Int64).to_list() == expected["won"].to_list()
    assert ns["paid_by_district_pl"].equals(expected.with_columns(pl.col("people").cast(pl.UInt32)))
    arrow = pl.from_arrow(ns["paid_by_district_pa"])
    assert isinstance(arrow, pl.DataFrame)
    assert arrow["amount_krw_sum"].to_list() == expected["won"].to_list()
    assert arrow["amount_krw_count"].to_list() == expected["people"].to_list()
    assert expected["won"].sum() == runs(out)["total_paid_krw"][0] == 31_400_000


def test_guide_explains_why_an_unenrolled_person_was_not_paid(
    guide_run: tuple[Path, str, dict[str, Any]],
) -> None:
    out, person, ns = guide_run
    history = ns["history"]
    assert history.height == decisions(out).filter(pl.col("person_key") == person).height >= 2
    assert "UNENROLLED" in set(history["outcome"]) and "PAID" not in set(history["outcome"])
    assert ns["ever_paid"] is False
    assert ns["history_pl"].height == history.height


def test_guide_reconciles_every_committed_run_with_its_payment_files(
    guide_run: tuple[Path, str, dict[str, Any]],
) -> None:
    out, _, ns = guide_run
    reconciliation = ns["reconciliation"]
    committed = runs(out).filter(pl.col("status") == "committed")
    assert reconciliation.height == committed.height == 7  # 3 runs, 2 approvals, 2 imports
    files = dict(
        zip(reconciliation["run_id"], reconciliation["files_krw"].cast(pl.Int64), strict=True)
    )
    assert files == dict(zip(committed["run_id"], committed["total_paid_krw"], strict=True))
    assert files[committed["run_id"][0]] == 31_400_000
    assert ns["checked_files"] == len(list(out.glob("payments/*/*/*.csv"))) + len(
        list(out.glob("payments/*/*/*.dat"))
    )
    assert ns["checked_files"] == 4


def test_guide_money_per_state_agrees_with_results_status(
    guide_run: tuple[Path, str, dict[str, Any]], bank_trail: BankTrail
) -> None:
    from flows.run.results import reconciliation

    out, _, ns = guide_run
    programs = bank_trail.story / "programs"
    status = reconciliation(out, "paju-livelihood-2025", programs_dir=programs)
    money = {r["state"]: r for r in ns["money"].iter_rows(named=True)}
    totals = status.by_program.row(0, named=True)
    for state, figure in (
        ("SETTLED", "settled"),
        ("REJECTED", "rejected"),
        ("RETURNED", "returned"),
    ):
        assert int(money.get(state, {"won": 0})["won"] or 0) == totals[f"{figure}_krw"]
        assert int(money.get(state, {"attempts": 0})["attempts"]) == totals[f"{figure}_attempts"]
    assert totals["rejected_attempts"] > 0 and totals["returned_attempts"] > 0
    assert ns["owed_again"].height == status.owed_again
    assert ns["paid_in_money"] == totals["settled_krw"]
