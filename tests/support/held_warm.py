"""Run `jiwon` with its early read held on its first file: `python -c` imports this first.

For a test that SIGKILLs a real `jiwon run` in the middle of its run with its early read
unfinished (`flows.run.prefetch`). The early-read thread holds on its first file and writes the
file's path to `$JIWON_TEST_HELD`; once the run's spill waits for that thread (`settle`, called
from the flow's own thread, with the program's lock held), it writes `$JIWON_TEST_HELD.spill`.
Each marker appears whole (written aside, then renamed). The held thread ends the process if the
test that started it is gone (its parent changed), so nothing is left waiting for an hour.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from flows.run import prefetch

_read_file = prefetch.read_file
_settle = prefetch.settle
_parent = os.getppid()


def _mark(path: Path, text: str) -> None:
    aside = path.with_name(path.name + ".partial")
    aside.write_text(text, encoding="utf-8")
    os.replace(aside, path)


def _held(path: Path, kind: Any) -> Any:
    if threading.current_thread().name == "jiwon-warm":
        _mark(Path(os.environ["JIWON_TEST_HELD"]), str(path))
        while os.getppid() == _parent:
            time.sleep(0.2)
        os._exit(1)
    return _read_file(path, kind)


def _waiting() -> None:
    if threading.current_thread().name != "jiwon-warm":
        spill = Path(os.environ["JIWON_TEST_HELD"] + ".spill")
        if not spill.exists():
            _mark(spill, threading.current_thread().name)
    _settle()


prefetch.read_file = _held  # type: ignore[assignment]
prefetch.settle = _waiting
