"""Measure the synthetic-data generator: wall time, rows per second and peak memory per size.

    python -m bench.generate --rows 540000 5400000 52000000 [--scope national] [--out DIR]

Each size runs `python -m fixtures.generate` in its own process (so its peak resident memory is
its own, read from the kernel's accounting of that child) and writes to a temporary folder under
``--out`` (default: the system temp folder) that is deleted afterwards. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def folder_size(folder: Path) -> tuple[int, int]:
    """Return (files, bytes) under ``folder``."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def measure(rows: int, scope: str, seed: int, block_rows: int, scratch: Path) -> dict[str, float]:
    """Generate ``rows`` residents in a child process; return seconds, peak MB, files, bytes."""
    out = scratch / f"gen-{rows}"
    command = [sys.executable, "-m", "fixtures.generate", "--rows", str(rows), "--seed", str(seed)]
    command += ["--scope", scope, "--block-rows", str(block_rows), "--out", str(out)]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    summary = child.stdout.read().strip() if child.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"generator failed for {rows:,} rows: {summary}")
    files, size = folder_size(out)
    shutil.rmtree(out)
    print(f"  {rows:,}: {summary}", file=sys.stderr)
    return {
        "rows": rows,
        "seconds": seconds,
        "cpu": usage.ru_utime + usage.ru_stime,  # on a shared machine, less load-dependent
        "peak_mb": usage.ru_maxrss / 1024,  # Linux reports kilobytes
        "files": files,
        "gb": size / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[540_000, 5_400_000])
    parser.add_argument("--scope", choices=("paju", "national"), default="national")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--block-rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None, help="scratch folder (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jiwon-gen-", dir=args.out) as tmp:
        print("| residents | wall s | CPU s | rows/s | peak MB | files | CSV GB |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for rows in args.rows:
            r = measure(rows, args.scope, args.seed, args.block_rows, Path(tmp))
            print(
                f"| {rows:,} | {r['seconds']:.1f} | {r['cpu']:.1f} | {rows / r['seconds']:,.0f} | "
                f"{r['peak_mb']:,.0f} | {r['files']:.0f} | {r['gb']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
