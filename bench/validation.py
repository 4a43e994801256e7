"""Benchmark registry validation against the time to just read the same files.

    python -m bench.validation --rows 5000000 [--repeat 3]

Generates N residents (registry only), then, each repeat in its own process (best of `repeat`):
- floor: polars reads the registry CSV files, every column as a string, no logic;
- ingest: jiwon's reader on the same files (encoding check, SHA-256, header mapping);
- validate: `flows.checks.validate.validate_registry` on what the reader returned (normalisation,
  parsing, spreadsheet-number check, as_of gate, the pandera schema, checksum warnings,
  quarantine report).
Prints seconds and rows/s for each and the ratio validate / floor. Target: at most 1.5.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from fixtures.generate import generate_population, write_population

TARGET_RATIO = 1.5


def measure(data: Path) -> dict[str, float]:
    """Time floor, ingest and validate once, in this process."""
    from flows.checks import validate
    from flows.inputs.ingest import list_delivery, read_delivery
    from rules.program import load_program
    from rules.reference import vocabulary
    from schemas.registry import registry_schema

    program = load_program("paju-livelihood-2025")
    schema = registry_schema(program.admin_codes(), vocabulary())
    paths = sorted((data / "registry").glob("*.csv"))
    pl.concat([pl.read_csv(p, infer_schema=False) for p in paths])  # warm the page cache
    start = time.perf_counter()
    rows = pl.concat([pl.read_csv(p, infer_schema=False) for p in paths]).height
    floor = time.perf_counter() - start
    start = time.perf_counter()
    delivery = read_delivery(list_delivery(data / "registry", "registry"), "registry")
    ingest = time.perf_counter() - start
    start = time.perf_counter()
    checked, report = validate.validate_registry(
        delivery, schema, vocabulary(), program.reference_date, True
    )
    seconds = time.perf_counter() - start
    return {
        "rows": rows,
        "floor": floor,
        "ingest": ingest,
        "validate": seconds,
        "quarantined": int(checked["quarantined"].sum()),
        "report_rows": report.height,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, help="reuse a folder written by an earlier run")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    with tempfile.TemporaryDirectory(prefix="jiwon-bench-validation-") as tmp:
        data = args.data or Path(tmp)
        if not (data / "registry").is_dir():
            start = time.perf_counter()
            population = generate_population(args.rows, seed=args.seed)
            write_population(population, data)
            del population
            print(f"generated {args.rows:,} residents in {time.perf_counter() - start:.1f} s")
        results = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, "-m", "bench.validation", "--measure", str(data)],
                check=True,
                capture_output=True,
                text=True,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        best = {k: min(r[k] for r in results) for k in ("floor", "ingest", "validate")}
        rows = results[0]["rows"]
        print(f"registry rows: {rows:,} (quarantined {results[0]['quarantined']:,})")
        for name in ("floor", "ingest", "validate"):
            print(f"{name:9} {best[name]:8.2f} s {rows / best[name]:12,.0f} rows/s")
        ratio = best["validate"] / best["floor"]
        both = (best["ingest"] + best["validate"]) / best["floor"]
        print(
            f"ratio validate / floor read: {ratio:.2f} (target <= {TARGET_RATIO}); "
            f"(ingest + validate) / floor: {both:.2f}"
        )


if __name__ == "__main__":
    main()
