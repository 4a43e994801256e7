"""Real `jiwon run` processes: SIGKILLed at random moments, or two at once on one program.

Repetitions and population size are parameters (`--kill-reps`, `--kill-rows`, `--kill-seed`); the
default suite runs a few repetitions on a small population, `--runslow` many on a larger one.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import time
from pathlib import Path

import polars as pl
import pytest

from fixtures.generate import generate_population, write_population
from flows.run.lock import lock_file
from tests.conftest import TEST_KEY
from tests.support.exactly_once import PROGRAM, assert_exactly_once, committed_payments
from tests.support.processes import JIWON, env, finish, kill, run_args, start

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend")]


SMALL, LARGE = 3_000, 20_000


class Populations:
    """Generated populations (with their usual faults) and one clean run of each, made once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: dict[tuple[int, tuple[str, ...]], tuple[Path, pl.DataFrame, float]] = {}

    def get(self, rows: int, *extra: str) -> tuple[Path, pl.DataFrame, float]:
        """Return the extract folder, who a clean `jiwon run` pays, and when it committed.

        `extra`: more `jiwon run` options (e.g. `--partitions 3`), timed on their own.
        """
        if (rows, extra) not in self.made:
            data = self.root / f"population-{rows}"
            if not data.exists():
                write_population(generate_population(rows, seed=11), data)
            out = self.root / f"clean-{rows}-{len(self.made)}" / "out"
            began = time.monotonic()
            process = start(run_args(data, out, *extra), env(TEST_KEY, out.parent))
            took = 0.0  # until its run record (the commit point) appears
            while process.poll() is None and not took:
                time.sleep(0.02)
                if (out / "audit/runs").is_dir() and any((out / "audit/runs").rglob("*.parquet")):
                    took = time.monotonic() - began
            code, _, err = finish(process)
            took = took or time.monotonic() - began
            assert code == 0, err
            self.made[rows, extra] = (data, committed_payments(out), took)
        return self.made[rows, extra]


@pytest.fixture(scope="module")
def populations(tmp_path_factory: pytest.TempPathFactory) -> Populations:
    return Populations(tmp_path_factory.mktemp("populations"))


@pytest.fixture(scope="module")
def population(populations: Populations) -> Path:
    return populations.get(SMALL)[0]


@pytest.fixture(scope="module")
def clean_run(populations: Populations) -> tuple[pl.DataFrame, float]:
    _, clean, took = populations.get(SMALL)
    return clean, took


def kill_moments(reps: int, seed: int, took: float) -> list[float]:
    """Return when to kill each run: half anywhere up to its commit, half near the commit."""
    rng = random.Random(seed)
    return [
        rng.uniform(0.0, took * 1.1) if i % 2 == 0 else rng.uniform(took * 0.8, took * 1.05)
        for i in range(reps)
    ]


def kill_and_rerun(
    data: Path,
    clean: pl.DataFrame,
    took: float,
    reps: int,
    seed: int,
    tmp_path: Path,
    *extra: str,
) -> None:
    """SIGKILL a run at a random moment, run again normally, check exactly-once; `reps` times."""
    seen: list[str] = []
    for rep, moment in enumerate(kill_moments(reps, seed, took)):
        out = tmp_path / f"out-{rep}"
        environ = env(TEST_KEY, tmp_path)
        victim = start(run_args(data, out, *extra), environ)
        time.sleep(moment)
        kill(victim)
        runs = sorted((out / "audit/runs").rglob("*.parquet")) if out.exists() else []
        seen.append(f"killed at {moment:.2f}s: {'committed' if runs else 'not committed'}")
        rerun = run_args(
            data, out, *extra, "--trigger", "rerun", "--reason", "the last run was killed"
        )
        code, _, err = finish(start(rerun, environ))
        assert code == 0, f"rep {rep} ({seen[-1]}): {err}"
        assert_exactly_once(out, clean)
        code, _, err = finish(start([str(JIWON), "audit", "verify", "--out", str(out)], environ))
        assert code == 0, f"rep {rep} ({seen[-1]}): jiwon audit verify: {err}"
    print(f"a clean run committed after {took:.1f}s;", "; ".join(seen))


def test_a_run_sigkilled_at_a_random_moment_then_rerun_pays_everyone_owed_exactly_once(
    request: pytest.FixtureRequest, populations: Populations, tmp_path: Path
) -> None:
    data, clean, took = populations.get(SMALL)
    reps = request.config.getoption("--kill-reps") or 1
    kill_and_rerun(data, clean, took, reps, request.config.getoption("--kill-seed"), tmp_path)


def test_a_partitioned_run_sigkilled_at_a_random_moment_then_rerun_pays_each_person_once(
    request: pytest.FixtureRequest, populations: Populations, tmp_path: Path
) -> None:
    data, clean, took = populations.get(SMALL, "--partitions", "3")
    reps = request.config.getoption("--kill-reps") or 1
    seed = request.config.getoption("--kill-seed") + 500
    kill_and_rerun(data, clean, took, reps, seed, tmp_path, "--partitions", "3")


@pytest.mark.slow
def test_many_partitioned_runs_sigkilled_each_leave_exactly_once_after_a_rerun(
    request: pytest.FixtureRequest, populations: Populations, tmp_path: Path
) -> None:
    rows = request.config.getoption("--kill-rows") or LARGE
    data, clean, took = populations.get(rows, "--partitions", "3")
    reps = request.config.getoption("--kill-reps") or 8
    seed = request.config.getoption("--kill-seed") + 2000
    kill_and_rerun(data, clean, took, reps, seed, tmp_path, "--partitions", "3")


