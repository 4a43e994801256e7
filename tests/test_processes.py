"""Real `jiwon run` processes: SIGKILLed at random moments, or two at once on one program.

Repetitions and population size are parameters (`--kill-reps`, `--kill-rows`, `--kill-seed`); the
default suite runs a few repetitions on a small population, `--runslow` many on a larger one.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import polars as pl
import pytest

from fixtures.generate import generate_population, write_population
from flows.lock import lock_file
from tests.conftest import TEST_KEY
from tests.exactly_once import PROGRAM, assert_exactly_once, committed_payments
from tests.processes import JIWON, env, finish, kill, run_args, start

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_backend")]


@pytest.fixture(scope="module")
def population(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated population (with its usual faults) written as extract files."""
    rows = request.config.getoption("--kill-rows")
    rows = rows if rows else (20_000 if request.config.getoption("--runslow") else 3_000)
    data = tmp_path_factory.mktemp("population")
    write_population(generate_population(rows, seed=11), data)
    return data


@pytest.fixture(scope="module")
def clean_run(
    population: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[pl.DataFrame, float]:
    """Who one uninterrupted `jiwon run` pays, and how long that process took."""
    out = tmp_path_factory.mktemp("clean") / "out"
    began = time.monotonic()
    code, _, err = finish(start(run_args(population, out), env(TEST_KEY, out.parent)))
    took = time.monotonic() - began
    assert code == 0, err
    return committed_payments(out), took


def kill_moments(reps: int, seed: int, took: float) -> list[float]:
    """Return when to kill each run: half anywhere in it, half in its last third (the writes)."""
    rng = random.Random(seed)
    return [
        rng.uniform(0.0, took * 1.05) if i % 2 == 0 else rng.uniform(took * 0.65, took * 1.05)
        for i in range(reps)
    ]


def test_runs_sigkilled_at_random_moments_then_rerun_pay_everyone_owed_exactly_once(
    request: pytest.FixtureRequest,
    population: Path,
    clean_run: tuple[pl.DataFrame, float],
    tmp_path: Path,
) -> None:
    clean, took = clean_run
    reps = request.config.getoption("--kill-reps")
    reps = reps if reps else (12 if request.config.getoption("--runslow") else 1)
    seed = request.config.getoption("--kill-seed")
    seen: list[str] = []
    for rep, moment in enumerate(kill_moments(reps, seed, took)):
        out = tmp_path / f"out-{rep}"
        environ = env(TEST_KEY, tmp_path)
        victim = start(run_args(population, out), environ)
        time.sleep(moment)
        kill(victim)
        runs = sorted((out / "audit/runs").rglob("*.parquet")) if out.exists() else []
        seen.append(f"killed at {moment:.2f}s: {'committed' if runs else 'not committed'}")
        code, _, err = finish(
            start(run_args(population, out, "--trigger", "rerun", "--reason", "killed"), environ)
        )
        assert code == 0, f"rep {rep} ({seen[-1]}): {err}"
        assert_exactly_once(out, clean)
        code, _, err = finish(start([str(JIWON), "audit", "verify", "--out", str(out)], environ))
        assert code == 0, f"rep {rep} ({seen[-1]}): jiwon audit verify: {err}"
    print(f"clean run took {took:.1f}s;", "; ".join(seen))


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
