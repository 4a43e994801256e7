"""Benchmark `jiwon run` at national scale against a streaming floor measured in the same run.

    python -m bench.scale --data DIR [DIR ...] --program national-relief-2020
        [--run-month 2020-08] [--partitions auto|N|none] [--results bench/results/scale.jsonl]
        [--scratch /tmp/jiwon-bench/scratch] [--note TEXT] [--cores N]
    python -m bench.scale --summary [--results FILE]     # Markdown table of what was recorded
    python -m bench.scale --phases [--results FILE]      # seconds per phase, from the run logs
    python -m bench.scale --scaling [--results FILE]     # time against cores, and cores needed

DIR is what `jiwon fixtures generate --program P --scope national --rows N --out DIR` wrote
(registry/, enrollments/ and welfare/ when the program needs it). For each DIR, in this order and
each in its own process:

1. warm-up: every input byte is read once (timed, not compared), so that both measurements find
   the files in the page cache alike;
2. floor: `python -m bench.floor` scans the same CSV files with polars (all columns as strings)
   and sinks the same rows as zstd Parquet, no logic (streaming engine);
3. pipeline: `jiwon run --program P --registry DIR/registry --enrollments DIR/enrollments
   [--welfare DIR/welfare] --out SCRATCH/out --run-month M --partitions auto|N` with JIWON_PII_KEY
   set (`--partitions auto`: buckets on disk, one per ~1,000,000 registry rows; `--partitions
   none` passes `--store memory` instead: one bucket in memory whatever the size, for comparison).

The pipeline runs against a long-lived local Prefect server that this benchmark starts once
(`prefect server start` on a free port, its own PREFECT_HOME under SCRATCH) and stops at the end;
the child gets PREFECT_API_URL. So Prefect's temporary-server start-up (about 7 s here) is not
counted against the floor; the server's own memory is not in the pipeline's peak either.

Per measurement: wall seconds; CPU seconds (user + system, from wait4); peak memory as the largest
sum of resident memory over the process tree (sampled with psutil every 0.2 s) and the kernel's
ru_maxrss of the largest single process (from wait4); the load average before and after. For the
pipeline also its exit code, the last lines of its output, the time its Prefect task runs took
(read from the server) and its memory every 5 s (SCRATCH/<id>/memory.csv). A run whose tree exceeds
--memory-cap-gb (default 16) is killed by the benchmark, so that it cannot push the shared machine
into the OOM killer. Rows per second count registry + enrollment input rows. Every measurement is
appended as one JSON line to --results, so sizes can be run separately (52 million alone takes
long) and summarised together. `--cores N` lets the floor and the pipeline run on the first N CPUs
only (their affinity, and POLARS_MAX_THREADS=N; the Prefect server is not pinned: it does a run's
15 requests). With a run of a size on fewer cores beside one on the whole machine, `--scaling` fits
T(n) = serial + parallel / n to the two (Amdahl's law), and to each Prefect stage of them, and
prints what 4, 8 and 16 cores would take and how many cores each target needs: a projection from
this machine, said as one. Targets: pipeline/floor at most 1.5 at 540,000 (issue 7) and 5 from 5.4
million up, 52 million in 5 minutes, peak memory at most 6 GB (issue 16). They live here, never in
tests."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.floor import input_files

# Issue 16: at most 5x the streaming floor from 5.4 million up, 6 GB, 52 million in 5 minutes.
PEAK_TARGET_BYTES = 6 * 10**9
SIGNING_KEY = "11" * 32  # a throwaway Ed25519 seed (issue 12): the benchmark's trail proves nothing
SMALL_SIZE = 1_000_000  # below this, the tighter ratio target applies
RATIO_TARGET_SMALL, RATIO_TARGET = 1.5, 5.0
NATIONAL, NATIONAL_WALL_TARGET_S = 52_000_000, 300.0
SAMPLE_SECONDS = 0.2
TIMELINE_SECONDS = 5.0  # memory kept for the record this often (peaks are taken from every sample)
PII_KEY = "bench-key-0123456789abcdef"
RESULTS = Path("bench/results/scale.jsonl")
LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)  # sorts task runs that never started last


# --------------------------------------------------------------------------- pure functions


def ratio_target(residents: int) -> float:
    """Return the pipeline/floor ratio target for a size (1.5 at 540k; 5 from 5.4M up)."""
    return RATIO_TARGET_SMALL if residents < SMALL_SIZE else RATIO_TARGET


def default_run_month(window_ends: Iterable[dt.date]) -> str:
    """Return the run month after every application window closed: the month of the last end."""
    return max(window_ends).strftime("%Y-%m")


def task_base_name(task_run_name: str) -> str:
    """Return a task run's task name: ``validate-registry-0f3`` -> ``validate-registry``."""
    base, _, suffix = task_run_name.rpartition("-")
    return base if base and len(suffix) == 3 else task_run_name