@pytest.mark.slow
def test_many_runs_sigkilled_on_a_larger_population_each_leave_exactly_once_after_a_rerun(
    request: pytest.FixtureRequest, populations: Populations, tmp_path: Path
) -> None:
    data, clean, took = populations.get(request.config.getoption("--kill-rows") or LARGE)
    reps = request.config.getoption("--kill-reps") or 12
    seed = request.config.getoption("--kill-seed") + 1000
    kill_and_rerun(data, clean, took, reps, seed, tmp_path)


def test_a_second_run_of_a_busy_program_halts_with_exit_4_naming_the_holder(
    population: Path, clean_run: tuple[pl.DataFrame, float], tmp_path: Path
) -> None:
    clean, _ = clean_run
    out = tmp_path / "out"
    environ = env(TEST_KEY, tmp_path)
    first = start(run_args(population, out), environ)
    lock = lock_file(out, PROGRAM)
    deadline = time.monotonic() + 120
    holder: dict[str, object] = {}
    while not holder and time.monotonic() < deadline and first.poll() is None:
        try:
            holder = json.loads(lock.read_text() or "{}")
        except (OSError, ValueError):
            time.sleep(0.01)
    assert holder, "the first run never took the program lock"
    first.send_signal(signal.SIGSTOP)  # hold it mid-run while the second one starts
    try:
        code, _, err = finish(start(run_args(population, out), environ), timeout=120)
    finally:
        first.send_signal(signal.SIGCONT)
    assert code == 4
    last = err.strip().splitlines()[-1]  # the one line the command prints (after Prefect's log)
    assert last.startswith(f"run halted: run {holder['run_id']} (pid ")
    assert f"holds program {PROGRAM} in {out}; nothing was paid" in last
    assert finish(first)[0] == 0
    runs = pl.read_parquet(out / "audit/runs/**/*.parquet")
    assert runs["run_id"].to_list() == [holder["run_id"]]  # the halted run wrote nothing
    assert_exactly_once(out, clean)


@pytest.mark.slow
def test_two_runs_started_together_never_both_pay(
    population: Path, clean_run: tuple[pl.DataFrame, float], tmp_path: Path
) -> None:
    clean, _ = clean_run
    out = tmp_path / "out"
    environ = env(TEST_KEY, tmp_path)
    both = [start(run_args(population, out), environ) for _ in range(2)]
    codes = sorted(finish(p)[0] for p in both)
    assert codes in ([0, 0], [0, 4])  # overlapped: one halts; one after the other: pays nobody
    runs = pl.read_parquet(out / "audit/runs/**/*.parquet")
    assert (runs["total_paid_krw"] > 0).sum() == 1
    assert_exactly_once(out, clean)


def split_deliveries(data: Path, root: Path) -> list[list[Path]]:
    """Split the enrollment files into three deliveries: online in two halves, then office."""
    online = pl.read_csv(data / "enrollments/enrollments_online.csv", infer_schema=False)
    half = online.height // 2
    parts = root / "parts"
    parts.mkdir()
    first, second = parts / "enrollments_online_1.csv", parts / "enrollments_online_2.csv"
    online.head(half).write_csv(first)
    online.tail(online.height - half).write_csv(second)
    return [[first], [second], [data / "enrollments/enrollments_office.csv"]]


def deliver(files: list[Path], data: Path, folder: Path) -> Path:
    """Return a delivery folder: the population's registry and the enrollment files so far."""
    (folder / "enrollments").mkdir(parents=True, exist_ok=True)
    if not (folder / "registry").exists():
        shutil.copytree(data / "registry", folder / "registry")
    for f in files:
        (folder / "enrollments" / f.name).write_bytes(f.read_bytes())
    return folder


@pytest.mark.slow
def test_kills_across_several_deliveries_on_one_trail_still_pay_each_person_once(
    request: pytest.FixtureRequest, populations: Populations, tmp_path: Path
) -> None:
    data, _, took = populations.get(LARGE)
    deliveries = split_deliveries(data, tmp_path)
    environ = env(TEST_KEY, tmp_path)
    expected = []
    clean_out, clean_in = tmp_path / "clean-out", tmp_path / "clean-in"
    for files in deliveries:  # the same deliveries, never interrupted
        code, _, err = finish(start(run_args(deliver(files, data, clean_in), clean_out), environ))
        assert code == 0, err
        expected.append(committed_payments(clean_out))
    assert expected[0].height < expected[1].height < expected[2].height
    out, delivered = tmp_path / "out", tmp_path / "in"
    moments = kill_moments(len(deliveries), request.config.getoption("--kill-seed") + 7, took)
    for files, moment, clean in zip(deliveries, moments, expected, strict=True):
        folder = deliver(files, data, delivered)
        victim = start(run_args(folder, out), environ)
        time.sleep(moment)
        kill(victim)
        rerun = run_args(folder, out, "--trigger", "rerun", "--reason", "the last run was killed")
        code, _, err = finish(start(rerun, environ))
        assert code == 0, err
        assert_exactly_once(out, clean)
    code, _, err = finish(start([str(JIWON), "audit", "verify", "--out", str(out)], environ))
    assert code == 0, err
