"""Where a run's work in progress lives between its steps: in memory, or on disk in buckets.

Every run takes the same steps (`flows.run.steps`): spill each chunk of input files, validated;
mark duplicates over all of them and route rows to buckets; decide each bucket; render the
payment files; write the decision records. A store holds what one step hands the next, as named
*parts* made of numbered pieces (one per chunk of files, bucket or payment-id range):

- `MemoryStore`: polars frames in this process. The default for a delivery that fits in
  memory (one bucket): nothing is written to disk but the run's outputs, so input rows (plain
  RRNs, names, accounts) never touch the disk outside the inputs and the quarantine.
- `DiskStore`: Parquet files in the run's owner-only work folder (`--partitions N|auto`), so
  that memory holds one chunk or one bucket at a time; its steps can run on Dask workers that
  share the folder (`--runner dask`).

The steps see only this interface; which store a run uses is the one thing that differs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl


class Store(Protocol):
    """The work in progress of one run, as numbered pieces of named parts."""

    def put(self, part: str, index: int, frame: pl.DataFrame) -> None:
        """Keep `frame` as piece `index` of `part` (replacing one kept before)."""

    def indices(self, part: str) -> list[int]:
        """Return the indices of the pieces of `part`, in order."""

    def get(self, part: str, index: int = 0) -> pl.DataFrame | None:
        """Return piece `index` of `part`, or None when there is none."""

    def scan(self, part: str) -> pl.LazyFrame | None:
        """Return every piece of `part` in index order, or None when there is none."""

    def split(self, part: str, rows: pl.LazyFrame) -> None:
        """Keep `rows` as pieces of `part` by their `_bucket` column (dropped), one per bucket."""

    def add_to_buckets(self, part: str, piece: int, rows: pl.DataFrame) -> None:
        """Add `rows` to the buckets of `part` by their `_bucket` column (dropped), as piece
        `piece`: a bucket holds its rows of every piece, in piece order (one pass, no re-read)."""

    def bucket(self, part: str, index: int) -> pl.DataFrame | None:
        """Return the rows `split` or `add_to_buckets` kept for bucket `index` of `part`."""

    def discard(self, *parts: str) -> None:
        """Let go of every piece of `parts`: a later step no longer needs them."""

    def take(self, part: str, index: int) -> pl.DataFrame | None:
        """Return piece `index` of `part` and let go of it (the step that reads it last)."""


@dataclass
class MemoryStore:
    """Pieces as polars frames in this process: for a run that decides in one bucket."""

    parts: dict[str, dict[int, pl.DataFrame]] = field(default_factory=dict)

    def put(self, part: str, index: int, frame: pl.DataFrame) -> None:
        self.parts.setdefault(part, {})[index] = frame

    def indices(self, part: str) -> list[int]:
        return sorted(self.parts.get(part, {}))

    def get(self, part: str, index: int = 0) -> pl.DataFrame | None:
        return self.parts.get(part, {}).get(index)

    def scan(self, part: str) -> pl.LazyFrame | None:
        pieces = [frame for _, frame in sorted(self.parts.get(part, {}).items())]
        if not pieces:
            return None
        return (pieces[0] if len(pieces) == 1 else pl.concat(pieces, rechunk=False)).lazy()

    def split(self, part: str, rows: pl.LazyFrame) -> None:
        frame = rows.collect()
        buckets = frame["_bucket"].unique()
        if len(buckets) == 1:  # one bucket (a city): no copy
            self.put(part, int(buckets[0]), frame.drop("_bucket"))
            return
        for (index,), piece in frame.partition_by("_bucket", as_dict=True).items():
            self.put(part, int(index), piece.drop("_bucket"))

    def add_to_buckets(self, part: str, piece: int, rows: pl.DataFrame) -> None:
        # bounded: one item per bucket
        for (index,), rows_of in rows.partition_by("_bucket", as_dict=True).items():
            had = self.get(part, int(index))
            rows_of = rows_of.drop("_bucket")
            self.put(part, int(index), rows_of if had is None else pl.concat([had, rows_of]))

    def bucket(self, part: str, index: int) -> pl.DataFrame | None:
        return self.get(part, index)

    def discard(self, *parts: str) -> None:
        for part in parts:
            self.parts.pop(part, None)

    def take(self, part: str, index: int) -> pl.DataFrame | None:
        return self.parts.get(part, {}).pop(index, None)


@dataclass(frozen=True)
class DiskStore:
    """Pieces as Parquet files under an owner-only work folder: memory is one piece at a time.

    The folder holds input rows (plain RRNs, names, accounts) until the run ends; it lives in
    the run's staging folder and goes with it (`flows.run.publish`).
    """

    root: Path

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)

    def piece(self, part: str, index: int) -> Path:
        """Return the file of piece `index` of `part`."""
        return self.root / part / f"{index:05d}.parquet"

    def put(self, part: str, index: int, frame: pl.DataFrame) -> None:
        target = self.piece(part, index)
        target.parent.mkdir(exist_ok=True)
        # Row groups of 100,000 rows let a filtered scan skip most of a large piece.
        frame.write_parquet(target, compression="lz4", row_group_size=100_000)

    def indices(self, part: str) -> list[int]:
        return sorted(int(p.stem) for p in (self.root / part).glob("*.parquet"))

    def get(self, part: str, index: int = 0) -> pl.DataFrame | None:
        source = self.piece(part, index)
        return pl.read_parquet(source) if source.exists() else None

    def scan(self, part: str) -> pl.LazyFrame | None:
        folder = self.root / part
        if not folder.is_dir() or not any(folder.glob("*.parquet")):
            return None
        return pl.scan_parquet(folder / "*.parquet")

    def split(self, part: str, rows: pl.LazyFrame) -> None:
        rows.sink_parquet(
            pl.PartitionBy(self.root / part, key="_bucket", include_key=False), mkdir=True
        )

    def add_to_buckets(self, part: str, piece: int, rows: pl.DataFrame) -> None:
        # The folders `split` writes, one file per piece: a bucket reads them in name order.
        # bounded: one item per bucket
        for (index,), rows_of in rows.partition_by("_bucket", as_dict=True).items():
            target = self.root / part / f"_bucket={index}" / f"piece-{piece:05d}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            rows_of.drop("_bucket").write_parquet(target, compression="lz4", row_group_size=100_000)

    def bucket(self, part: str, index: int) -> pl.DataFrame | None:
        folder = self.root / part / f"_bucket={index}"
        return pl.read_parquet(folder / "*.parquet") if folder.is_dir() else None

    def discard(self, *parts: str) -> None:
        for part in parts:
            shutil.rmtree(self.root / part, ignore_errors=True)

    def take(self, part: str, index: int) -> pl.DataFrame | None:
        frame = self.get(part, index)
        self.piece(part, index).unlink(missing_ok=True)
        return frame
