"""The steps every run takes, over a store of work in progress (`flows.run.stores`).

One orchestration for every size (`flows.run.flow`); only where the work in progress lives
differs: in memory, one bucket (a city), or on disk, N buckets (the country), whose steps can
run on Dask workers. The steps, in order:

1. **spill** (one task per chunk of files, about 256 MB of input): read, check and validate
   some files of a delivery, and keep their rows (with reasons and warnings) and quarantine rows.
   Memory: one chunk (the memory store keeps every chunk: it is for deliveries that fit).
2. **shuffle** (one task): decide duplicates on narrow keys over *all* files (the RRN as a
   64-bit integer and the row's place in delivery order), then put the registry rows into
   buckets by a hash of their household, so each household is whole in one bucket, and each
   application into the bucket of its beneficiary's kept registry row (a quarantined row's when
   there is none, a hash of the RRN when the beneficiary is not in the registry).
3. **decide** (one task per bucket, on the run's task runner): `flows.decide.rules.decide` over one
   bucket; keeps its decision records and payees. Memory: one bucket.
4. **render** the payment files from every bucket's payees, by payment-id range, and **write**
   the decision records bucket by bucket, each joined to its payment file.

Why buckets give the same decisions as one frame: every computation over a group is over a
household (heads, sizes, birth order, household unit) or over a beneficiary's applications, and
both are whole inside one bucket; duplicates are decided before bucketing over all rows; an
applicant looked up in another household is "not the same household" whether found or not.
`tests/test_partitioned.py` compares one bucket in memory with N buckets on disk. See
docs/scaling.md.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import polars as pl
import polars_hash  # noqa: F401  (registers the .nchash namespace)

from flows.audit import records as audit
from flows.audit.tally import Tally, tally
from flows.checks import validate
from flows.decide.dedup import duplicates, mark_duplicates, order_keys
from flows.decide.rules import RunContext, decide, empty_reissue, empty_reviews, keyed
from flows.errors import InputRejected
from flows.i18n import _
from flows.inputs.ingest import InputFile, Kind, chunks, empty_delivery
from flows.inputs.ledger import Reread
from flows.pay import render as payouts
from flows.pay.credit import PaymentFile, StagedFile
from flows.pay.render import BankFormat
from flows.run import prefetch
from flows.run.stores import MemoryStore, Store
from rules.program import Program
from schemas.audit import DECISION_COLUMNS

BUCKET_ROWS = 1_000_000  # registry rows per bucket when the run chooses (--partitions auto)
CSV_BYTES_PER_ROW = 170  # a generated registry CSV row (93 MB for 541,080 rows), to estimate rows
WORK_COLUMNS = ("_file", "_pos", "_rrn", "_bucket")
# What the buckets are decided from: let go of once every bucket is decided.
DECIDE_INPUTS = (
    "registry-buckets",
    "enrollment-buckets",
    "progress",
    "reissue",
    "reviews",
    "welfare",
)


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

    store: Store
    bucket: int
    buckets: int
    ctx: RunContext
    has_welfare: bool


def estimated_rows(registry_files: list[Path]) -> int:
    """Return about how many rows the registry files hold, from their size."""
    return -(-sum(p.stat().st_size for p in registry_files) // CSV_BYTES_PER_ROW)


def decides_in_memory(
    store: str, partitions: int | Literal["auto"] | None, runner: str, registry_files: list[Path]
) -> bool:
    """Return whether a run decides in one bucket in memory: asked (`--store memory`), or by
    default (no buckets asked, the local runner) for a registry of about one bucket or less."""
    return store == "memory" or (
        store == "auto"
        and partitions is None
        and runner == "local"
        and estimated_rows(registry_files) <= BUCKET_ROWS
    )


def choose_buckets(partitions: int | Literal["auto"], registry_files: list[Path]) -> int:
    """Return the number of buckets: as asked, or about one per million registry rows."""
    if partitions != "auto":
        return max(1, int(partitions))
    return max(1, math.ceil(estimated_rows(registry_files) / BUCKET_ROWS))


def stable_bucket(column: str, buckets: int) -> pl.Expr:
    """Return a bucket 0..buckets-1 from a hash stable across processes, machines and versions."""
    hashed: pl.Expr = pl.col(column).nchash.xxhash64()  # type: ignore[attr-defined]
    return (hashed.fill_null(0) % buckets).cast(pl.Int32)


def spill_chunk(
    paths: list[Path],
    first: int,
    kind: Kind,
    program: Program,
    store: Store,
    buckets: int,
    reread: Reread,
) -> list[Spilled]:
    """Read and validate some files of a delivery; keep their checked and quarantine rows.

    `first` is the index of `paths[0]` in the delivery's name order. Every check is about one
    row, or one file's `as_of`, so chunks give the rows of the whole delivery. Of an enrollment
    file an earlier committed run read, only the rows still open are decided again (`reread`);
    the closed ones are counted, not validated. Raises InputRejected for a file.
    """
    warmed = prefetch.registry_chunk(paths, program) if kind == "registry" else None
    if warmed is not None:  # read and validated while Prefect's server started
        infos, checked, quarantine = warmed
        index = {info.file: first + offset for offset, info in enumerate(infos)}
        return keep_chunk(checked, quarantine, infos, index, kind, store, buckets, first)
    frames, infos, index = [], [], {}
    for offset, path in enumerate(paths):
        frame, info = prefetch.read(path, kind)
        if kind == "enrollment":
            frame, closed = reread.split(info.sha256, frame)
            if closed:
                everything = closed == info.rows
                skipped_by = reread.consumed[info.sha256] if everything else None
                info = replace(info, rows_closed=closed, skipped_by_run=skipped_by)
            if info.skipped_by_run:
                infos.append(info)
                continue
        frames.append(frame)
        infos.append(info)
        index[info.file] = first + offset
    if not frames:
        return [Spilled(info, 0, 0, None) for info in infos]
    read = [i for i in infos if not i.skipped_by_run]
    checked, quarantine = validate.validate_files(kind, frames, read, program)
    del frames
    return keep_chunk(checked, quarantine, infos, index, kind, store, buckets, first)


def keep_chunk(
    checked: pl.DataFrame,
    quarantine: pl.DataFrame,
    infos: list[InputFile],
    index: dict[str, int],
    kind: Kind,
    store: Store,
    buckets: int,
    first: int,
) -> list[Spilled]:
    """Keep a chunk's checked rows (with their order keys and bucket) and quarantine rows."""
    as_of = checked["p_as_of"][0] if kind == "registry" else None
    file_index = pl.col("source_file").replace_strict(index, return_dtype=pl.Int64)
    bucket = stable_bucket("household_id", buckets) if kind == "registry" else pl.lit(None)
    checked = checked.with_columns(**order_keys(file_index), _bucket=bucket.cast(pl.Int32))
    per_file = checked.group_by("source_file").agg(pl.col("quarantined").sum())
    bad = dict(per_file.iter_rows())  # bounded: one row per file
    store.put(kind, first, checked)
    store.put(f"quarantine-{kind}", first, quarantine)
    return [
        Spilled(i, 0, 0, None)
        if i.skipped_by_run
        else Spilled(i, i.rows - i.rows_closed, int(bad.get(i.file, 0)), as_of)
        for i in infos
    ]


