"""One run per program at a time: an OS file lock that dies with the process holding it.

`OUT/.locks/<program>.lock` is locked with `fcntl.flock` for the whole run and holds the holder's
run id, process id and start time. The kernel releases the lock when the holder exits or is killed
(SIGKILL included), so a crash never leaves a program locked; a second run finds the lock taken,
reads who holds it and halts (exit 4) without touching the trail
(docs/decisions/0009-program-lock-and-crash-proof.md).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flows.errors import RunHalted
from flows.i18n import _

LOCKS = ".locks"


def lock_file(out: Path, program: str) -> Path:
    """Return the lock file of a program under the output root."""
    return out / LOCKS / f"{program}.lock"


def holder(path: Path, wait_s: float = 2.0) -> dict[str, object]:
    """Return what the current holder wrote into the lock file (it writes just after locking)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            text = path.read_text()
            if text.strip():
                found: dict[str, object] = json.loads(text)
                return found
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return {}
        time.sleep(0.05)


def take(fd: int) -> bool:
    """Try to lock the file without waiting; return whether this process now holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def program_lock(out: Path, program: str, run_id: str, started_at: str) -> Iterator[None]:
    """Hold the program's lock for the block; halt (exit 4) naming the holder if it is taken."""
    path = lock_file(out, program)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():  # never through a link planted in the output root (to the anchor...)
        raise RunHalted(
            _(
                "run halted: the lock file {path} is a symbolic link, which no "
                "run makes; nothing was paid. Someone changed the output root: "
                "remove the link, check the trail with `jiwon audit verify`, and "
                "run again."
            ).format(path=path)
        )
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        if not take(fd):
            held = holder(path)
            if held or not take(fd):  # an empty note: the holder may have just finished
                who = _("another run that is just starting or finishing")
                if held:
                    who = f"run {held.get('run_id')} (pid {held.get('pid')}, "
                    who += f"started {held.get('started_at')})"
                raise RunHalted(
                    _(
                        "run halted: {who} holds program {program} in {out}; nothing was "
                        "paid. Wait for it to finish and read its summary; run again "
                        "only if it did not commit."
                    ).format(who=who, program=program, out=out)
                )
        body = json.dumps({"run_id": run_id, "pid": os.getpid(), "started_at": started_at})
        os.ftruncate(fd, 0)
        os.pwrite(fd, body.encode(), 0)
        os.fsync(fd)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # the lock file stays; only its holder's note is cleared
    finally:
        os.close(fd)  # closing the only descriptor releases the lock
