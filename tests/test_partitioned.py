"""N buckets on disk (`--partitions N`) decide exactly what one bucket in memory decides.

Both stores run through the one `disburse` flow on the same files into separate output roots;
every decision record (but the run's id and time), every payment file row (but the batch id,
which is the run id) and every total must be equal.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from fixtures.generate import Faults
from fixtures.programs import generate_for_program, write_program_data
from flows.audit.payouts import CrossCheck
from flows.audit.verify import cross_check_trail, verify_trail
from flows.errors import InputRejected, RunHalted
from flows.inputs import ingest
from flows.run import steps
from flows.run.flow import DisburseParams, work_store
from flows.run.stores import DiskStore, MemoryStore
from rules.program import load_program
from tests.conftest import ROOT
from tests.support.banktrail import bank_story
from tests.support.flowrun import RUN_MONTH, decisions, run_flow, runs

FAULTY = Faults(
    duplicate_record=0.02, duplicate_application=0.03, malformed=0.005, outside_window=0.02
)
ORDER = ["source_kind", "source_file", "source_row"]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validate a few files at a time, as national deliveries are, so chunks meet in buckets."""
    monkeypatch.setattr(ingest, "CHUNK_BYTES", 100_000)


def generated(program_id: str, folder: Path, rows: int = 2500) -> Path:
    write_program_data(generate_for_program(rows, load_program(program_id), 5, FAULTY), folder)
    return folder


def records(out: Path, run_id: str) -> pl.DataFrame:
    return decisions(out, run_id).drop("run_id", "decided_at").sort(ORDER)


def payment_rows(out: Path, run_id: str) -> list[dict[str, str]]:
    rows = []
    for f in sorted((out / "payments").glob(f"*/{run_id}/*.csv")):
        with f.open(encoding="utf-8") as handle:
            rows += [{**r, "batch_id": "", "file": f.name} for r in csv.DictReader(handle)]
    return rows


def assert_same_run(one: Path, one_id: str, other: Path, other_id: str) -> None:
    left, right = records(one, one_id), records(other, other_id)
    assert_frame_equal(left, right.select(left.columns))
    assert payment_rows(one, one_id) == payment_rows(other, other_id)
    manifests = [
        json.loads(next(o.glob(f"payments/*/{i}/manifest.json")).read_text())
        for o, i in ((one, one_id), (other, other_id))
    ]
    assert manifests[0]["total_krw"] == manifests[1]["total_krw"]
    assert [(f["file"], f["records"], f["total_krw"]) for f in manifests[0]["files"]] == [
        (f["file"], f["records"], f["total_krw"]) for f in manifests[1]["files"]
    ]
    a, b = (
        runs(o).filter(pl.col("run_id") == i).row(0, named=True)
        for o, i in ((one, one_id), (other, other_id))
    )
    assert (a["counts"], a["total_paid_krw"]) == (b["counts"], b["total_paid_krw"])
    assert [(i["file"], i["sha256"], i["rows"]) for i in a["inputs"]] == [
        (i["file"], i["sha256"], i["rows"]) for i in b["inputs"]
    ]


@pytest.mark.parametrize("program_id", ["paju-livelihood-2025", "national-relief-2020"])
def test_n_buckets_on_disk_decide_every_row_as_one_bucket_in_memory_does(
    program_id: str, tmp_path: Path, pii_key: str
) -> None:
    data = generated(program_id, tmp_path / "data")
    month = RUN_MONTH[program_id]
    whole = run_flow(data, tmp_path / "whole", program=program_id, run_month=month)
    parts = run_flow(data, tmp_path / "parts", program=program_id, run_month=month, partitions=5)
    assert parts.status == whole.status == "committed"
    assert whole.counts["DUPLICATE_RECORD"] > 0 and whole.counts["DUPLICATE_APPLICATION"] > 0
    assert whole.counts["QUARANTINED"] > 0
    assert_same_run(tmp_path / "whole", whole.run_id, tmp_path / "parts", parts.run_id)
    assert verify_trail(tmp_path / "parts") == ([], 1)
    assert not list((tmp_path / "parts").glob(".staging/*")), "the work folder is removed"


