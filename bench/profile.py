"""Where a whole `jiwon run` spends its time: wall and CPU seconds per stage (issue 16, item 1).

    python -m bench.profile --rows 540000 [--rows 5400000] [--seed 1]

For each size: generate the residents, then run the real `disburse` flow in this process, as
`jiwon run` does (a temporary Prefect server, the program's lock, the ledger's checks, every
stage, commit), with each stage function wrapped by a timer. Nothing in `flows/` changes: the
wrappers are set here before the run. A stage's CPU seconds are the process's (every thread:
polars works on all cores), so CPU > wall means the stage ran in parallel. Prefect task runs are
counted by the wrappers of the task functions (spill-chunk, shuffle, decide-bucket).

Prints a table per size and appends one JSON line per size to bench/results/profile.jsonl,
with the cores the process may use: `POLARS_MAX_THREADS=1 taskset -c 0 python -m bench.profile`
profiles on one core (the temporary Prefect server too), to see which stages gain from a second.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench/results/profile.jsonl"


class Clock:
    """Wall and process CPU seconds per stage, and calls, accumulated by wrappers."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            entry = self.stages.setdefault(name, {"calls": 0, "wall": 0.0, "cpu": 0.0})
            entry["calls"] += 1
            entry["wall"] += time.perf_counter() - wall
            entry["cpu"] += time.process_time() - cpu

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        """Replace `owner.attribute` by a timed wrapper named `name`."""
        real: Callable[..., Any] = getattr(owner, attribute)
        clock = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            with clock.timed(name):
                return real(*args, **kwargs)

        timed.__name__ = getattr(real, "__name__", attribute)
        timed.__qualname__ = getattr(real, "__qualname__", attribute)
        timed.__doc__ = real.__doc__
        timed.__module__ = getattr(real, "__module__", __name__)
        timed.__wrapped__ = real  # type: ignore[attr-defined]
        setattr(owner, attribute, timed)


# (module, attribute, stage): task functions first (wrapped before the flow module wraps them
# in Prefect tasks), then what the flow body calls, in run order.
TASKS = (
    ("flows.run.steps", "spill_chunk", "spill: read, normalise, validate a chunk [task]"),
    ("flows.run.steps", "shuffle", "shuffle registry into buckets [task]"),
    ("flows.run.steps", "decide_bucket", "decide a bucket [task]"),
)
BODY = (
    ("flows.run.flow", "open_chain", "lock, recover, check chain and anchor"),
    ("flows.run.flow", "read_ledger", "read the ledger (who was paid, open rows)"),
    ("flows.run.flow", "read_welfare", "welfare extract"),
    ("flows.run.flow", "list_delivery", "list and sniff the delivery"),
    ("flows.run.flow", "spill", "spill (all chunks, with Prefect)"),
    ("flows.run.steps", "check_snapshot", "check the snapshot date"),
    ("flows.run.steps", "check_rate", "check quarantine rates"),
    ("flows.run.steps", "keep_registry_schema", "keep the registry schema"),
    ("flows.run.steps", "render_payments", "render payment files"),
    ("flows.run.steps", "write_decisions", "write decision records"),
    ("flows.run.steps", "quarantine", "quarantine report"),
    ("flows.run.flow", "stage_report_html", "run report (HTML)"),
    ("flows.run.flow", "commit", "seal, sign, publish, anchor"),
    ("flows.run.flow", "publish_artifacts", "Prefect artifacts"),
    ("flows.run.flow", "rebuild_program_page", "program page"),
)


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def time_prefect_calls(calls: dict[str, dict[str, float]]) -> None:
    """Time every Prefect API request by method and path (ids as `:id`), and by whether the
    run's main thread waited for it (`blocking`) or a background worker sent it (logs, events).
    """
    import threading

    from prefect.client import base

    def key(request: Any) -> str:
        path = UUID.sub(":id", request.url.path.removeprefix("/api"))
        waits = threading.current_thread() is threading.main_thread()
        return f"{request.method} {path}" + ("" if waits else " (background)")

    def add(name: str, began: float) -> None:
        entry = calls.setdefault(name, {"calls": 0, "wall": 0.0})
        entry["calls"] += 1
        entry["wall"] += time.perf_counter() - began

    sync_send = base.PrefectHttpxSyncClient.send
    async_send = base.PrefectHttpxAsyncClient.send

    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return sync_send(self, request, *args, **kwargs)
        finally:
            add(key(request), began)

    async def asend(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return await async_send(self, request, *args, **kwargs)
        finally:
            add(key(request), began)

    base.PrefectHttpxSyncClient.send = send  # type: ignore[method-assign]
    base.PrefectHttpxAsyncClient.send = asend  # type: ignore[method-assign]


def profile(rows: int, seed: int, scratch: Path) -> dict[str, Any]:
    """Generate `rows` residents, run the flow on them once, return the stages' figures."""
    from fixtures.generate import generate_blocks, write_blocks

    data = scratch / "data"
    began = time.perf_counter()
    write_blocks(generate_blocks(rows, seed=seed), data)
    generated = time.perf_counter() - began
    programs = roomy_programs(scratch / "programs")
    # A fresh interpreter per size, so imports and the temporary server are counted each time.
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.profile",
            "--one",
            str(data),
            str(scratch / "out"),
            str(programs),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=os.environ
        | {
            "JIWON_PII_KEY": "bench-pii-key-0123456789abcdef",
            "JIWON_SIGNING_KEY": "11" * 32,
            "JIWON_ANCHOR_DIR": str(scratch / "anchors"),
            "PREFECT_HOME": str(scratch / "prefect-home"),
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        },
    )
    if child.returncode:
        raise SystemExit(f"the profiled run failed:\n{child.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    result |= {"rows": rows, "seed": seed, "generate_s": round(generated, 1)}
    return result


def roomy_programs(folder: Path) -> Path:
    """Return a copy of the programs whose livelihood budget pays any generated population.

    Paju's budget (52,000,000,000 won) halts a run of 5,400,000 residents before it pays.
    """
    import shutil

    import yaml

    from rules.program import PROGRAMS_DIR

    shutil.copytree(PROGRAMS_DIR, folder)
    path = folder / "paju-livelihood-2025" / "program.yaml"
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    body["budget_krw"] = 10**14
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    return folder


def one(data: Path, out: Path, programs: Path | None = None) -> dict[str, Any]:
    """Run the flow once in this process with every stage timed; return the figures."""
    clock = Clock()
    began_wall, began_cpu = time.perf_counter(), time.process_time()
    with clock.timed("import jiwon and Prefect"):
        import importlib

        importlib.import_module("flows.cli")  # Prefect's settings as `jiwon run` sets them
        steps = importlib.import_module("flows.run.steps")
        for _module, attribute, name in TASKS:  # before flows.run.flow wraps them as tasks
            clock.wrap(steps, attribute, name)
        flow = importlib.import_module("flows.run.flow")
    for module, attribute, name in BODY:
        clock.wrap(importlib.import_module(module), attribute, name)
    calls: dict[str, dict[str, float]] = {}
    time_prefect_calls(calls)
    params = flow.DisburseParams(
        program="paju-livelihood-2025",
        registry=data / "registry",
        enrollments=data / "enrollments",
        out=out,
        operator="bench",
        run_month="2025-03",
        programs_dir=programs,
    )
    with clock.timed("the flow, start to end"):
        summary = flow.disburse(params)
    wall = time.perf_counter() - began_wall
    cpu = time.process_time() - began_cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "status": summary.status,
        "paid": summary.payments,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "server_cpu_s": round(children.ru_utime + children.ru_stime, 2),
        "peak_mb": round(peak),
        "stages": {
            k: {"calls": int(v["calls"]), "wall": round(v["wall"], 2), "cpu": round(v["cpu"], 2)}
            for k, v in clock.stages.items()
        },
        "prefect_calls": {
            k: {"calls": int(v["calls"]), "wall": round(v["wall"], 3)}
            for k, v in sorted(calls.items(), key=lambda kv: -kv[1]["wall"])
        },
    }