def check_snapshot(spilled: list[Spilled]) -> None:
    """Reject a registry delivery whose files hold different snapshot dates."""
    dated = [s for s in spilled if s.as_of is not None]
    dates = sorted({s.as_of for s in dated if s.as_of is not None})
    if len(dates) > 1:
        raise InputRejected(
            dated[-1].info.file,
            _("as_of differs between files of one delivery ({join})").format(
                join=", ".join(map(str, dates))
            ),
            _("Deliver files of a single snapshot together."),
        )


def check_rate(kind: Kind, spilled: list[Spilled], threshold: float) -> None:
    """Halt when the delivery's share of quarantined rows is above the program's threshold."""
    rows = sum(s.rows for s in spilled)
    bad = sum(s.quarantined for s in spilled)
    validate.check_rate(kind, bad, rows, threshold)


def check_valid_rrns(registry: pl.LazyFrame) -> None:
    """Fail loudly if a valid registry row's RRN is not 13 digits (the duplicate pass needs it)."""
    bad = (
        registry.filter(~pl.col("quarantined") & pl.col("_rrn").is_null())
        .select(pl.len())
        .collect()
        .item()
    )
    if bad:
        raise RuntimeError(f"{bad} valid registry rows have no 13-digit RRN: refusing to bucket")


def shuffle(store: Store, file_names: list[str], buckets: int) -> None:
    """Mark duplicates over every registry row, then put rows and applications in buckets."""
    spilled = store.scan("registry")
    if spilled is None:
        raise RuntimeError("no registry rows were spilled: refusing to decide")
    check_valid_rrns(spilled)
    one = buckets == 1  # one bucket: rows stay in delivery order, applications need no route
    registry = mark_duplicates(spilled, duplicates(spilled, file_names), keep_order=one)
    store.split("registry-buckets", registry.drop("_file", "_rrn"))
    applications = store.scan("enrollment")
    if applications is not None and one:
        store.split(
            "enrollment-buckets",
            applications.drop("_file", "_pos", "_rrn").with_columns(_bucket=pl.lit(0, pl.Int32)),
        )
    elif applications is not None:
        route_applications(store, registry, spilled, buckets)
    store.discard("registry", "enrollment")  # in buckets now


