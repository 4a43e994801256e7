"""All five programs run end to end through the real flow on generated data, and budgets hold.

Each program gets a small synthetic population fitted to its dates, unit and reach
(fixtures/programs.py). The amounts paid are checked against the raw input rows, recomputed here
independently of the engine: household sizes, birth orders, welfare statuses and regions.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from fixtures.programs import generate_for_program, write_program_data
from flows.audit.verify import verify_trail
from flows.cli import app
from flows.errors import RunHalted, UsageError
from rules.program import PROGRAMS_DIR, list_codes, load_program
from tests.support.flowrun import RUN_MONTH, decisions, run_flow, runs

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend")]
FIVE = [
    "paju-livelihood-2025",
    "paju-energy-2023",
    "national-relief-2020",
    "consumption-coupon-2025",
    "paju-birth-2025",
]
PAID = pl.col("outcome") == "PAID"


def generated(program_id: str, folder: Path, rows: int = 900, seed: int = 11) -> Path:
    data = generate_for_program(rows, load_program(program_id), seed=seed)
    write_program_data(data, folder)
    return folder


def raw_registry(data: Path) -> pl.DataFrame:
    """Every registry input row with its file name and 1-based row number."""
    frames = [
        pl.read_csv(f, infer_schema=False).with_columns(
            source_file=pl.lit(f.name), source_row=pl.int_range(1, pl.len() + 1, dtype=pl.Int64)
        )
        for f in sorted((data / "registry").glob("*.csv"))
    ]
    return pl.concat(frames).with_columns(rrn=pl.col("rrn").str.replace_all("-", ""))


def paid_registry_rows(out: Path, data: Path) -> pl.DataFrame:
    """The registry rows this run paid, joined back to their raw input row."""
    paid = decisions(out).filter(PAID, pl.col("source_kind") == "registry")
    raw = raw_registry(data).drop("admin_code")
    return paid.join(raw, on=["source_file", "source_row"], how="left")


def check_livelihood(out: Path, data: Path) -> None:
    paid = paid_registry_rows(out, data)
    assert set(paid["amount_krw"]) == {100_000}
    assert set(paid["status"]) == {"거주"}


def check_energy(out: Path, data: Path) -> None:
    paid = paid_registry_rows(out, data)
    records = decisions(out).filter(pl.col("source_kind") == "registry")
    assert set(paid["amount_krw"]) == {200_000}
    assert set(paid["relation"]) == {"본인"}
    assert paid["household_key"].n_unique() == paid.height
    covered = records.filter(pl.col("reason_codes").list.contains("COVERED_BY_HOUSEHOLD"))
    assert covered.height > 0
    assert covered["amount_krw"].sum() == 0


def check_national(out: Path, data: Path) -> None:
    records = decisions(out).filter(pl.col("source_kind") == "registry")
    paid = paid_registry_rows(out, data)
    covered = (
        records.filter(pl.col("reason_codes").list.contains("COVERED_BY_HOUSEHOLD"))
        .group_by("household_key")
        .len()
    )
    # Independently: eligible members = kept rows living there (거주) of an eligible population.
    raw = raw_registry(data)
    eligible = (
        raw.filter(
            pl.col("status") == "거주",
            (pl.col("nationality") == "내국인")
            | pl.col("visa_type").is_in(["F-2-1", "F-6", "F-5"]),
        )
        .unique("rrn")
        .group_by("household_id")
        .len("members")
    )
    check = (
        paid.join(covered, on="household_key", how="left")
        .join(eligible, on="household_id", how="left")
        .with_columns(size=1 + pl.col("len").fill_null(0))
    )
    tier = {1: 400_000, 2: 600_000, 3: 800_000}
    expected = [tier.get(n, 1_000_000) for n in check["size"]]
    assert check["amount_krw"].to_list() == expected
    assert check["size"].to_list() == check["members"].to_list()
    assert set(check["size"]) >= {1, 2, 3, 4}
    assert len({a[:2] for a in paid["admin_code"]}) >= 3  # Paju and other regions


def check_coupon(out: Path, data: Path) -> None:
    paid = paid_registry_rows(out, data)
    welfare = pl.read_csv(data / "welfare/welfare.csv", infer_schema=False)
    korean = {
        "기초생활수급자": "basic_livelihood",
        "차상위계층": "near_poor",
        "한부모가족": "single_parent",
    }
    base = {"general": 150_000, "near_poor": 300_000, "single_parent": 300_000}
    base["basic_livelihood"] = 400_000
    decline = sorted(list_codes("population-decline-counties"))
    check = (
        paid.join(welfare.select("rrn", "welfare_status"), on="rrn", how="left")
        .with_columns(
            status=pl.col("welfare_status").replace(korean).fill_null("general"),
            sido=pl.col("admin_code").str.slice(0, 2),
            county=pl.col("admin_code").str.slice(0, 5),
        )
        .with_columns(
            expected=pl.col("status").replace_strict(base, return_dtype=pl.Int64)
            + pl.when(pl.col("county").is_in(decline))
            .then(50_000)
            .when(~pl.col("sido").is_in(["11", "28", "41"]))
            .then(30_000)
            .otherwise(0)
        )
    )
    assert check["amount_krw"].to_list() == check["expected"].to_list()
    assert check["status"].n_unique() == 4
    assert {150_000, 180_000, 200_000} <= set(check["amount_krw"])


def check_birth(out: Path, data: Path) -> None:
    paid = paid_registry_rows(out, data)
    raw = raw_registry(data)
    children = (
        raw.filter(pl.col("relation") == "자녀")
        .unique("rrn", keep="first")
        .sort("birth_date", "rrn")
        .with_columns(order=pl.int_range(1, pl.len() + 1).over("household_id"))
        .select("rrn", "order")
    )
    check = paid.join(children, on="rrn", how="left")
    assert paid.height > 0
    assert (check["birth_date"] >= "2024-01-01").all()
    tier = {1: 100_000, 2: 300_000}
    assert check["amount_krw"].to_list() == [tier.get(n, 1_000_000) for n in check["order"]]


CHECKS = {
    "paju-livelihood-2025": check_livelihood,
    "paju-energy-2023": check_energy,
    "national-relief-2020": check_national,
    "consumption-coupon-2025": check_coupon,
    "paju-birth-2025": check_birth,
}


@pytest.mark.parametrize("program_id", FIVE)
def test_all_five_programs_run_end_to_end_on_generated_data(
    program_id: str, tmp_path: Path, pii_key: str
) -> None:
    data = generated(program_id, tmp_path / "data")
    out = tmp_path / "out"
    welfare = data / "welfare" if (data / "welfare").exists() else None
    summary = run_flow(
        data, out, program=program_id, run_month=RUN_MONTH[program_id], welfare=welfare
    )
    assert summary.status == "committed"
    records = decisions(out)
    record = runs(out).row(0, named=True)
    counted = [i for i in record["inputs"] if i["kind"] in ("registry", "enrollment")]
    assert records.height == sum(i["rows"] for i in counted)
    assert records["rule_id"].null_count() == 0
    paid = records.filter(PAID)
    registry_paid = paid.filter(pl.col("source_kind") == "registry")
    assert registry_paid.height == paid.height // 2 > 0
    assert summary.total_paid_krw == registry_paid["amount_krw"].sum()
    manifest = json.loads(next(out.glob("payments/*/*/manifest.json")).read_text())
    assert manifest["total_krw"] == summary.total_paid_krw
    program = load_program(program_id)
    assert record["rule_set_sha256"] == program.sha256
    assert json.loads(record["parameters"])["program"] == program.parameters()
    welfare_inputs = [i["file"] for i in record["inputs"] if i["kind"] == "welfare"]
    assert welfare_inputs == (["welfare.csv"] if welfare else [])
    CHECKS[program_id](out, data)
    assert verify_trail(out) == ([], 1)


def test_a_program_that_needs_a_welfare_extract_refuses_to_run_without_one(
    tmp_path: Path, pii_key: str
) -> None:
    data = generated("consumption-coupon-2025", tmp_path / "data", rows=50)
    with pytest.raises(UsageError, match="needs the welfare-status extract: pass --welfare DIR"):
        run_flow(data, tmp_path / "out", program="consumption-coupon-2025", run_month="2025-09")
    assert not (tmp_path / "out/payments").exists()


def with_budget(tmp_path: Path, budget: int) -> Path:
    programs = tmp_path / "programs"
    shutil.copytree(PROGRAMS_DIR / "paju-livelihood-2025", programs / "paju-livelihood-2025")
    path = programs / "paju-livelihood-2025/program.yaml"
    text = path.read_text().replace("budget_krw: 52000000000", f"budget_krw: {budget}")
    path.write_text(text)
    return programs


def test_a_run_that_spends_exactly_the_budget_is_paid(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    summary = run_flow(story, tmp_path / "out", programs_dir=with_budget(tmp_path, 31_400_000))
    assert summary.status == "committed" and summary.total_paid_krw == 31_400_000


def test_a_later_run_may_spend_only_what_committed_runs_left_of_the_budget(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    programs = with_budget(tmp_path, 31_300_000)
    late = tmp_path / "late.csv"
    shutil.move(story / "enrollments/enrollments_office.csv", late)
    first = run_flow(story, out, programs_dir=programs)
    assert first.total_paid_krw == 30_900_000
    shutil.move(late, story / "enrollments/enrollments_office.csv")
    with pytest.raises(RunHalted, match="after 30,900,000 won already paid"):
        run_flow(story, out, programs_dir=programs, run_month="2025-04")
    assert runs(out)["status"].to_list() == ["committed", "halted"]
    assert decisions(out)["run_id"].unique().to_list() == [first.run_id]


def test_a_run_one_won_over_the_budget_exits_4_and_pays_nothing(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--program",
            "paju-livelihood-2025",
            "--registry",
            str(story / "registry"),
            "--enrollments",
            str(story / "enrollments"),
            "--out",
            str(out),
            "--run-month",
            "2025-03",
            "--programs-dir",
            str(with_budget(tmp_path, 31_399_999)),
        ],
    )
    assert result.exit_code == 4
    assert "exceeds the budget of 31,399,999 won; nothing was paid" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert runs(out)["status"].to_list() == ["halted"]
    assert not (out / "payments").exists() and not (out / "audit/decisions").exists()


def test_a_program_kept_only_in_a_test_folder_runs_through_the_real_flow(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    programs = Path(__file__).parent / "programs"
    data = generated("paju-livelihood-2025", tmp_path / "data", rows=300)
    # The seniors program's window is in 2026: move the story applications there.
    enrollments = data / "enrollments"
    for f in enrollments.glob("*.csv"):
        frame = pl.read_csv(f, infer_schema=False)
        frame.with_columns(pl.col("applied_at").str.replace(r"^2025-0[1-3]", "2026-01")).write_csv(
            f
        )
    registry = data / "registry"
    for f in registry.glob("*.csv"):
        frame = pl.read_csv(f, infer_schema=False)
        frame.with_columns(as_of=pl.lit("2026-01-01")).write_csv(f)
    out = tmp_path / "out"
    summary = run_flow(
        data, out, program="paju-seniors-2026", programs_dir=programs, run_month="2026-02"
    )
    paid = paid_registry_rows(out, data)
    assert summary.status == "committed" and paid.height > 0
    assert set(paid["amount_krw"]) == {50_000}
    assert (paid["birth_date"] <= "1961-01-01").all()
    not_old = decisions(out).filter(
        pl.col("rule_id") == "eligibility.condition.aged-65-or-more",
        pl.col("source_kind") == "registry",
    )
    assert not_old.height > 0
