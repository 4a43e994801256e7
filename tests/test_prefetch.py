"""A city's delivery read while Prefect starts the run is decided as if the run had read it.

`jiwon run` reads the delivery's files and validates the registry in a thread while Prefect's
temporary server starts and Prefect creates the flow run (`flows.run.prefetch`, issue 16); the
run takes those results only for files that are still the ones read. These tests try to make
the run decide something other than the files it was given: a file replaced, shortened or
removed after the early read, and the whole command against the flow alone, which reads
nothing early.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flows.decide.rules import RunContext
from flows.inputs.ingest import list_delivery
from flows.run import prefetch
from flows.run.lock import lock_file
from rules.program import load_program
from tests.conftest import TEST_KEY
from tests.support.exactly_once import assert_exactly_once, committed_payments
from tests.support.flowrun import decisions, run_flow
from tests.support.frames import decide_written
from tests.support.processes import env, finish, kill, own_server_env, run_args, start

PROGRAM = "paju-livelihood-2025"
VARYING = ["run_id", "decided_at"]  # differ between any two runs
ORDER = ["source_kind", "source_file", "source_row"]


@pytest.fixture(autouse=True)
def nothing_warmed() -> Iterator[None]:
    prefetch._warmed.clear()
    yield
    prefetch._warmed.clear()


def context() -> RunContext:
    at = dt.datetime(2025, 3, 2, tzinfo=dt.UTC)
    return RunContext("test-run", load_program(PROGRAM), "2025-03", at, TEST_KEY)


def warm(data: Path) -> int:
    """Warm the delivery under `data` as `jiwon run` does; return its number of files."""
    registry = list_delivery(data / "registry", "registry")
    enrollment = list_delivery(data / "enrollments", "enrollment")
    prefetch.warm(load_program(PROGRAM), registry, enrollment)
    return len(registry) + len(enrollment)


def test_a_delivery_read_early_is_decided_exactly_as_one_the_run_reads_itself(story: Path) -> None:
    read_by_run = decide_written(story, context())
    files = warm(story)
    read_early = decide_written(story, context())
    assert prefetch.taken() == files  # every file's early read was used, none read twice
    assert read_early[0] == read_by_run[0] and read_early[2] == read_by_run[2]
    assert_frame_equal(read_early[1], read_by_run[1])
    assert not prefetch._warmed.files and not prefetch._warmed.chunks  # each taken once


def rewrite(path: Path, drop_last_row: bool) -> None:
    """Write a file again: the same bytes, or without its last row (a corrected extract)."""
    body = path.read_bytes()
    if drop_last_row:
        body = body[: body.rstrip(b"\n").rfind(b"\n") + 1]
    path.write_bytes(body)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))


@pytest.mark.parametrize("folder", ["registry", "enrollments"])
@pytest.mark.parametrize("drop_last_row", [True, False])
def test_a_file_replaced_after_the_early_read_is_read_again_as_it_is_now(
    story: Path, folder: str, drop_last_row: bool
) -> None:
    warm(story)
    rewrite(sorted((story / folder).glob("*.csv"))[0], drop_last_row)
    read_by_run = decide_written(story, context())
    # even rewritten with the same bytes, the file (and a registry file's whole chunk) is read
    # again: the early read is trusted only for files nobody wrote since
    files = sum(1 for _ in story.glob("*/*"))
    assert 0 < prefetch.taken() < files
    prefetch._warmed.clear()
    fresh = decide_written(story, context())
    assert read_by_run[0] == fresh[0]
    assert_frame_equal(read_by_run[1], fresh[1])


def test_a_file_removed_after_the_early_read_is_not_decided_from_memory(story: Path) -> None:
    warm(story)
    removed = sorted((story / "enrollments").glob("*.csv"))[-1]
    removed.unlink()
    decided = decide_written(story, context())[1]
    assert removed.name not in decided["source_file"].to_list()


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_backend")
@pytest.mark.parametrize("server", ["temporary", "running"])
def test_jiwon_run_reads_the_delivery_while_its_server_starts_and_decides_the_same(
    server: str, story: Path, tmp_path: Path, pii_key: str
) -> None:
    if server == "temporary":
        environ = own_server_env(tmp_path / "home", TEST_KEY, PREFECT_LOGGING_LEVEL="INFO")
    else:
        environ = env(TEST_KEY, tmp_path) | {"PREFECT_LOGGING_LEVEL": "INFO"}
    code, _, err = finish(start(run_args(story, tmp_path / "early"), environ), timeout=300)
    assert code == 0, err
    # only a temporary server leaves a wait to fill; against a running one nothing is read early
    read_early = "input files were read early, while Prefect started the run" in err
    assert read_early == (server == "temporary")
    run_flow(story, tmp_path / "late")  # the flow alone reads nothing early
    early, late = (decisions(tmp_path / n).drop(VARYING).sort(ORDER) for n in ("early", "late"))
    assert early.height == late.height > 0
    assert_frame_equal(early, late)
    assert early.filter(pl.col("outcome") == "PAID").height > 0
    assert not prefetch._warmed.files and not prefetch._warmed.chunks


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_backend")
def test_a_run_killed_while_its_spill_waits_for_the_early_read_is_finished_by_the_next(
    story: Path, tmp_path: Path, pii_key: str
) -> None:
    """SIGKILL a real `jiwon run` (and its temporary server) holding the program's lock, its
    spill waiting for an early read that is stuck on its first file; the rerun pays once."""
    run_flow(story, tmp_path / "clean")
    clean = committed_payments(tmp_path / "clean")
    held, out = tmp_path / "held", tmp_path / "out"
    spill = held.with_name("held.spill")
    environ = own_server_env(tmp_path / "home", TEST_KEY, JIWON_TEST_HELD=str(held))
    hook = "import tests.support.held_warm; from flows.cli import main; main()"
    victim = start([sys.executable, "-c", hook, *run_args(story, out)[1:]], environ)
    began, locked = time.monotonic(), False
    try:
        while not spill.exists() and victim.poll() is None and time.monotonic() - began < 120:
            time.sleep(0.01)
        locked = lock_file(out, PROGRAM).exists()
    finally:
        err = kill(victim)
    assert spill.exists(), f"the run's spill never waited for the early read:\n{err[-3000:]}"
    assert Path(held.read_text(encoding="utf-8")).parent.parent == story  # held on a delivery file
    assert locked, "the run was killed before it held the program's lock"
    # (its spill was waiting, so it had not committed: the rerun below is the real check)
    rerun = run_args(story, out, "--trigger", "rerun", "--reason", "the last run was killed")
    code, _, err = finish(start(rerun, env(TEST_KEY, tmp_path)))
    assert code == 0, err
    assert_exactly_once(out, clean)


def test_a_file_replaced_with_its_old_size_and_modification_time_is_read_again(
    story: Path,
) -> None:
    """A corrected extract copied in with `cp -p` (same size, old mtime, often the old inode)."""
    warm(story)
    path = sorted((story / "enrollments").glob("*.csv"))[0]
    before = path.stat()
    body = bytearray(path.read_bytes())
    at = body.rindex(b"2025-")  # one digit of a date in the last row, same length
    body[at + 3] = ord("6") if body[at + 3] != ord("6") else ord("7")
    path.unlink()
    path.write_bytes(bytes(body))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    read_by_run = decide_written(story, context())
    assert prefetch.taken() == sum(1 for _ in story.glob("*/*")) - 1  # that one read again
    prefetch._warmed.clear()
    assert_frame_equal(read_by_run[1], decide_written(story, context())[1])


def test_a_run_that_ended_stops_the_early_read_between_files(story: Path) -> None:
    prefetch._warmed.stop.set()
    try:
        warm(story)
    finally:
        prefetch._warmed.stop.clear()
    assert not prefetch._warmed.files and not prefetch._warmed.chunks


def test_what_the_early_read_made_and_counted_leaves_with_the_command(story: Path) -> None:
    def early() -> None:
        warm(story)

    with prefetch.alongside(early):
        prefetch.settle()
        assert prefetch._warmed.chunks and prefetch._warmed.files
        prefetch._count(3)  # as if the run took some, then was refused
    assert not prefetch._warmed.files and not prefetch._warmed.chunks
    assert prefetch.taken() == 0


def test_a_crash_while_reading_early_is_silent_and_leaves_the_work_to_the_run(
    capfd: pytest.CaptureFixture[str],
) -> None:
    def panics() -> None:
        raise pl.exceptions.PanicException("900101-1234567 in a cell")

    with prefetch.alongside(panics):
        prefetch.settle()
    assert capfd.readouterr().err == ""