def route_applications(
    store: Store, registry: pl.LazyFrame, spilled: pl.LazyFrame, buckets: int
) -> None:
    """Put each application into the bucket of its beneficiary (`route`), piece by piece.

    Each routed piece goes straight into its buckets: routing all pieces first and splitting
    them afterwards wrote and read every application once more (3.3 s at 5.4 million).
    """
    valid = ~pl.col("quarantined")
    # Sorted integer keys and a binary search, not a hash join: a hash table over 52 million
    # keys, probed by tens of millions of wide application rows, took more than 8 GB.
    kept = (
        registry.filter(valid & ~pl.col("is_duplicate"))
        .select("_rrn", "_bucket")
        .collect()
        .sort("_rrn")
    )
    held = (
        spilled.filter(pl.col("quarantined") & pl.col("_rrn").is_not_null())
        .group_by("_rrn")
        .agg(_held_bucket=pl.col("_bucket").min())
        .collect()
    )
    for index in store.indices("enrollment"):
        rows = store.get("enrollment", index)
        assert rows is not None
        store.add_to_buckets("enrollment-buckets", index, route(rows, kept, held, buckets))
        del rows


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


def keep_run_inputs(
    store: Store,
    progress: pl.DataFrame,
    welfare: pl.DataFrame | None,
    program: Program,
    reissue: pl.DataFrame | None = None,
    reviews: pl.DataFrame | None = None,
) -> None:
    """Keep what every bucket decides with: the ledger's progress, payments owed again
    (`reissue`) and officers' review decisions (`reviews`), welfare rows, empty schemas.

    The schemas are a bucket's registry and enrollment columns, for a bucket with no rows (or a
    run whose every enrollment file was consumed before: no enrollment rows were spilled).
    """
    store.put("progress", 0, progress)
    store.put("reissue", 0, reissue if reissue is not None else empty_reissue().collect())
    store.put("reviews", 0, reviews if reviews is not None else empty_reviews().collect())
    if welfare is not None:
        store.put("welfare", 0, welfare)
    enrollment, _meta = validate.validate_delivery(empty_delivery("enrollment"), program)
    store.put("enrollment-schema", 0, enrollment.drop(WORK_COLUMNS, strict=False))


def keep_registry_schema(store: Store) -> None:
    """Keep the columns of a bucket's registry rows, for a bucket with none (after spilling)."""
    spilled = store.scan("registry")
    assert spilled is not None
    work = ("_file", "_rrn", "_bucket")  # `_pos` stays: decide_bucket drops it
    columns = [(c, t) for c, t in spilled.collect_schema().items() if c not in work]
    schema = pl.Schema([*columns, ("is_duplicate", pl.Boolean()), ("duplicate_of", pl.String())])
    store.put("registry-schema", 0, pl.DataFrame(schema=schema))


def _bucket_rows(store: Store, part: str, bucket: int) -> pl.DataFrame:
    rows = store.bucket(f"{part}-buckets", bucket)
    if rows is not None:
        return rows
    empty = store.get(f"{part}-schema")
    assert empty is not None
    return empty


def _people_of(rows: pl.DataFrame | None, people: pl.DataFrame, on: str) -> pl.DataFrame | None:
    return None if rows is None else rows.join(people, on=on, how="semi")


def decide_bucket(job: BucketJob) -> Tally:
    """Decide one bucket with `flows.decide.rules.decide`; keep its records and payees."""
    store, b, ctx = job.store, job.bucket, job.ctx
    registry = _bucket_rows(store, "registry", b)
    enrollment = _bucket_rows(store, "enrollment", b)
    progress, reissue, reviews = store.get("progress"), store.get("reissue"), store.get("reviews")
    assert progress is not None and reissue is not None and reviews is not None
    welfare = store.get("welfare") if job.has_welfare else None
    keyed_rows = progress.height or reissue.height or reviews.height  # a first run has none
    if job.buckets > 1 and (keyed_rows or welfare is not None):
        # only the ledger and welfare rows of the bucket's people
        rrns = pl.concat([registry.select("rrn"), enrollment.select("rrn")]).drop_nulls().unique()
        if keyed_rows:
            keys = rrns.select(person_key=keyed("rrn", ctx.pii_key))
            progress = progress.join(keys, on="person_key", how="semi")
            reissue = reissue.join(keys, on="person_key", how="semi")
            reviews = reviews.join(keys, on="person_key", how="semi")
        welfare = _people_of(welfare, rrns, "rrn")
    decisions = decide(
        registry.drop("_pos"),
        enrollment,
        progress,
        ctx,
        welfare,
        duplicates_marked=True,
        reissue=reissue,
        reviews=reviews,
    )
    unassigned = pl.DataFrame(schema={"payment_id": pl.String, "payment_file": pl.String})
    records = audit.decision_records(decisions, ctx, unassigned)
    store.put("records", b, records)
    store.put("payees", b, decisions.payees.with_columns(_bucket=pl.lit(b, pl.Int32)))
    return tally(records)