def table(result: dict[str, Any]) -> list[str]:
    """Return the printed table of one size: stages in run order, then what is left."""
    stages = result["stages"]
    flow_wall = stages["the flow, start to end"]["wall"]
    counted = [k for k in stages if k not in ("the flow, start to end", "import jiwon and Prefect")]
    nested = {"spill: read, normalise, validate a chunk [task]"}  # inside "spill (all chunks)"
    inside = sum(stages[k]["wall"] for k in counted if k not in nested)
    lines = [
        f"{result['rows']:,} residents: whole run {result['wall_s']:.1f} s wall, "
        f"{result['cpu_s']:.1f} s CPU (+ {result['server_cpu_s']:.1f} s in the temporary "
        f"server), peak {result['peak_mb']:,} MB, {result['paid']:,} payments",
        "| stage | calls | wall s | CPU s |",
        "|---|---:|---:|---:|",
    ]
    for name in ["import jiwon and Prefect", *counted]:
        s = stages[name]
        lines.append(f"| {name} | {s['calls']} | {s['wall']:.2f} | {s['cpu']:.2f} |")
    lines.append(
        f"| rest of the flow (temporary server start, Prefect flow and task runs, shutdown) | "
        f"| {flow_wall - inside:.2f} | |"
    )
    calls = result.get("prefect_calls", {})
    if calls:
        blocking = sum(v["wall"] for k, v in calls.items() if not k.endswith("(background)"))
        lines += [
            "",
            f"Prefect API calls ({sum(v['calls'] for v in calls.values())}; the run waited "
            f"{blocking:.2f} s for the blocking ones):",
            "| call | calls | wall s |",
            "|---|---:|---:|",
        ]
        lines += [f"| `{k}` | {v['calls']} | {v['wall']:.3f} |" for k, v in calls.items()]
    return lines


def commit_id() -> str:
    found = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return found.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--one", nargs=3, type=Path, metavar=("DATA", "OUT", "PROGRAMS"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return
    for rows in args.rows or [540_000]:
        with tempfile.TemporaryDirectory(prefix="jiwon-profile-") as tmp:
            result = profile(rows, args.seed, Path(tmp))
        at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        # the cores it may use: `taskset -c 0 python -m bench.profile` profiles on one
        result |= {"commit": commit_id(), "at": at, "cores": len(os.sched_getaffinity(0))}
        print("\n".join(table(result)), flush=True)
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write(json.dumps(result, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