@pytest.mark.slow
@pytest.mark.parametrize(
    "program_id", ["paju-energy-2023", "consumption-coupon-2025", "paju-birth-2025"]
)
def test_every_other_program_decides_the_same_in_buckets_on_disk(
    program_id: str, tmp_path: Path, pii_key: str
) -> None:
    data = generated(program_id, tmp_path / "data")
    welfare = data / "welfare" if (data / "welfare").exists() else None
    month = RUN_MONTH[program_id]
    whole = run_flow(data, tmp_path / "whole", program=program_id, run_month=month, welfare=welfare)
    parts = run_flow(
        data, tmp_path / "parts", program=program_id, run_month=month, welfare=welfare, partitions=3
    )
    assert_same_run(tmp_path / "whole", whole.run_id, tmp_path / "parts", parts.run_id)


def test_the_hand_made_story_decides_the_same_in_one_bucket_per_household(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    whole = run_flow(story, tmp_path / "whole")
    parts = run_flow(story, tmp_path / "parts", partitions=16)
    assert_same_run(tmp_path / "whole", whole.run_id, tmp_path / "parts", parts.run_id)


def test_a_rerun_in_buckets_on_disk_pays_nobody_twice_and_matches_the_rerun_in_memory(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    for out, partitions in ((tmp_path / "whole", None), (tmp_path / "parts", 4)):
        run_flow(story, out, partitions=partitions)
    extra = tmp_path / "more"
    shutil.copytree(story, extra)
    for f in (extra / "enrollments").iterdir():  # the same applications delivered again, renamed
        f.rename(f.with_name("again_" + f.name))
    second = {}
    for out, partitions in ((tmp_path / "whole", None), (tmp_path / "parts", 4)):
        second[out.name] = run_flow(
            extra, out, partitions=partitions, trigger="rerun", reason="again"
        )
    assert second["parts"].counts == second["whole"].counts
    assert second["parts"].counts["PAID"] == 0 and second["parts"].counts["ALREADY_PAID"] > 0
    assert_same_run(
        tmp_path / "whole", second["whole"].run_id, tmp_path / "parts", second["parts"].run_id
    )


def moved_copies(data: Path, name: str, rows: pl.DataFrame) -> None:
    """Write `rows` again as members of other households, in a file sorted `name`."""
    rows.with_columns(household_id=pl.lit("77") + pl.col("household_id")).write_csv(
        data / "registry" / name
    )


def test_one_person_in_two_households_is_decided_once_although_the_households_are_in_other_buckets(
    tmp_path: Path, pii_key: str
) -> None:
    """A person listed in two households (moved during the extract) ends in two buckets.

    The duplicate pass runs over every file before bucketing, so the first row in delivery
    order is kept wherever it lies, and the other household no longer counts that person.
    """
    data = generated("national-relief-2020", tmp_path / "data", rows=1500)
    first = sorted((data / "registry").glob("*.csv"))[0]
    rows = pl.read_csv(first, infer_schema=False).head(60)
    moved_copies(data, "0000_moved_first.csv", rows.head(30))  # kept: originals are duplicates
    moved_copies(data, "zzzz_moved_last.csv", rows.tail(30))  # originals kept
    buckets = 5
    split = rows.select(
        steps.stable_bucket("household_id", buckets).alias("old"),
        (pl.lit("77") + pl.col("household_id")).alias("new_id"),
    ).with_columns(new=steps.stable_bucket("new_id", buckets))
    assert (split["old"] != split["new"]).sum() > 20, "most copies land in another bucket"
    month = RUN_MONTH["national-relief-2020"]
    whole = run_flow(data, tmp_path / "whole", program="national-relief-2020", run_month=month)
    parts = run_flow(
        data,
        tmp_path / "parts",
        program="national-relief-2020",
        run_month=month,
        partitions=buckets,
    )
    assert whole.counts["DUPLICATE_RECORD"] >= 60
    assert_same_run(tmp_path / "whole", whole.run_id, tmp_path / "parts", parts.run_id)
    moved = records(tmp_path / "parts", parts.run_id).filter(
        pl.col("source_file") == "0000_moved_first.csv"
    )
    assert moved["outcome"].to_list().count("DUPLICATE_RECORD") == 0


def test_files_are_validated_in_chunks_of_about_the_chosen_size_in_name_order(
    tmp_path: Path,
) -> None:
    paths = []
    for i, size in enumerate([40, 70, 10, 100, 5]):
        paths.append(tmp_path / f"f{i}.csv")
        paths[-1].write_bytes(b"x" * size)
    # a chunk closes once it reaches the size
    assert ingest.chunks(paths, 100) == [
        (0, paths[0:2]),
        (2, paths[2:4]),
        (4, paths[4:5]),
    ]
    assert ingest.chunks(paths, 10_000) == [(0, paths)]


def test_buckets_are_chosen_from_the_registry_size_when_asked_for_auto(tmp_path: Path) -> None:
    small = tmp_path / "small.csv"
    small.write_bytes(b"x" * 1000)
    assert steps.choose_buckets("auto", [small]) == 1
    assert steps.choose_buckets(7, [small]) == 7
    big = tmp_path / "big.csv"
    with big.open("wb") as f:
        f.truncate(steps.CSV_BYTES_PER_ROW * steps.BUCKET_ROWS * 3 + 1)
    assert steps.choose_buckets("auto", [big]) == 4


@pytest.mark.parametrize("partitions", [None, 3])
def test_too_many_bad_rows_halt_a_run_on_disk_as_they_halt_one_in_memory(
    partitions: int | None, tmp_path: Path, pii_key: str
) -> None:
    program = load_program("paju-livelihood-2025")
    bad = Faults(malformed=0.05)
    write_program_data(generate_for_program(800, program, 5, bad), tmp_path / "data")
    with pytest.raises(RunHalted, match=r"registry rows \(.*\) failed row checks, above"):
        run_flow(tmp_path / "data", tmp_path / "out", partitions=partitions)
    assert runs(tmp_path / "out")["status"].to_list() == ["halted"]
    assert list((tmp_path / "out").glob("quarantine/*/*/quarantine.csv"))
    assert not (tmp_path / "out" / "payments").exists()


def test_a_file_of_another_snapshot_stops_a_partitioned_run_naming_the_file(
    tmp_path: Path, pii_key: str
) -> None:
    data = generated("paju-livelihood-2025", tmp_path / "data", rows=300)
    first = sorted((data / "registry").glob("*.csv"))[0]
    rows = pl.read_csv(first, infer_schema=False).with_columns(as_of=pl.lit("2025-01-01"))
    rows.write_csv(data / "registry" / "zz.csv")
    with pytest.raises(InputRejected, match=r"zz\.csv: as_of "):
        run_flow(data, tmp_path / "out", partitions=2)
    assert runs(tmp_path / "out")["status"].to_list() == ["rejected"]


def test_the_work_folder_that_holds_plain_input_rows_is_owner_only(tmp_path: Path) -> None:
    work = tmp_path / "staging" / "work"
    DiskStore(work).put("progress", 0, pl.DataFrame(schema={"person_key": pl.String}))
    assert work.stat().st_mode & 0o777 == 0o700


def test_applications_follow_the_kept_row_then_a_quarantined_row_then_a_hash_of_the_rrn() -> None:
    kept = pl.DataFrame(
        {"_rrn": [30, 10, 20], "_bucket": [3, 1, 2]}, schema={"_rrn": pl.Int64, "_bucket": pl.Int32}
    ).sort("_rrn")
    held = pl.DataFrame(
        {"_rrn": [40], "_held_bucket": [4]}, schema_overrides={"_held_bucket": pl.Int32}
    )
    apps = pl.DataFrame(
        {
            "rrn": ["a", "b", "c", "d", "e"],
            "_rrn": [20, 40, 50, None, 5],
            "_bucket": [None] * 5,
            "_file": [0] * 5,
            "_pos": [0] * 5,
        },
        schema_overrides={"_rrn": pl.Int64, "_bucket": pl.Int32},
    )
    routed = steps.route(apps, kept, held, buckets=7)
    hashed = apps.select(steps.stable_bucket("rrn", 7))["rrn"].to_list()
    assert routed["_bucket"].to_list() == [2, 4, hashed[2], hashed[3], hashed[4]]
    assert routed.columns == ["rrn", "_bucket"]


@pytest.mark.parametrize("disk", [False, True])
def test_pieces_added_to_buckets_come_back_per_bucket_in_piece_then_row_order(
    disk: bool, tmp_path: Path
) -> None:
    store = DiskStore(tmp_path / "work") if disk else MemoryStore()
    pieces = {
        0: pl.DataFrame({"row": [1, 2, 3, 4], "_bucket": [1, 0, 1, 1]}),
        2: pl.DataFrame({"row": [5, 6], "_bucket": [0, 1]}),
        10: pl.DataFrame({"row": [7], "_bucket": [1]}),
    }
    for index, rows in pieces.items():
        store.add_to_buckets("apps", index, rows.cast({"_bucket": pl.Int32}))
    got = {b: store.bucket("apps", b) for b in (0, 1, 2)}
    assert got[0] is not None and got[0]["row"].to_list() == [2, 5]
    assert got[1] is not None and got[1]["row"].to_list() == [1, 3, 4, 6, 7]
    assert got[2] is None
    assert got[1].columns == ["row"]


@pytest.mark.parametrize("bank_file", ["fixed_width", "pain.001"])
def test_bank_payouts_and_holder_name_warnings_are_the_same_in_a_partitioned_run(
    bank_file: str, tmp_path: Path, pii_key: str
) -> None:
    data = bank_story(tmp_path / "data")
    runs_by = {}
    for name, partitions in (("whole", None), ("parts", 3)):
        runs_by[name] = run_flow(
            data,
            tmp_path / name,
            programs_dir=data / "programs",
            partitions=partitions,
            bank_file=bank_file,
        )
    whole, parts = runs_by["whole"], runs_by["parts"]
    assert_same_run(tmp_path / "whole", whole.run_id, tmp_path / "parts", parts.run_id)
    warned = records(tmp_path / "parts", parts.run_id).filter(
        pl.col("warning_codes").list.contains("HOLDER_NAME_NOT_CP949")
    )
    assert warned.height == (2 if bank_file == "fixed_width" else 0)
    bank = [f for f in (tmp_path / "parts").glob("payments/*/*/bank_*")]
    assert bank and verify_trail(tmp_path / "parts") == ([], 1)
    # Each bucket's decision records key its payees as the payment files name them.
    assert cross_check_trail(tmp_path / "parts", pii_key) == CrossCheck()


def test_payment_files_split_across_payment_id_ranges_are_the_same_in_both_stores(
    tmp_path: Path, pii_key: str
) -> None:
    """Files of 37 payments: most files hold payments of two neighbouring id ranges."""
    programs = tmp_path / "programs"
    source = ROOT / "rules/programs/paju-livelihood-2025/program.yaml"
    target = programs / "paju-livelihood-2025/program.yaml"
    target.parent.mkdir(parents=True)
    target.write_text(
        source.read_text().replace("max_records_per_file: 100000", "max_records_per_file: 37")
    )
    data = generated("paju-livelihood-2025", tmp_path / "data", rows=1200)
    whole = run_flow(data, tmp_path / "whole", programs_dir=programs)
    parts = run_flow(data, tmp_path / "parts", programs_dir=programs, partitions=3)
    assert_same_run(tmp_path / "whole", whole.run_id, tmp_path / "parts", parts.run_id)
    files = list((tmp_path / "parts").glob("payments/*/*/local_currency_*.csv"))
    assert len(files) == -(-whole.payments // 37) > 16
    assert cross_check_trail(tmp_path / "parts", pii_key) == CrossCheck()


@pytest.mark.parametrize(
    ("owner", "step"),
    [("flows.run.flow", "shuffle_buckets"), ("flows.run.steps", "write_decisions")],
)
def test_a_partitioned_run_that_dies_midway_leaves_nothing_and_the_rerun_pays_each_person_once(
    owner: str,
    step: str,
    story: Path,
    tmp_path: Path,
    pii_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    module = importlib.import_module(owner)
    original = getattr(module, step)

    def dying(*args: object, **kwargs: object) -> object:
        original(*args, **kwargs)
        raise RuntimeError(f"killed after {step}")

    with monkeypatch.context() as armed:
        armed.setattr(module, step, dying)
        with pytest.raises(RuntimeError, match="killed after"):
            run_flow(story, out, partitions=3)
    assert list(out.glob(".staging/*/work")), "the dead run left its work folder behind"
    assert not (out / "payments").exists()
    rerun = run_flow(story, out, partitions=3, trigger="rerun", reason="after a crash")
    assert not list(out.glob(".staging/*")), "recovery removed the dead run's staging and work"
    whole = run_flow(story, tmp_path / "whole")
    assert rerun.counts == whole.counts and rerun.total_paid_krw == whole.total_paid_krw
    paid = decisions(out).filter(pl.col("outcome") == "PAID", pl.col("source_kind") == "registry")
    assert paid["person_key"].is_unique().all()
    assert verify_trail(out) == ([], 1)


@pytest.mark.parametrize("partitions", [None, 2])
def test_one_bucket_in_memory_writes_no_input_row_to_disk_and_buckets_on_disk_do(
    partitions: int | None,
    story: Path,
    tmp_path: Path,
    pii_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    written: list[object] = []
    write_parquet, sink_parquet = pl.DataFrame.write_parquet, pl.LazyFrame.sink_parquet

    def write_spy(self: pl.DataFrame, file: object, *args: object, **kwargs: object) -> None:
        if not isinstance(file, io.BytesIO):  # the run's outputs are rendered to bytes
            written.append(file)
        write_parquet(self, file, *args, **kwargs)  # type: ignore[arg-type]

    def sink_spy(self: pl.LazyFrame, path: object, *args: object, **kwargs: object) -> object:
        if not isinstance(path, io.BytesIO):
            written.append(path)
        return sink_parquet(self, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl.DataFrame, "write_parquet", write_spy)
    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", sink_spy)
    summary = run_flow(story, tmp_path / "out", partitions=partitions)
    assert summary.status == "committed"
    assert bool(written) == (partitions is not None)


def params(tmp_path: Path, **overrides: object) -> DisburseParams:
    base = {"program": "paju-livelihood-2025", "registry": tmp_path, "enrollments": tmp_path}
    return DisburseParams.model_validate(base | {"out": tmp_path / "out"} | overrides)


def test_a_city_is_decided_in_memory_and_a_larger_registry_or_a_request_for_buckets_on_disk(
    tmp_path: Path,
) -> None:
    city = tmp_path / "city.csv"
    city.write_bytes(b"x" * 1000)
    country = tmp_path / "country.csv"
    with country.open("wb") as f:
        f.truncate(steps.CSV_BYTES_PER_ROW * steps.BUCKET_ROWS * 2 + 1)
    work = tmp_path / "work"

    def chosen(files: list[Path], **asked: object) -> tuple[str, int]:
        store, buckets = work_store(params(tmp_path, **asked), files, work)
        return type(store).__name__, buckets

    assert chosen([city]) == ("MemoryStore", 1)
    assert chosen([country]) == ("DiskStore", 3)
    assert chosen([country], store="memory") == ("MemoryStore", 1)
    assert chosen([city], store="disk") == ("DiskStore", 1)
    assert chosen([city], partitions=4) == ("DiskStore", 4)
    assert chosen([city], runner="dask") == ("DiskStore", 1)


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        ({"store": "memory", "runner": "dask"}, "--store memory runs in this process"),
        ({"store": "memory", "partitions": 3}, "--store memory decides in one bucket"),
        ({"dask_address": "tcp://host:8786"}, "--dask-address needs --runner dask"),
    ],
)
def test_contradictory_store_options_are_bad_usage(
    asked: dict[str, object], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match=message):
        params(tmp_path, **asked)