def stage_seconds(task_runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Sum task runs by task name: runs, seconds run in total, and wall span first start to end.

    ``task_runs`` are Prefect API task-run objects (name, start_time, end_time, total_run_time).
    """
    stages: dict[str, dict[str, Any]] = {}
    for run in task_runs:
        name = task_base_name(str(run["name"]))
        stage = stages.setdefault(name, {"runs": 0, "seconds": 0.0, "first": None, "last": None})
        stage["runs"] += 1
        stage["seconds"] += float(run.get("total_run_time") or 0.0)
        for key, column, pick in (("first", "start_time", min), ("last", "end_time", max)):
            if run.get(column):
                when = dt.datetime.fromisoformat(str(run[column]))
                stage[key] = when if stage[key] is None else pick(stage[key], when)
    return {
        name: {
            "runs": s["runs"],
            "seconds": round(s["seconds"], 3),
            "span": round((s["last"] - s["first"]).total_seconds(), 3)
            if s["first"] and s["last"]
            else 0.0,
        }
        for name, s in sorted(stages.items(), key=lambda item: item[1]["first"] or LATEST)
    }


# What a run logs at the end of each phase (flows/run/flow.py), in order.
PHASE_MARKS = (
    ("start", "Beginning flow run"),
    ("check trail, read ledger and welfare", "files, decided in "),
    ("validate + spill every file", " enrollment rows"),
    ("duplicates + shuffle into buckets", "Task run 'shuffle-"),
    ("decide buckets", "rows in"),
    ("payment files, decisions, reports, commit", " committed: "),
    ("end", "Finished in state"),
)


def log_phases(text: str, total_seconds: float) -> dict[str, float]:
    """Return seconds per phase of a run from its log (marks missing: left out).

    Each phase ends at the first line after the previous mark that contains its mark; the time
    before the flow starts and after it ends (imports, Prefect client, summary) is "outside flow",
    given only when the run got to its end.
    """
    times: list[tuple[str, float]] = []
    lines = iter(text.splitlines())
    for phase, mark in PHASE_MARKS:
        for line in lines:
            if mark in line and line[:2].isdigit() and line[2] == ":":
                h, m, sec = line.split(" ", 1)[0].split(":")
                times.append((phase, int(h) * 3600 + int(m) * 60 + float(sec)))
                break
    phases = {
        phase: round(t - times[i - 1][1], 1) for i, (phase, t) in enumerate(times) if i and phase
    }
    if phases.pop("end", None) is not None:  # a run killed midway has no "outside" to speak of
        phases["outside flow"] = round(total_seconds - (times[-1][1] - times[0][1]), 1)
    return phases


def read_results(path: Path) -> list[dict[str, Any]]:
    """Return the JSON-line records of a results file (blank lines skipped; none if absent)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class Row:
    """One size of one program: the floor and the pipeline of the same benchmark run."""

    program: str
    residents: int
    input_rows: int
    floor_seconds: float
    pipeline_seconds: float
    pipeline_ok: bool
    exit_code: int
    peak_tree_bytes: int
    max_process_bytes: int
    floor_peak_bytes: int
    load: str
    when: str
    cores: int = 0  # the cores the floor and the pipeline were allowed (0: not recorded)
    cpus: int = 0  # the machine's
    commit: str = ""
    floor_cpu_seconds: float | None = None  # user + system CPU of the process (from wait4)
    pipeline_cpu_seconds: float | None = None
    # each Prefect task's runs, first start to last end
    stage_spans: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.pipeline_seconds / self.floor_seconds

    @property
    def rows_per_second(self) -> float:
        return self.input_rows / self.pipeline_seconds

    @property
    def ratio_met(self) -> bool:
        return self.pipeline_ok and self.ratio <= ratio_target(self.residents)

    @property
    def memory_met(self) -> bool:
        return self.pipeline_ok and self.peak_tree_bytes <= PEAK_TARGET_BYTES


def cores_of(record: dict[str, Any]) -> int:
    """Return the cores a measurement was allowed: `--cores`, else the machine's (0: unknown)."""
    return int(record.get("cores") or record.get("cpus") or 0)


def summarise(records: list[dict[str, Any]], cores: int | None = None) -> list[Row]:
    """Pair each benchmark run's floor and pipeline; keep the latest run per program and size.

    Only runs that had the whole machine count, unless `cores` asks for the runs allowed that
    many cores (`--cores`).
    """
    by_run: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        by_run.setdefault(record["bench_id"], {})[record["kind"]] = record
    latest: dict[tuple[str, int], Row] = {}
    for pair in by_run.values():
        if "floor" not in pair or "pipeline" not in pair:
            continue
        floor, pipe = pair["floor"], pair["pipeline"]
        allowed = cores_of(pipe)
        wanted = cores if cores is not None else pipe.get("cpus") or allowed
        if allowed != wanted:
            continue
        loads = (pipe["load_before"][0], pipe["load_after"][0])
        row = Row(
            program=pipe["program"],
            residents=pipe["residents"],
            input_rows=pipe["input_rows"],
            floor_seconds=floor["seconds"],
            pipeline_seconds=pipe["seconds"],
            pipeline_ok=pipe["exit_code"] == 0,
            exit_code=pipe["exit_code"],
            peak_tree_bytes=pipe["peak_tree_bytes"],
            max_process_bytes=pipe["max_process_bytes"],
            floor_peak_bytes=floor["peak_tree_bytes"],
            load=f"{min(loads):.1f}-{max(loads):.1f}",
            when=pipe["when"],
            cores=allowed,
            cpus=pipe.get("cpus") or 0,
            commit=pipe.get("commit", ""),
            floor_cpu_seconds=floor.get("cpu_seconds"),
            pipeline_cpu_seconds=pipe.get("cpu_seconds"),
            stage_spans={name: t["span"] for name, t in pipe.get("stages", {}).items()},
        )
        key = (row.program, row.residents)
        if key not in latest or latest[key].when < row.when:
            latest[key] = row
    return sorted(latest.values(), key=lambda r: (r.program, r.residents))


def _ended(exit_code: int) -> str:
    return f"killed by signal {-exit_code}" if exit_code < 0 else f"exit {exit_code}"


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f}"


