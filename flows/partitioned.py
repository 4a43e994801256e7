"""Decide deliveries too large for memory: per-file validation, a global duplicate pass, buckets.

The single-frame path (`flows.decide.decide` over whole deliveries) needs about 3.5 KB of memory
per input row; the national registry would need far more than a machine has. This module runs the
same decisions in pieces whose size the operator chooses (`--partitions`), with the same result:

1. **spill** (one task per chunk of files, about 256 MB of input): read, check and validate the
   files exactly as the single-frame path does, and write their rows (with reasons and warnings)
   and quarantine rows to Parquet in the run's work folder. Memory: one chunk.
2. **shuffle** (one task): decide duplicates on narrow keys over *all* files (the RRN as a
   64-bit integer and the row's place in delivery order), then stream the registry rows into
   buckets by a hash of their household, so each household is whole in one bucket, and stream
   each application into the bucket of its beneficiary's kept registry row (a quarantined row's
   when there is none, a hash of the RRN when the beneficiary is not in the registry). Polars
   streams these; memory is the narrow keys.
3. **decide** (one task per bucket, any task runner, Dask included): the single-frame functions
   over one bucket, writing decision records and payees as Parquet. Memory: one bucket.
4. **merge** (one task): payment files from the payees, ordered by payment id as always; the
   decision records joined to their payment file and streamed into the run's decisions Parquet.

Why buckets give the same decisions as one frame: every computation over a group is over a
household (heads, sizes, birth order, household unit) or over a beneficiary's applications, and
both are whole inside one bucket; duplicates are decided before bucketing over all rows; an
applicant looked up in another household is "not the same household" whether found or not.
`tests/test_partitioned.py` compares both paths row by row. See docs/scaling.md.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
import polars_hash  # noqa: F401  (registers the .nchash namespace)

from flows import audit, payouts, validate
from flows.decide import RunContext, decide, keyed
from flows.dedup import duplicates, mark_duplicates, order_keys
from flows.errors import InputRejected
from flows.ingest import Delivery, InputFile, read_file
from flows.payments import PaymentFile, StagedFile
from flows.payouts import BankFormat
from flows.tally import Tally, tally
from rules.program import Program
from schemas.audit import DECISION_COLUMNS

Kind = Literal["registry", "enrollment"]
BUCKET_ROWS = 1_000_000  # registry rows per bucket when the run chooses (--partitions auto)
CSV_BYTES_PER_ROW = 170  # a generated registry CSV row (93 MB for 541,080 rows), to estimate rows
CHUNK_BYTES = 256 * 2**20  # input validated at a time (about 1,000,000 rows; ~1.5 GB of memory)
WORK_COLUMNS = ("_file", "_pos", "_rrn", "_bucket")


@dataclass(frozen=True)
class Spilled:
    """What spilling one input file found: the file as the run record lists it, and counts."""

    info: InputFile
    rows: int
    quarantined: int
    as_of: dt.date | None  # registry files: the file's single snapshot date


@dataclass(frozen=True)
class BucketJob:
    """One bucket to decide: where its rows are and what the run decides with."""

    work: Path
    bucket: int
    ctx: RunContext
    has_welfare: bool


def choose_buckets(partitions: int | Literal["auto"], registry_files: list[Path]) -> int:
    """Return the number of buckets: as asked, or about one per million registry rows."""
    if partitions != "auto":
        return max(1, int(partitions))
    size = sum(p.stat().st_size for p in registry_files)
    return max(1, math.ceil(size / CSV_BYTES_PER_ROW / BUCKET_ROWS))


def stable_bucket(column: str, buckets: int) -> pl.Expr:
    """Return a bucket 0..buckets-1 from a hash stable across processes, machines and versions."""
    hashed: pl.Expr = pl.col(column).nchash.xxhash64()  # type: ignore[attr-defined]
    return (hashed.fill_null(0) % buckets).cast(pl.Int32)


def work_file(work: Path, part: str, index: int) -> Path:
    """Return the path of one piece of the work folder."""
    return work / part / f"{index:05d}.parquet"


def chunks(paths: list[Path], chunk_bytes: int | None = None) -> list[tuple[int, list[Path]]]:
    """Group a delivery's files, in name order, into runs of about `chunk_bytes` of input.

    Returns (index of the chunk's first file in the delivery, files). Validating a few large
    chunks instead of hundreds of small files saves the fixed cost of each (a task, a schema).
    """
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    grouped: list[tuple[int, list[Path]]] = []
    size = chunk_bytes
    for i, path in enumerate(paths):
        if size >= chunk_bytes:
            grouped.append((i, []))
            size = 0
        grouped[-1][1].append(path)
        size += path.stat().st_size
    return grouped


def spill_chunk(
    paths: list[Path],
    first: int,
    kind: Kind,
    program: Program,
    work: Path,
    buckets: int,
    consumed: dict[str, str],
) -> list[Spilled]:
    """Read and validate some files of a delivery; write their checked and quarantine rows.

    `first` is the index of `paths[0]` in the delivery's name order. Rows are checked exactly as
    the single-frame path checks them (every check is about one row, or one file's `as_of`).
    Enrollment files an earlier committed run consumed are listed, not validated. Raises
    InputRejected for a file exactly as the single-frame path does.
    """
    frames, infos, index = [], [], {}
    for offset, path in enumerate(paths):
        frame, info = read_file(path, kind)
        skipped_by = consumed.get(info.sha256) if kind == "enrollment" else None
        if skipped_by:
            infos.append(InputFile(**{**info.__dict__, "skipped_by_run": skipped_by}))
            continue
        frames.append(frame)
        infos.append(info)
        index[info.file] = first + offset
    if not frames:
        return [Spilled(info, 0, 0, None) for info in infos]
    read = [i for i in infos if not i.skipped_by_run]
    delivery = Delivery(kind, pl.concat(frames), read, any(i.fullwidth for i in read))
    del frames
    checked, quarantine = validate.validate_delivery(delivery, program)
    as_of = checked["p_as_of"][0] if kind == "registry" else None
    del delivery
    file_index = pl.col("source_file").replace_strict(index, return_dtype=pl.Int64)
    bucket = stable_bucket("household_id", buckets) if kind == "registry" else pl.lit(None)
    checked = checked.with_columns(**order_keys(file_index), _bucket=bucket.cast(pl.Int32))
    bad = dict(checked.group_by("source_file").agg(pl.col("quarantined").sum()).iter_rows())
    for part, rows in ((kind, checked), (f"quarantine-{kind}", quarantine)):
        target = work_file(work, part, first)
        target.parent.mkdir(parents=True, exist_ok=True)
        rows.write_parquet(target, compression="lz4")
    return [
        Spilled(i, 0, 0, None)
        if i.skipped_by_run
        else Spilled(i, i.rows, int(bad.get(i.file, 0)), as_of)
        for i in infos
    ]


def check_snapshot(spilled: list[Spilled]) -> None:
    """Reject a registry delivery whose files hold different snapshot dates."""
    dated = [s for s in spilled if s.as_of is not None]
    dates = sorted({s.as_of for s in dated if s.as_of is not None})
    if len(dates) > 1:
        raise InputRejected(
            dated[-1].info.file,
            f"as_of differs between files of one delivery ({', '.join(map(str, dates))})",
            "Deliver files of a single snapshot together.",
        )


def check_rate(kind: Kind, spilled: list[Spilled], threshold: float) -> None:
    """Halt when the delivery's share of quarantined rows is above the program's threshold."""
    rows = sum(s.rows for s in spilled)
    bad = sum(s.quarantined for s in spilled)
    validate.check_rate(kind, bad, rows, threshold)


def _scan(work: Path, part: str) -> pl.LazyFrame:
    return pl.scan_parquet(work / part / "*.parquet")


def check_valid_rrns(work: Path) -> None:
    """Fail loudly if a valid registry row's RRN is not 13 digits (the duplicate pass needs it)."""
    bad = (
        _scan(work, "registry")
        .filter(~pl.col("quarantined") & pl.col("_rrn").is_null())
        .select(pl.len())
        .collect()
        .item()
    )
    if bad:
        raise RuntimeError(f"{bad} valid registry rows have no 13-digit RRN: refusing to bucket")


def shuffle(work: Path, file_names: list[str], buckets: int) -> None:
    """Stream registry rows (with duplicate marks) and applications into their buckets."""
    check_valid_rrns(work)
    valid = ~pl.col("quarantined")
    dups = duplicates(_scan(work, "registry"), file_names)
    registry = mark_duplicates(_scan(work, "registry"), dups, keep_order=False)
    registry.drop("_file", "_rrn").sink_parquet(
        pl.PartitionBy(work / "registry-buckets", key="_bucket", include_key=False), mkdir=True
    )
    # Sorted integer keys and a binary search, not a hash join: a hash table over 52 million
    # keys, probed by tens of millions of wide application rows, took more than 8 GB.
    kept = (
        registry.filter(valid & ~pl.col("is_duplicate"))
        .select("_rrn", "_bucket")
        .collect()
        .sort("_rrn")
    )
    held = (
        _scan(work, "registry")
        .filter(pl.col("quarantined") & pl.col("_rrn").is_not_null())
        .group_by("_rrn")
        .agg(_held_bucket=pl.col("_bucket").min())
        .collect()
    )
    routed = work / "enrollment-routed"
    routed.mkdir(exist_ok=True)
    for part in sorted((work / "enrollment").glob("*.parquet")):
        rows = pl.read_parquet(part)
        route(rows, kept, held, buckets).write_parquet(routed / part.name, compression="lz4")
        del rows
    if any(routed.iterdir()):
        _scan(work, "enrollment-routed").sink_parquet(
            pl.PartitionBy(work / "enrollment-buckets", key="_bucket", include_key=False),
            mkdir=True,
        )


def route(
    applications: pl.DataFrame, kept: pl.DataFrame, held: pl.DataFrame, buckets: int
) -> pl.DataFrame:
    """Give each application the bucket of its beneficiary's kept registry row.

    `kept` (_rrn, _bucket) sorted by `_rrn`, one row per RRN; `held` (_rrn, _held_bucket): RRNs
    on quarantined rows only. A beneficiary with neither goes to a hash of the RRN.
    """
    keys = kept["_rrn"]
    probe = applications["_rrn"]
    found = pl.Series("_kept_bucket", [None] * len(probe), dtype=pl.Int32)
    if len(keys):
        at = keys.search_sorted(probe.fill_null(-1)).clip(0, len(keys) - 1)
        hit = (keys.gather(at) == probe).fill_null(False)
        found = pl.select(
            pl.when(hit).then(kept["_bucket"].gather(at)).cast(pl.Int32).alias("_kept_bucket")
        ).to_series()
    return (
        applications.drop("_bucket")
        .with_columns(found)
        .join(held, on="_rrn", how="left", maintain_order="left")
        .with_columns(
            _bucket=pl.coalesce("_kept_bucket", "_held_bucket", stable_bucket("rrn", buckets)).cast(
                pl.Int32
            )
        )
        .drop("_file", "_pos", "_rrn", "_held_bucket", "_kept_bucket")
    )


def _bucket_frame(work: Path, part: str, bucket: int, schema: pl.Schema) -> pl.DataFrame:
    folder = work / part / f"_bucket={bucket}"
    if not folder.is_dir():
        return pl.DataFrame(schema=schema)
    return pl.read_parquet(folder / "*.parquet")


def _schema(work: Path, part: str, drop: tuple[str, ...]) -> pl.Schema:
    return pl.Schema({c: t for c, t in _scan(work, part).collect_schema().items() if c not in drop})


def _stored_schema(work: Path, name: str) -> pl.Schema:
    return pl.Schema(pl.read_parquet_schema(work / f"{name}-schema.parquet"))


def write_run_inputs(work: Path, progress: pl.DataFrame, welfare: pl.DataFrame | None) -> None:
    """Create the owner-only work folder; write the ledger's progress and welfare rows into it.

    The work folder holds input rows (plain RRNs, names, accounts) until the run ends.
    """
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o700)
    progress.write_parquet(work / "progress.parquet")
    if welfare is not None:
        welfare.write_parquet(work / "welfare.parquet")


def write_schemas(work: Path, empty_enrollment: pl.DataFrame) -> None:
    """Write the columns of a bucket's registry and enrollment rows, for buckets with none.

    `empty_enrollment`: validated enrollment rows' columns, for a run whose every enrollment
    file was consumed before (no enrollment rows were spilled).
    """
    registry = _schema(work, "registry", ("_file", "_rrn", "_bucket"))
    registry = pl.Schema(
        [*registry.items(), ("is_duplicate", pl.Boolean()), ("duplicate_of", pl.String())]
    )
    enrollment = pl.Schema(
        {c: t for c, t in empty_enrollment.schema.items() if c not in WORK_COLUMNS}
    )
    for name, schema in (("registry", registry), ("enrollment", enrollment)):
        pl.DataFrame(schema=schema).write_parquet(work / f"{name}-schema.parquet")


def decide_bucket(job: BucketJob) -> Tally:
    """Decide one bucket with the single-frame functions; write its records and payees."""
    work, b, ctx = job.work, job.bucket, job.ctx
    registry = _bucket_frame(work, "registry-buckets", b, _stored_schema(work, "registry"))
    enrollment = _bucket_frame(work, "enrollment-buckets", b, _stored_schema(work, "enrollment"))
    # Only the ledger and welfare rows of the bucket's people: a national ledger is large.
    rrns = pl.concat([registry.select("rrn"), enrollment.select("rrn")]).drop_nulls().unique()
    keys = rrns.select(person_key=keyed("rrn", ctx.pii_key))
    progress = (
        pl.scan_parquet(work / "progress.parquet")
        .join(keys.lazy(), on="person_key", how="semi")
        .collect()
    )
    welfare = None
    if job.has_welfare:
        welfare = (
            pl.scan_parquet(work / "welfare.parquet")
            .join(rrns.lazy(), on="rrn", how="semi")
            .collect()
        )
    decisions = decide(
        registry.drop("_pos"), enrollment, progress, ctx, welfare, duplicates_marked=True
    )
    unassigned = pl.DataFrame(schema={"payment_id": pl.String, "payment_file": pl.String})
    records = audit.decision_records(decisions, ctx, unassigned)
    payees = decisions.payees.with_columns(_bucket=pl.lit(b, pl.Int32))
    for part, frame in (("records", records), ("payees", payees)):
        target = work_file(work, part, b)
        target.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(target, compression="lz4")
    return tally(records)


def scan_payees(work: Path) -> pl.LazyFrame:
    """Return every bucket's payees."""
    return _scan(work, "payees")


def quarantine(work: Path) -> pl.DataFrame:
    """Return the quarantine rows of every file, registry first, in the report's order."""
    parts = [work / f"quarantine-{k}" for k in ("registry", "enrollment")]
    frames = [pl.read_parquet(p / "*.parquet") for p in parts if p.is_dir()]
    if not frames:
        return validate.empty_quarantine()
    return pl.concat(frames).sort(
        "source_kind", "source_file", "source_row", "column", nulls_last=False
    )


def render_payments(
    work: Path, ctx: RunContext, bank_format: BankFormat, write: Callable[[PaymentFile], None]
) -> tuple[list[StagedFile], pl.DataFrame, pl.DataFrame]:
    """Render the payment files from every bucket's payees (`flows.payouts.render_payments`).

    Each range's `payment_id -> payment_file, _bucket` map goes to `work/assigned`, sorted by
    bucket, for the decision records written bucket by bucket.
    """
    (work / "assigned").mkdir(exist_ok=True)

    def keep(r: int, frame: pl.DataFrame) -> None:
        frame.sort("_bucket").write_parquet(work_file(work, "assigned", r), row_group_size=100_000)

    return payouts.render_payments(scan_payees(work), ctx, bank_format, write, keep)


def assigned_to(work: Path, bank_assigned: pl.DataFrame, bucket: int) -> pl.DataFrame:
    """Return `payment_id -> payment_file` of one bucket's payments (row groups skip the rest)."""
    folder = work / "assigned"
    local = (
        pl.scan_parquet(folder / "*.parquet").filter(pl.col("_bucket") == bucket).collect()
        if any(folder.glob("*.parquet"))
        else bank_assigned.clear()
    )
    mine = bank_assigned.filter(pl.col("_bucket") == bucket)
    return pl.concat([local, mine]).drop("_bucket")


def write_decisions(
    folder: Callable[[str], Path],
    work: Path,
    buckets: int,
    bank_assigned: pl.DataFrame,
    lossy: pl.DataFrame,
    ctx: RunContext,
) -> list[str]:
    """Write each bucket's decision records, with their payment file, as one Parquet part.

    `folder(name)` returns where to write the part `name`; the payments' files come from
    `work/assigned` and `bank_assigned` (see `render_payments`). One part per bucket keeps
    memory at one bucket (a single streamed join of every record with every payment took more
    than 8 GB at 52 million).
    Returns the parts' names, `part-00000.parquet` onwards, in bucket order.
    """
    names = []
    for b in range(buckets):
        source = work_file(work, "records", b)
        if not source.exists():
            continue
        mine = assigned_to(work, bank_assigned, b)
        frame = (
            pl.read_parquet(source)
            .drop("payment_file")
            .join(mine, on="payment_id", how="left", maintain_order="left")
        )
        records = payouts.with_holder_warnings(frame, lossy).select(list(DECISION_COLUMNS))
        name = f"part-{b:05d}.parquet"
        folder(name).write_bytes(audit.decisions_parquet(records, ctx))
        names.append(name)
    return names
