"""The streaming floor of the scale benchmark, in its own process.

    python -m bench.floor DATA OUT

Scans every input CSV file under DATA/registry, DATA/enrollments and (when present) DATA/welfare
with polars, all columns as strings, and sinks each kind as one zstd Parquet file in OUT: the
same rows the pipeline reads, written once, no logic, in polars' streaming engine. Prints one JSON
line: seconds and the rows sunk per kind (counted from the Parquet metadata after the clock stops).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import polars as pl

KINDS = ("registry", "enrollments", "welfare")


def input_files(data: Path) -> dict[str, list[Path]]:
    """Return the CSV files of each input kind under ``data`` (kinds without files left out)."""
    found = {kind: sorted((data / kind).glob("*.csv")) for kind in KINDS}
    return {kind: files for kind, files in found.items() if files}


def sink(files: list[Path], target: Path) -> None:
    """Scan ``files`` as strings and sink them to ``target`` as zstd Parquet."""
    pl.scan_csv(files, infer_schema=False).sink_parquet(target, compression="zstd")


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    files = input_files(data)
    start = time.perf_counter()
    for kind, paths in files.items():
        sink(paths, out / f"{kind}.parquet")
    seconds = time.perf_counter() - start
    rows = {
        kind: pl.scan_parquet(out / f"{kind}.parquet").select(pl.len()).collect().item()
        for kind in files
    }
    print(json.dumps({"seconds": seconds, "rows": rows}))


if __name__ == "__main__":
    main()
