"""What the ledger's check of committed decision files costs (issue 12, docs/performance.md).

`python -m bench.ledger_check OUT PROGRAM [--repeat 3]` times, on a trail with committed runs:
- `check`: `ledger_files`, hashing every decision file of every committed run against its record;
- `read`: the whole of `read_ledger` (the check, the PAID rows, the applications still open);
- `open`: `still_open` alone (which enrollment rows wait, issue 14);
- `records`: `check_records` (every run record's seal, Ed25519 signature and link) and the anchor;
and prints one JSON line with the bytes hashed, the seconds (best of the repeats) and the rate.
Pass the `--out` of a real run (e.g. `jiwon run` on `jiwon fixtures generate --rows 540000`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl

from flows.audit.anchor import check_anchor
from flows.inputs.ledger import check_records, ledger_files, read_ledger, run_records, still_open
from flows.run.flow import signing_key


def measure(out: Path, program: str, repeat: int) -> dict[str, float | int]:
    """Return bytes hashed, best check and full ledger seconds over `repeat` runs."""
    runs = run_records(out, program)
    committed = runs.filter((pl.col("status") == "committed") & ~pl.col("dry_run"))
    files = ledger_files(out, committed)
    size = sum(f.stat().st_size for f in files)
    check, whole, waiting, chain = [], [], [], []
    key = signing_key().public_key()
    for _ in range(repeat):
        start = time.perf_counter()
        check_records(out, runs, program, key)
        check_anchor(out, program, runs)
        chain.append(time.perf_counter() - start)
        start = time.perf_counter()
        still_open(files, committed)
        waiting.append(time.perf_counter() - start)
        start = time.perf_counter()
        ledger_files(out, committed)
        check.append(time.perf_counter() - start)
        start = time.perf_counter()
        ledger = read_ledger(out, program)
        whole.append(time.perf_counter() - start)
    return {
        "committed_runs": committed.height,
        "files": len(files),
        "bytes": size,
        "paid_rows": ledger.paid.height,
        "records_and_anchor_s": round(min(chain), 4),
        "check_s": round(min(check), 3),
        "still_open_s": round(min(waiting), 3),
        "read_ledger_s": round(min(whole), 3),
        "hash_gb_per_s": round(size / min(check) / 1e9, 3),
    }


def main() -> None:
    """Print the measurement as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("program")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.out, args.program, args.repeat)))


if __name__ == "__main__":
    main()