def markdown_table(rows: list[Row]) -> str:
    """Render the summary as a Markdown table (figures, targets and whether they are met)."""
    lines = [
        "| program | residents | input rows | floor s | pipeline s | rows/s | ratio (target) "
        "| peak GB, tree / largest process (≤ 6) | floor peak GB | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if not r.pipeline_ok:
            lines.append(
                f"| {r.program} | {r.residents:,} | {r.input_rows:,} | {r.floor_seconds:.1f} "
                f"| **failed** ({_ended(r.exit_code)}) after {r.pipeline_seconds:.1f} | | "
                f"| {_gb(r.peak_tree_bytes)} / "
                f"{_gb(r.max_process_bytes)} | {_gb(r.floor_peak_bytes)} | {r.load} |"
            )
            continue
        ratio = (
            f"{r.ratio:.2f} (≤ {ratio_target(r.residents)}) {'met' if r.ratio_met else 'NOT met'}"
        )
        wall = f"{r.pipeline_seconds:.1f}"
        if r.residents >= NATIONAL:
            met = "met" if r.pipeline_seconds <= NATIONAL_WALL_TARGET_S else "NOT met"
            wall += f" (≤ {NATIONAL_WALL_TARGET_S:.0f}) {met}"
        memory = f"{_gb(r.peak_tree_bytes)} / {_gb(r.max_process_bytes)} "
        memory += "met" if r.memory_met else "NOT met"
        lines.append(
            f"| {r.program} | {r.residents:,} | {r.input_rows:,} | {r.floor_seconds:.1f} "
            f"| {wall} | {r.rows_per_second:,.0f} | {ratio} | {memory} "
            f"| {_gb(r.floor_peak_bytes)} | {r.load} |"
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Amdahl:
    """Seconds that do not shrink with cores and seconds that do, from two core counts.

    T(n) = serial + parallel / n, solved from runs on `a` and `b` cores (a < b): a projection of
    this machine's runs, not a measurement of others. A pair that gained nothing from more
    cores is all serial; one that gained more than the cores (caches, noise) is all parallel.
    """

    serial: float
    parallel: float

    @classmethod
    def fit(cls, a: int, t_a: float, b: int, t_b: float) -> Amdahl:
        if not 0 < a < b:
            raise ValueError(f"fit runs on fewer cores to runs on more, not {a} to {b}")
        parallel = min(max(0.0, (t_a - t_b) / (1 / a - 1 / b)), t_a * a)
        return cls(t_a - parallel / a, parallel)

    def seconds(self, cores: int) -> float:
        return self.serial + self.parallel / cores

    def cores_for(self, seconds: float) -> int | None:
        """Return the fewest cores projected to take at most `seconds` (None: no number does)."""
        return fewest_cores(lambda n: self.seconds(n) <= seconds)


def fewest_cores(enough: Callable[[int], bool], most: int = 1024) -> int | None:
    """Return the fewest cores, up to `most`, for which `enough(cores)` holds (None: none)."""
    return next((n for n in range(1, most + 1) if enough(n)), None)


REST = "rest"  # a run's time outside its Prefect task runs


def _span(name: str, row: Row) -> float:
    return row.stage_spans[name]


def _rest(row: Row) -> float:
    return row.pipeline_seconds - sum(row.stage_spans.values())


@dataclass(frozen=True)
class Scaling:
    """One program and size measured on fewer cores (`few`) and on the whole machine (`all`)."""

    few: Row
    all: Row

    def fit(self, seconds: Callable[[Row], float]) -> Amdahl:
        """Fit one figure of the two runs, read from each by `seconds`."""
        return Amdahl.fit(self.few.cores, seconds(self.few), self.all.cores, seconds(self.all))

    @functools.cached_property
    def pipeline(self) -> Amdahl:
        return self.fit(lambda r: r.pipeline_seconds)

    @functools.cached_property
    def floor(self) -> Amdahl:
        return self.fit(lambda r: r.floor_seconds)

    def stages(self) -> dict[str, Amdahl]:
        """Fit each Prefect task (its runs' span) both runs had, and the rest of the run."""

        names = [n for n in self.all.stage_spans if n in self.few.stage_spans]
        if not names:
            return {}
        fits = {n: self.fit(functools.partial(_span, n)) for n in names}
        return fits | {REST: self.fit(_rest)}

    def ratio(self, cores: int) -> float:
        return self.pipeline.seconds(cores) / self.floor.seconds(cores)

    def cores_for_ratio(self, target: float) -> int | None:
        return fewest_cores(lambda n: self.ratio(n) <= target)


def scalings(records: list[dict[str, Any]]) -> list[Scaling]:
    """Pair each size's latest whole-machine run with its latest run on fewer cores.

    Only runs of the same commit on the same machine (its CPU count) are paired: a fit across
    two versions of the code would measure the change, not the cores.
    """
    whole = {(r.program, r.residents): r for r in summarise(records) if r.pipeline_ok}
    fewer = sorted({cores_of(r) for r in records if cores_of(r) < (r.get("cpus") or 0)})
    found = []
    for cores in fewer:
        for r in summarise(records, cores):
            other = whole.get((r.program, r.residents))
            if (
                r.pipeline_ok
                and other is not None
                and other.cores > r.cores
                and (other.commit, other.cpus) == (r.commit, r.cpus)
            ):
                found.append(Scaling(r, other))
    return found


def _or_none(n: int | None) -> str:
    return "none" if n is None else str(n)


def scaling_table(found: list[Scaling], projected: tuple[int, ...] = (4, 8, 16)) -> str:
    """Render how each size's time and ratio shrink with cores, and the cores each target needs.

    The 52-million wall target is read off the same fit for that size; the ratio target from
    the pipeline's and the floor's fits together (the floor gains from cores too).
    """
    heads = " | ".join(f"{n} cores s (ratio)" for n in projected)
    lines = [
        "| program | residents | cores: pipeline s / floor s | CPU s, pipeline / floor "
        f"| serial + parallel s | {heads} | cores for the ratio target "
        f"| cores for {NATIONAL_WALL_TARGET_S:.0f} s |",
        "|---|---:|---|---|---:|" + "---:|" * len(projected) + "---:|---:|",
    ]
    for s in found:
        f, a, fit = s.few, s.all, s.pipeline
        measured = "; ".join(
            f"{r.cores}: {r.pipeline_seconds:.1f} / {r.floor_seconds:.1f}" for r in (f, a)
        )
        cpu = "; ".join(
            f"{r.cores}: {_seconds(r.pipeline_cpu_seconds)} / {_seconds(r.floor_cpu_seconds)}"
            for r in (f, a)
        )
        cells = " | ".join(f"{fit.seconds(n):.1f} ({s.ratio(n):.1f}×)" for n in projected)
        target = ratio_target(a.residents)
        wall = _or_none(fit.cores_for(NATIONAL_WALL_TARGET_S)) if a.residents >= NATIONAL else ""
        lines.append(
            f"| {a.program} | {a.residents:,} | {measured} | {cpu} "
            f"| {_fitted(fit)} | {cells} "
            f"| {_or_none(s.cores_for_ratio(target))} (≤ {target}×) | {wall} |"
        )
    staged = [(s, s.stages()) for s in found if s.stages()]
    names = list(dict.fromkeys(n for _, fits in staged for n in fits))
    if staged:
        lines += [
            "",
            "Per stage, serial + parallel s (Prefect task runs' spans; rest: outside them)",
            "",
        ]
        lines.append("| program | residents | " + " | ".join(names) + " |")
        lines.append("|---|---:|" + "---:|" * len(names))
        for s, fits in staged:
            cells = " | ".join(_fitted(fits[n]) if n in fits else "" for n in names)
            lines.append(f"| {s.all.program} | {s.all.residents:,} | {cells} |")
    return "\n".join(lines) + "\n"


def _fitted(fit: Amdahl) -> str:
    return f"{fit.serial:.1f} + {fit.parallel:.1f}"


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"


def phases_table(records: list[dict[str, Any]]) -> str:
    """Render seconds per phase of each recorded pipeline run whose log is still on disk."""
    runs = [r for r in records if r["kind"] == "pipeline" and Path(r.get("log", "")).is_file()]
    rows = [(r, log_phases(Path(r["log"]).read_text(errors="replace"), r["seconds"])) for r in runs]
    names = [p for p, _ in PHASE_MARKS[1:-1]] + ["outside flow"]
    lines = ["| program | residents | total s | " + " | ".join(names) + " |"]
    lines.append("|---|---:|---:|" + "---:|" * len(names))
    for r, phases in rows:
        cells = " | ".join(f"{phases[n]:.1f}" if n in phases else "" for n in names)
        lines.append(f"| {r['program']} | {r['residents']:,} | {r['seconds']:.1f} | {cells} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- measuring


@dataclass
class Measured:
    """What one child process did: wall seconds, exit code, peak memory, its output's tail."""

    seconds: float
    exit_code: int
    peak_tree_bytes: int
    max_process_bytes: int
    output: str
    timeline: list[tuple[float, int]]  # (seconds since start, tree RSS), every TIMELINE_SECONDS
    cpu_seconds: float = 0.0  # user + system, the process and the children it waited for


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def _kill_tree(root: psutil.Process) -> None:
    try:
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            continue


def allowed_env(env: dict[str, str], cores: int | None) -> dict[str, str]:
    """Return ``env`` for a child allowed ``cores`` cores: polars sizes its pool to them."""
    return env if cores is None else env | {"POLARS_MAX_THREADS": str(cores)}


def run_measured(
    command: list[str],
    env: dict[str, str],
    log: Path,
    cap_bytes: int | None = None,
    cores: int | None = None,
) -> Measured:
    """Run ``command``, sampling its process tree's memory; its output goes to ``log``.

    With ``cap_bytes``, the tree is killed (SIGKILL) as soon as its resident memory exceeds it,
    so that a run that would not fit cannot push the shared machine into the OOM killer. With
    ``cores``, the child (and what it starts) may run on the first ``cores`` CPUs only.
    """
    first = None if cores is None else sorted(os.sched_getaffinity(0))[:cores]
    pin = None if first is None else functools.partial(os.sched_setaffinity, 0, first)
    peak = [0]
    timeline: list[tuple[float, int]] = []
    with log.open("wb") as sink:
        start = time.perf_counter()
        child = subprocess.Popen(
            command,
            env=allowed_env(env, cores),
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=pin,  # None without `cores`: no Python between fork and exec
        )
        root = psutil.Process(child.pid)
        done = threading.Event()

        def sample() -> None:
            window = 0
            while not done.is_set():
                rss = _tree_rss(root)
                peak[0] = max(peak[0], rss)
                window = max(window, rss)
                if cap_bytes is not None and rss > cap_bytes:
                    _kill_tree(root)
                    with log.open("ab") as note:
                        note.write(f"\nbench.scale: killed at {rss / 1e9:.2f} GB\n".encode())
                elapsed = time.perf_counter() - start
                if not timeline or elapsed - timeline[-1][0] >= TIMELINE_SECONDS:
                    timeline.append((round(elapsed, 1), window))
                    window = 0
                done.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
    tail = log.read_text(errors="replace").splitlines()[-15:]
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(
        seconds, child.returncode, peak[0], usage.ru_maxrss * 1024, "\n".join(tail), timeline, cpu
    )


def warm_up(data: Path) -> tuple[float, int]:
    """Read every input byte once; return seconds and bytes."""
    start, size = time.perf_counter(), 0
    for files in input_files(data).values():
        for path in files:
            with path.open("rb") as f:
                while chunk := f.read(1 << 24):
                    size += len(chunk)
    return time.perf_counter() - start, size


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrefectServer:
    """A local Prefect server for the benchmark's pipeline runs (started once, stopped at exit)."""

    def __init__(self, home: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        home.mkdir(parents=True, exist_ok=True)
        self.env = os.environ | {"PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false"}
        prefect = Path(sys.executable).parent / "prefect"
        command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        self.log = (home / "server.log").open("wb")
        self.process = subprocess.Popen(
            command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Wait until the API answers its health check; return the seconds it took."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.process.poll() is not None:
                raise SystemExit(f"prefect server exited early; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.5)
        raise SystemExit(f"prefect server not ready after {timeout:.0f} s; see {self.log.name}")

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())

    def stages_since(self, since: dt.datetime) -> dict[str, dict[str, float]]:
        """Return the stage timings of the flow runs (and subflow runs) started after ``since``."""
        try:
            after = {"flow_runs": {"start_time": {"after_": since.isoformat()}}, "limit": 200}
            ids = [run["id"] for run in self.post("/flow_runs/filter", after)]
            if not ids:
                return {}
            task_runs: list[dict[str, Any]] = []
            while True:  # the API answers at most 200 task runs a call
                page = self.post(
                    "/task_runs/filter",
                    {"flow_runs": {"id": {"any_": ids}}, "limit": 200, "offset": len(task_runs)},
                )
                task_runs += page
                if len(page) < 200:
                    return stage_seconds(task_runs)
        except OSError as e:
            print(f"  could not read task runs from the server: {e}", file=sys.stderr)
            return {}

    def stop(self) -> None:
        """Stop the server's process group (the server and the processes it started)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def _git_commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip()


def _append(results: Path, record: dict[str, Any]) -> None:
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def pipeline_command(args: argparse.Namespace, data: Path, out: Path) -> list[str]:
    """Return the `jiwon run` command line for one data folder."""
    jiwon = Path(sys.executable).parent / "jiwon"
    command = [str(jiwon), "run", "--program", args.program, "--registry", str(data / "registry")]
    command += ["--enrollments", str(data / "enrollments"), "--out", str(out)]
    command += ["--run-month", args.run_month]
    if (data / "welfare").is_dir():
        command += ["--welfare", str(data / "welfare")]
    if args.partitions == "none":  # "none": one bucket in memory (the memory store), at any size
        command += ["--store", "memory"]
    else:
        command += ["--partitions", str(args.partitions)]
    return command


def generated(args: argparse.Namespace, rows: int) -> Path:
    """Return a folder of `rows` generated residents for the program, generating it if new."""
    data: Path = args.scratch.parent / f"data-{args.program}-{rows}"
    if not (data / "registry").is_dir():
        jiwon = Path(sys.executable).parent / "jiwon"
        began = time.perf_counter()
        subprocess.run(
            [
                *(str(jiwon), "fixtures", "generate", "--program", args.program),
                *("--scope", "national", "--rows", str(rows), "--seed", "1", "--out", str(data)),
            ],
            check=True,
        )
        print(f"generated {rows:,} residents in {time.perf_counter() - began:.0f} s: {data}")
    return data


def bench_one(args: argparse.Namespace, data: Path, server: PrefectServer) -> None:
    """Measure the floor and the pipeline on one data folder; append both records."""
    bench_id = uuid.uuid4().hex[:12]
    scratch: Path = args.scratch / bench_id
    scratch.mkdir(parents=True)
    common = {
        "bench_id": bench_id,
        "program": args.program,
        "data": str(data),
        "commit": _git_commit(),
        "note": args.note,
        "cpus": os.cpu_count() or 0,
        # what the floor and the pipeline were allowed (a bench under taskset: fewer than cpus)
        "cores": args.cores or len(os.sched_getaffinity(0)),
        "memory_bytes": psutil.virtual_memory().total,
    }
    warm_seconds, input_bytes = warm_up(data)
    print(f"{data}: {input_bytes / 1e9:.2f} GB of CSV read once in {warm_seconds:.1f} s")
    env = dict(os.environ)
    load_before = list(os.getloadavg())
    floor = run_measured(
        [sys.executable, "-m", "bench.floor", str(data), str(scratch / "floor")],
        env,
        scratch / "floor.log",
        cores=args.cores,
    )
    if floor.exit_code != 0:
        raise SystemExit(f"floor failed on {data}:\n{floor.output}")
    sunk = json.loads(floor.output.splitlines()[-1])
    rows = sunk["rows"]
    residents = int(rows["registry"])
    input_rows = int(rows["registry"]) + int(rows["enrollments"])
    sizes = {"residents": residents, "input_rows": input_rows, "rows": rows}
    record = common | sizes | {"kind": "floor", "when": dt.datetime.now(dt.UTC).isoformat()}
    record |= {
        "seconds": sunk["seconds"],
        "process_seconds": floor.seconds,
        "cpu_seconds": floor.cpu_seconds,
        "exit_code": 0,
        "peak_tree_bytes": floor.peak_tree_bytes,
        "max_process_bytes": floor.max_process_bytes,
        "input_bytes": input_bytes,
        "warm_up_seconds": warm_seconds,
        "load_before": load_before,
        "load_after": list(os.getloadavg()),
    }
    _append(args.results, record)
    print(f"  floor: {sunk['seconds']:.1f} s sinking, {floor.peak_tree_bytes / 1e9:.2f} GB peak")
    shutil.rmtree(scratch / "floor")
    env |= {
        "JIWON_PII_KEY": PII_KEY,
        "JIWON_SIGNING_KEY": env.get("JIWON_SIGNING_KEY", SIGNING_KEY),
        "JIWON_ANCHOR_DIR": str(scratch / "anchors"),  # each measurement's trail is new
        "PREFECT_API_URL": server.url,
    }
    command = pipeline_command(args, data, scratch / "out")
    load_before = list(os.getloadavg())
    started = dt.datetime.now(dt.UTC)
    cap = int(args.memory_cap_gb * 1e9)
    pipe = run_measured(command, env, scratch / "pipeline.log", cap_bytes=cap, cores=args.cores)
    (scratch / "memory.csv").write_text(
        "seconds,tree_rss_bytes\n" + "".join(f"{t},{b}\n" for t, b in pipe.timeline)
    )
    record = common | sizes | {"kind": "pipeline", "when": dt.datetime.now(dt.UTC).isoformat()}
    record |= {
        "seconds": pipe.seconds,
        "cpu_seconds": pipe.cpu_seconds,
        "exit_code": pipe.exit_code,
        "peak_tree_bytes": pipe.peak_tree_bytes,
        "max_process_bytes": pipe.max_process_bytes,
        "command": command[1:],
        "partitions": args.partitions,
        "output_tail": pipe.output,
        "stages": server.stages_since(started),
        "out_bytes": sum(p.stat().st_size for p in (scratch / "out").rglob("*") if p.is_file()),
        "load_before": load_before,
        "load_after": list(os.getloadavg()),
        "log": str(scratch / "pipeline.log"),
        "memory_cap_bytes": cap,
        "started": started.isoformat(),
        "memory_timeline": pipe.timeline,  # [seconds since start, peak tree RSS in that window]
    }
    _append(args.results, record)
    verdict = "ok" if pipe.exit_code == 0 else f"FAILED (exit {pipe.exit_code})"
    print(
        f"  pipeline: {verdict}, {pipe.seconds:.1f} s, peak {pipe.peak_tree_bytes / 1e9:.2f} GB "
        f"(largest process {pipe.max_process_bytes / 1e9:.2f} GB), "
        f"ratio {pipe.seconds / sunk['seconds']:.2f}, {pipe.cpu_seconds:.1f} CPU s"
    )
    if pipe.exit_code != 0:
        print(pipe.output, file=sys.stderr)
    if not args.keep:
        shutil.rmtree(scratch / "out", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--data", type=Path, nargs="+", default=[])
    parser.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[],
        help="generate national residents (kept in SCRATCH/../data-N for the next time)",
    )
    parser.add_argument("--program", default="national-relief-2020")
    parser.add_argument("--run-month", default=None, help="default: month the last window ends")
    parser.add_argument("--partitions", default="auto", help="N or auto (the engine's choice)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/jiwon-bench/scratch"))
    parser.add_argument("--note", default="", help="free text kept with the records")
    parser.add_argument(
        "--memory-cap-gb", type=float, default=16.0, help="kill the run above this (shared machine)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the pipeline's output")
    parser.add_argument(
        "--cores", type=int, default=None, help="allow the floor and the pipeline N cores only"
    )
    parser.add_argument(
        "--scaling", action="store_true", help="print how time shrinks with cores (recorded)"
    )
    parser.add_argument("--summary", action="store_true", help="print the recorded table")
    parser.add_argument("--phases", action="store_true", help="print seconds per phase (logs)")
    args = parser.parse_args()
    if args.summary or args.phases or args.scaling:
        records = read_results(args.results)
        if args.scaling:
            print(scaling_table(scalings(records)), end="")
        else:
            print(
                markdown_table(summarise(records)) if args.summary else phases_table(records),
                end="",
            )
        return
    if args.cores is not None and not 0 < args.cores <= len(os.sched_getaffinity(0)):
        parser.error(f"--cores must be between 1 and {len(os.sched_getaffinity(0))}")
    args.data += [generated(args, n) for n in args.rows]
    if not args.data:
        parser.error("give --data DIR or --rows N (or --summary)")
    from rules.program import load_program

    program = load_program(args.program)
    if args.run_month is None:
        args.run_month = default_run_month(p.window.end for p in program.populations)
    server = PrefectServer(args.scratch / "prefect-home")
    try:
        print(f"prefect server on {server.url} ready in {server.wait_ready():.1f} s (not counted)")
        for data in args.data:
            bench_one(args, data, server)
    finally:
        server.stop()
    print(markdown_table(summarise(read_results(args.results))), end="")


if __name__ == "__main__":
    main()
