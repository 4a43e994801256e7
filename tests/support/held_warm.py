"""Run `jiwon` with its early read held on its first file: `python -c` imports this first.

For a test that SIGKILLs a real `jiwon run` exactly while its thread reads the delivery early
(`flows.run.prefetch`): the thread writes the file's path to `$JIWON_TEST_HELD` and sleeps
there; the run's spill waits for it, so the process is killed with the early read unfinished.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from flows.run import prefetch

_read_file = prefetch.read_file


def _held(path: Path, kind: Any) -> Any:
    if threading.current_thread().name == "jiwon-warm":
        Path(os.environ["JIWON_TEST_HELD"]).write_text(str(path), encoding="utf-8")
        time.sleep(3600)
    return _read_file(path, kind)


prefetch.read_file = _held  # type: ignore[assignment]
