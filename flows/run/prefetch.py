"""Read a city's delivery while `jiwon run` waits for Prefect (issue 16).

Once its options are checked, `jiwon run` waits for Prefect's temporary server (it answers about
4 s after the command began; `flows.run.server`) and for Prefect to create the flow run; the
run's lock and ledger checks follow. Meanwhile (`alongside`, `warm`) a thread reads every
delivery file (bytes, SHA-256, CSV) and validates the registry's chunks, and the run's spill
takes those results (`registry_chunk`, `read`) instead of doing the same work again, waiting
for the thread if it has not finished.

A result is taken only if every file it was made from is still the one read: same path, device,
inode, size, modification and change times (`signature`; the change time cannot be set back,
so a file replaced or rewritten with its old modification time is read again, as it is then).
The run records the SHA-256 of the bytes it decided in either case: a file's frame and hash
come from one read. Only a run decided in memory (a city, one bucket) warms: the results wait
in memory until its steps take them, each once; what was not taken is dropped when the command's
flow ends, and a run that ends early stops the thread between files. Anything that fails while
warming is dropped and left to the run, so a refusal is the run's own, with its logs, task
states and run record. Runs started otherwise (`jiwon serve`'s deployments, the flow called
directly) read when they spill, as before.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from flows.checks.validate import validate_files
from flows.inputs.ingest import InputFile, Kind, chunks, read_file
from rules.program import Program

# path, device, inode, size, modification and change times (ns)
Signature = tuple[str, int, int, int, int, int]
Chunk = tuple[list[InputFile], pl.DataFrame, pl.DataFrame]  # files, checked rows, quarantine


def signature(path: Path) -> Signature:
    """Return what says a file is still the one read (`os.stat` of its path)."""
    st = os.stat(path)
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass
class Warmed:
    """Results made before the run asked for them, each kept with its files' signatures."""

    files: dict[Signature, tuple[Kind, pl.DataFrame, InputFile]] = field(default_factory=dict)
    chunks: dict[tuple[str, tuple[Signature, ...]], Chunk] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    taken: int = 0  # files whose results the run took
    thread: threading.Thread | None = None  # warming now (`alongside`)
    stop: threading.Event = field(default_factory=threading.Event)  # the run has ended

    def clear(self) -> None:
        with self.lock:
            self.files.clear()
            self.chunks.clear()
            self.taken = 0


_warmed = Warmed()


def _unchanged(signatures: tuple[Signature, ...]) -> bool:
    try:
        return all(signature(Path(s[0])) == s for s in signatures)
    except OSError:
        return False


def read(path: Path, kind: Kind) -> tuple[pl.DataFrame, InputFile]:
    """Return `read_file(path, kind)`, taken from what `warm` read if the file is unchanged."""
    settle()
    with _warmed.lock:
        found = [s for s in _warmed.files if s[0] == str(path)]
        kept = [(s, _warmed.files.pop(s)) for s in found]
    for sig, (was, frame, info) in kept:
        if was == kind and _unchanged((sig,)):
            _count(1)
            return frame, info
    return read_file(path, kind)


def registry_chunk(paths: list[Path], program: Program) -> Chunk | None:
    """Return the files, checked rows and quarantine `warm` made of these registry files.

    None when it made none for them, or when a file changed since (the run validates them).
    """
    settle()
    names = tuple(str(p) for p in paths)
    with _warmed.lock:
        found = [
            k
            for k in _warmed.chunks
            if k[0] == program_key(program) and tuple(s[0] for s in k[1]) == names
        ]
        kept = [(k, _warmed.chunks.pop(k)) for k in found]
    for (_, signatures), chunk in kept:
        if _unchanged(signatures):
            _count(len(signatures))
            return chunk
    return None


def _count(files: int) -> None:
    with _warmed.lock:
        _warmed.taken += files


def taken() -> int:
    """Return how many files' results were taken from `warm` since the last call (and reset)."""
    with _warmed.lock:
        files, _warmed.taken = _warmed.taken, 0
    return files


def program_key(program: Program) -> str:
    """Return what validation depends on of a program: its id and rule files' digest."""
    return f"{program.id}:{program.sha256}"


def warm(program: Program, registry: list[Path], enrollment: list[Path]) -> None:
    """Read and validate the registry's chunks, then read the enrollment files; keep both.

    Enrollment rows are only read: which of them a run decides again depends on its ledger,
    read once it holds the program's lock. Stops between files once the run has ended.
    """
    for _, paths in chunks(registry):
        signatures = tuple(signature(p) for p in paths)
        files = []
        for path in paths:
            if _warmed.stop.is_set():
                return
            files.append(read_file(path, "registry"))
        infos = [info for _, info in files]
        checked, quarantine = validate_files("registry", [f for f, _ in files], infos, program)
        with _warmed.lock:
            _warmed.chunks[(program_key(program), signatures)] = (infos, checked, quarantine)
    for path in enrollment:
        if _warmed.stop.is_set():
            return
        sig = signature(path)
        frame, info = read_file(path, "enrollment")
        with _warmed.lock:
            _warmed.files[sig] = ("enrollment", frame, info)


@contextlib.contextmanager
def alongside(work: Callable[[], None]) -> Iterator[None]:
    """Run `work` (e.g. `warm`) in a thread while the block runs; forget what was not taken.

    The run's steps wait for the thread before they look for its results (`settle`). When the
    block ends, the thread is told to stop between files and waited for, and what it made that
    the run did not take leaves memory. `work`'s errors are dropped, a polars panic too: what it
    did not finish, the run does itself, and says so in its own words.
    """

    def quietly() -> None:
        with contextlib.suppress(BaseException):
            work()

    thread = threading.Thread(target=quietly, name="jiwon-warm", daemon=True)
    _warmed.stop.clear()
    with _warmed.lock:
        _warmed.thread = thread
    thread.start()
    try:
        yield
    finally:
        _warmed.stop.set()
        thread.join()
        with _warmed.lock:
            if _warmed.thread is thread:
                _warmed.thread = None
        _warmed.clear()


def settle() -> None:
    """Wait until the thread `alongside` started has finished (at once if there is none)."""
    with _warmed.lock:
        thread = _warmed.thread
    if thread is not None:
        thread.join()
