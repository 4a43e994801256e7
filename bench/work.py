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
    """Run the flow's steps once (`flows.run.steps`, one bucket in memory) and publish."""
    from flows.decide.rules import RunContext
    from flows.inputs.ingest import list_delivery
    from flows.inputs.ledger import read_ledger
    from flows.pay import credit as payments
    from flows.run import paths as layout
    from flows.run import steps
    from flows.run.flow import stage_quarantine
    from flows.run.publish import Staging
    from rules.program import load_program

    program = load_program("paju-livelihood-2025")
    ctx = RunContext("bench", program, "2025-03", dt.datetime.now(dt.UTC), "bench-key-0123456789")
    ledger = read_ledger(out, program.id)
    store, _, decided = steps.decide_in_memory(
        list_delivery(data / "registry", "registry"),
        list_delivery(data / "enrollments", "enrollment"),
        ctx,
        ledger.progress(program, ctx.run_month),
        reread=ledger.reread,
    )
    staging = Staging(out, program.id, ctx.run_month, ctx.run_id)
    folder = layout.payments_dir(program.id, ctx.run_id)

    def write(f: payments.PaymentFile) -> None:
        staging.write(folder / f.file, f.content)

    files, bank_assigned, lossy = steps.render_payments(store, ctx, "fixed_width", write)
    staging.write(folder / "manifest.json", payments.manifest(files, ctx.run_id, program.id))
    decisions = layout.decisions_dir(program.id, ctx.run_month, ctx.run_id)
    for name in steps.write_decisions(
        lambda name: staging.path(decisions / name), store, 1, bank_assigned, lossy, ctx
    ):
        staging.adopt(decisions / name)
    stage_quarantine(staging, steps.quarantine(store), program.id, ctx.run_id)
    staging.publish()
    return decided.rows


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
