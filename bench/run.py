"""Benchmark the pipeline's data work against a floor measured in the same run.

    python -m bench.run --rows 540000 [--repeat 3] [--full-run]

Generates N residents, then (each in its own process, best of `repeat`):
- floor: polars reads the same input files and writes the same volume of Parquet, no logic;
- pipeline: the flow's data work (ingest, validate, decide, payments, audit, publish), no Prefect;
- with --full-run: the whole `jiwon run` command, Prefect start-up included.
Prints rows/s, peak memory and the pipeline/floor ratio. Targets live here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fixtures.generate import generate_blocks, write_blocks

TARGET_RATIO = 2.0
TARGET_RUN_SECONDS = 15.0
TARGET_PEAK_MB = 2048


def measure(kind: str, data: Path, scratch: Path) -> dict[str, float]:
    """Run one measurement in a fresh process and return its JSON result."""
    out = scratch / f"{kind}-out"
    shutil.rmtree(out, ignore_errors=True)
    result = subprocess.run(
        [sys.executable, "-m", "bench.work", kind, str(data), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def full_run(data: Path, scratch: Path) -> float:
    """Return the wall time of the whole `jiwon run` command on the data."""
    out = scratch / "run-out"
    shutil.rmtree(out, ignore_errors=True)
    env = os.environ | {"JIWON_PII_KEY": "bench-key-0123456789", "PREFECT_LOGGING_LEVEL": "WARNING"}
    jiwon = Path(sys.executable).parent / "jiwon"
    start = time.perf_counter()
    subprocess.run(
        [
            str(jiwon),
            "run",
            "--program",
            "paju-livelihood-2025",
            "--registry",
            str(data / "registry"),
            "--enrollments",
            str(data / "enrollments"),
            "--out",
            str(out),
            "--run-month",
            "2025-03",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=540_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--full-run", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jiwon-bench-") as tmp:
        scratch = Path(tmp)
        start = time.perf_counter()
        write_blocks(generate_blocks(args.rows, seed=args.seed), scratch / "data")
        print(f"generated {args.rows:,} residents in {time.perf_counter() - start:.1f} s")
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.repeat):
            for kind in ("floor", "pipeline"):
                result = measure(kind, scratch / "data", scratch)
                if kind not in best or result["seconds"] < best[kind]["seconds"]:
                    best[kind] = result
        floor, work = best["floor"], best["pipeline"]
        ratio = work["seconds"] / floor["seconds"]
        print(f"{'':10} {'seconds':>8} {'rows/s':>12} {'peak MB':>8}")
        for name, r in (("floor", floor), ("pipeline", work)):
            print(
                f"{name:10} {r['seconds']:8.2f} {r['rows'] / r['seconds']:12,.0f} "
                f"{r['peak_mb']:8.0f}"
            )
        print(
            f"ratio pipeline/floor: {ratio:.2f} (target <= {TARGET_RATIO}); peak "
            f"{work['peak_mb']:.0f} MB (target < {TARGET_PEAK_MB})"
        )
        if args.full_run:
            wall = full_run(scratch / "data", scratch)
            print(f"whole `jiwon run`: {wall:.1f} s wall (target < {TARGET_RUN_SECONDS:.0f} s)")


if __name__ == "__main__":
    main()
