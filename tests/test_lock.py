"""The program lock: one run per program and output root, released however its holder ends."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.errors import RunHalted
from flows.run.lock import lock_file, program_lock

HOLD = """
import sys, time
from pathlib import Path
from flows.run.lock import program_lock
with program_lock(Path(sys.argv[1]), "p", "run-held", "2025-03-01T06:00:00+00:00"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_second_holder_of_the_same_program_halts_naming_the_first(tmp_path: Path) -> None:
    with program_lock(tmp_path, "p", "run-1", "t1"):
        with pytest.raises(RunHalted) as halted, program_lock(tmp_path, "p", "run-2", "t2"):
            pass
        assert halted.value.exit_code == 4
        assert str(halted.value).startswith("run halted: run run-1 (pid ")
        with program_lock(tmp_path, "q", "run-3", "t3"):  # another program is not blocked
            pass
    with program_lock(tmp_path, "p", "run-4", "t4"):  # released at the end of the block
        assert '"run-4"' in lock_file(tmp_path, "p").read_text()


def test_the_lock_of_a_sigkilled_process_is_free_at_once(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(RunHalted, match=r"run run-held \(pid \d+, started 2025-03-01"),
            program_lock(tmp_path, "p", "run-2", "t2"),
        ):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    started = time.monotonic()
    with program_lock(tmp_path, "p", "run-3", "t3"):
        assert time.monotonic() - started < 1.0
