"""One benchmark measurement in its own process, so that its peak memory is its own.

`python -m bench.work floor|pipeline DATA OUT` prints one JSON line: seconds, rows, peak RSS.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import sys
import time
from pathlib import Path

import polars as pl


def floor(data: Path, out: Path) -> int:
    """Read every input file and write the same rows as zstd Parquet, no logic.

    The pipeline writes one decision record per input row, so this is the same volume of rows.
    """
    rows = 0
    for kind in ("registry", "enrollments"):
        frames = [pl.read_csv(p, infer_schema=False) for p in sorted((data / kind).glob("*.csv"))]
        frame = pl.concat(frames)
        frame.write_parquet(out / f"{kind}.parquet", compression="zstd")
        rows += frame.height
    return rows


def pipeline(data: Path, out: Path) -> int:
    """Run the flow's data work (every stage and the publish, without Prefect) once."""
    from flows import audit, layout, validate
    from flows.decide import RunContext
    from flows.disburse import (
        _stage_payments,
        _stage_quarantine,
        build_outputs,
        decide_outcomes,
        read_extracts,
        skip_consumed,
        validate_enrollments,
        validate_registry,
    )
    from flows.ledger import read_ledger
    from flows.publish import Staging
    from rules.program import load_program

    program = load_program("paju-livelihood-2025")
    ctx = RunContext("bench", program, "2025-03", dt.datetime.now(dt.UTC), "bench-key-0123456789")
    ledger = read_ledger(out, program.id)
    registry = read_extracts.fn(data / "registry", "registry")
    enrollment = skip_consumed(
        read_extracts.fn(data / "enrollments", "enrollment"), ledger.consumed
    )
    reg, reg_q = validate_registry.fn(registry, program)
    enr, enr_q = validate_enrollments.fn(enrollment, program)
    validate.check_quarantine_rate(registry, reg, program.quarantine_threshold)
    decisions = decide_outcomes.fn(reg, enr, ledger, ctx)
    files, records = build_outputs.fn(decisions, ctx)
    staging = Staging(out, program.id, ctx.run_month, ctx.run_id)
    _stage_payments(staging, files, ctx)
    staging.write(
        layout.decisions_dir(program.id, ctx.run_month, ctx.run_id) / "d.parquet",
        audit.decisions_parquet(records, ctx),
    )
    _stage_quarantine(staging, pl.concat([reg_q, enr_q]), program.id, ctx.run_id)
    staging.publish()
    return records.height


def main() -> None:
    kind, data, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = {"floor": floor, "pipeline": pipeline}[kind](data, out)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"kind": kind, "seconds": seconds, "rows": rows, "peak_mb": peak_mb}))


if __name__ == "__main__":
    main()