def quarantine(store: Store) -> pl.DataFrame:
    """Return the quarantine rows of every file, registry first, in the report's order."""
    parts = [store.scan(f"quarantine-{k}") for k in ("registry", "enrollment")]
    frames = [p.collect() for p in parts if p is not None]
    if not frames:
        return validate.empty_quarantine()
    return pl.concat(frames).sort(
        "source_kind", "source_file", "source_row", "column", nulls_last=False
    )


def render_payments(
    store: Store, ctx: RunContext, bank_format: BankFormat, write: Callable[[PaymentFile], None]
) -> tuple[list[StagedFile], pl.DataFrame, pl.DataFrame]:
    """Render the payment files from every bucket's payees (`flows.pay.render.render_payments`).

    Each range's `payment_id -> payment_file, _bucket` map is kept (part `assigned`), sorted by
    bucket, for the decision records written bucket by bucket.
    """
    payees = store.scan("payees")
    assert payees is not None

    def keep(r: int, frame: pl.DataFrame) -> None:
        store.put("assigned", r, frame.sort("_bucket"))

    rendered = payouts.render_payments(payees, ctx, bank_format, write, keep)
    store.discard("payees")
    return rendered


def assigned_to(store: Store, bank_assigned: pl.DataFrame, bucket: int) -> pl.DataFrame:
    """Return `payment_id -> payment_file` of one bucket's payments (row groups skip the rest)."""
    local = store.scan("assigned")
    mine = bank_assigned.filter(pl.col("_bucket") == bucket)
    if local is None:
        return mine.drop("_bucket")
    return pl.concat([local.filter(pl.col("_bucket") == bucket).collect(), mine]).drop("_bucket")


def decision_parts(
    store: Store, buckets: int, bank_assigned: pl.DataFrame, lossy: pl.DataFrame
) -> Iterator[tuple[int, pl.DataFrame]]:
    """Yield each bucket's decision records joined to their payment file, bucket by bucket.

    The payments' files come from part `assigned` and `bank_assigned` (`render_payments`). Each
    bucket's records leave the store as they are yielded (memory holds one bucket's twice).
    """
    for b in range(buckets):
        records = store.take("records", b)
        if records is None:
            continue
        joined = records.drop("payment_file").join(
            assigned_to(store, bank_assigned, b), on="payment_id", how="left", maintain_order="left"
        )
        yield b, payouts.with_holder_warnings(joined, lossy).select(list(DECISION_COLUMNS))


def write_decisions(
    folder: Callable[[str], Path],
    store: Store,
    buckets: int,
    bank_assigned: pl.DataFrame,
    lossy: pl.DataFrame,
    ctx: RunContext,
    done: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Write each bucket's decision records, with their payment file, as one Parquet part.

    `folder(name)` returns where to write the part `name`. One part per bucket keeps memory at
    one bucket (a single streamed join of every record with every payment took more than 8 GB at
    52 million). Returns the parts' names, `part-00000.parquet` onwards, in bucket order.
    `done(1, rows)` is called after each bucket (the run's progress).
    """
    names = []
    for b, rows in decision_parts(store, buckets, bank_assigned, lossy):
        name = f"part-{b:05d}.parquet"
        folder(name).write_bytes(audit.decisions_parquet(rows, ctx))
        names.append(name)
        if done is not None:
            done(1, rows.height)
    store.discard("records", "assigned")
    return names


def decide_in_memory(
    registry_files: list[Path],
    enrollment_files: list[Path],
    ctx: RunContext,
    progress: pl.DataFrame,
    welfare: pl.DataFrame | None = None,
    reread: Reread | None = None,
    reissue: pl.DataFrame | None = None,
    reviews: pl.DataFrame | None = None,
) -> tuple[Store, list[Spilled], Tally]:
    """Spill, shuffle and decide a delivery in one bucket in memory, without Prefect or gates.

    For benchmarks and tests of the data work; a run takes these steps through `flows.run.flow`,
    with its gates between them. Returns the store (records and payees kept), the registry files
    spilled and the bucket's tally.
    """
    store = MemoryStore()
    keep_run_inputs(store, progress, welfare, ctx.program, reissue, reviews)
    spilled: list[Spilled] = []
    for first, chunk in chunks(registry_files):
        spilled += spill_chunk(chunk, first, "registry", ctx.program, store, 1, Reread())
    for first, chunk in chunks(enrollment_files):
        spill_chunk(chunk, first, "enrollment", ctx.program, store, 1, reread or Reread())
    keep_registry_schema(store)
    shuffle(store, [s.info.file for s in spilled], 1)
    decided = decide_bucket(BucketJob(store, 0, 1, ctx, welfare is not None))
    store.discard(*DECIDE_INPUTS)
    return store, spilled, decided
