"""Conservation invariants over generated populations (hypothesis).

For any population the generator makes, with any small rate of injected faults:
- every input row gets exactly one decision record (decision records = input rows);
- the payment files' total equals the audit trail's PAID total, and each payment appears on exactly
  one registry and one enrollment row;
- nobody is paid twice, within a run or across a rerun.
"""

from __future__ import annotations

import json

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.generate import Faults, generate_population, write_population
from rules.program import load_program
from tests.support.flowrun import decisions, run_flow
from tests.support.frames import FAULTS, context, decide_written

PROGRAM = load_program("paju-livelihood-2025")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.integers(30, 600), seed=st.integers(0, 2**16), faults=FAULTS)
def test_decisions_conserve_rows_and_money(
    tmp_path_factory: pytest.TempPathFactory, rows: int, seed: int, faults: Faults
) -> None:
    data = tmp_path_factory.mktemp("pop")
    write_population(generate_population(rows, seed=seed, faults=faults), data)
    inputs, records, file_total = decide_written(data, context())
    assert records.height == inputs
    assert records["outcome"].null_count() == 0
    paid = records.filter(pl.col("outcome") == "PAID")
    assert file_total == paid.filter(pl.col("source_kind") == "registry")["amount_krw"].sum()
    assert paid.filter(pl.col("source_kind") == "registry")["person_key"].is_unique().all()
    per_payment = paid.group_by("payment_id").agg(pl.col("source_kind").sort())
    assert per_payment["source_kind"].to_list() == [["enrollment", "registry"]] * per_payment.height
    assert (records.filter(pl.col("outcome") != "PAID")["amount_krw"] == 0).all()


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_backend", "pii_key")
@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.integers(200, 800), seed=st.integers(0, 2**16))
def test_flow_never_pays_anyone_twice_across_reruns(
    tmp_path_factory: pytest.TempPathFactory, rows: int, seed: int
) -> None:
    data = tmp_path_factory.mktemp("pop")
    out = tmp_path_factory.mktemp("out")
    write_population(generate_population(rows, seed=seed), data)
    first = run_flow(data, out)
    second = run_flow(data, out, trigger="rerun", reason="property test", run_month="2025-04")
    records = decisions(out)
    paid = records.filter(pl.col("outcome") == "PAID", pl.col("source_kind") == "registry")
    assert paid["person_key"].is_unique().all()
    assert second.total_paid_krw == 0
    manifest = json.loads(next(out.glob(f"payments/*/{first.run_id}/manifest.json")).read_text())
    assert manifest["total_krw"] == first.total_paid_krw == paid["amount_krw"].sum()
    inputs = sum(len(pl.read_csv(p, infer_schema=False)) for p in data.rglob("*.csv"))
    assert records.filter(pl.col("run_id") == first.run_id).height == inputs
