"""Read and check a city's delivery while `jiwon run` starts up (issue 16).

Before a run's first step, `jiwon run` imports Prefect and the flow (about 1.5 s here), waits for
Prefect's temporary server (it answers about 4 s after the command began; `flows.run.server`)
and for Prefect to create the flow run; the run's lock and ledger checks follow. Meanwhile
(`alongside`, `warm_options`) a thread reads every delivery file (bytes, SHA-256, CSV) and
validates the registry's chunks, and the run's spill takes those results (`registry_chunk`,
`read`) instead of doing the same work again, waiting for the thread if it has not finished.

A result is taken only if every file it was made from is still the one read: same path, size,
modification time and inode; else the run reads the file again, so a file replaced meanwhile is
read as it is when the run reads it. The run records the SHA-256 of the bytes it decided either
way. Only a run decided in memory (a city, one bucket) warms: the results wait in memory until
its steps take them (each is taken once; what was not taken is dropped when the command ends).
Anything that fails while warming is dropped and left to the run, so a refusal is the run's
own, with its logs, task states and run record. Runs started otherwise (`jiwon serve`'s
deployments, the flow called directly) read when they spill, as before.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from flows.inputs.ingest import Delivery, InputFile, Kind, read_file
from rules.program import Program

Signature = tuple[str, int, int, int]  # path, size, modification time (ns), inode
Chunk = tuple[list[InputFile], pl.DataFrame, pl.DataFrame]  # files, checked rows, quarantine


def signature(path: Path) -> Signature:
    """Return what says a file is still the one read: path, size, mtime (ns) and inode."""
    st = os.stat(path)
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass
class Warmed:
    """Results made before the run asked for them, each kept with its files' signatures."""

    files: dict[tuple[Kind, Signature], tuple[pl.DataFrame, InputFile]] = field(
        default_factory=dict
    )
    chunks: dict[tuple[str, tuple[Signature, ...]], Chunk] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    taken: int = 0  # files whose results a run took
    thread: threading.Thread | None = None  # warming now (`alongside`)

    def take(self, files: int) -> None:
        with self.lock:
            self.taken += files

    def clear(self) -> None:
        with self.lock:
            self.files.clear()
            self.chunks.clear()


_warmed = Warmed()


def _still(signatures: tuple[Signature, ...]) -> bool:
    try:
        return all(signature(Path(s[0])) == s for s in signatures)
    except OSError:
        return False


def read(path: Path, kind: Kind) -> tuple[pl.DataFrame, InputFile]:
    """Return `read_file(path, kind)`, taken from what `warm` read if the file is unchanged."""
    settle()
    with _warmed.lock:
        found = [k for k in _warmed.files if k[0] == kind and k[1][0] == str(path)]
        kept = [(k, _warmed.files.pop(k)) for k in found]
    for (_kind, sig), result in kept:
        if _still((sig,)):
            _warmed.take(1)
            return result
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
    for (_program, signatures), chunk in kept:
        if _still(signatures):
            _warmed.take(len(signatures))
            return chunk
    return None


def taken() -> int:
    """Return how many files' results were taken from `warm` since the last call (and reset)."""
    with _warmed.lock:
        files, _warmed.taken = _warmed.taken, 0
    return files


def program_key(program: Program) -> str:
    """Return what validation depends on of a program: its id and rule files' digest."""
    return f"{program.id}:{program.sha256}"


def warm_options(options: Mapping[str, object]) -> None:
    """Warm the delivery a `jiwon run` names (its command-line options), if it decides in memory.

    The run's own choice (`flows.run.steps.decides_in_memory`), made from the raw options. May
    raise (an unknown program, a missing folder): `alongside` drops the error, and the run
    refuses in its own words.
    """
    from flows.inputs.ingest import list_delivery
    from flows.run.steps import decides_in_memory
    from rules.program import PROGRAMS_DIR, load_program

    folders = options.get("programs_dir")
    program = load_program(str(options["program"]), Path(str(folders)) if folders else PROGRAMS_DIR)
    registry = list_delivery(Path(str(options["registry"])), "registry")
    store, runner = str(options.get("store", "auto")), str(options.get("runner", "local"))
    if decides_in_memory(store, options.get("partitions"), runner, registry):
        warm(program, registry, list_delivery(Path(str(options["enrollments"])), "enrollment"))


def warm(program: Program, registry: list[Path], enrollment: list[Path]) -> None:
    """Read the enrollment files and read and validate the registry's chunks, keeping both.

    Called in a thread (`alongside`) while the command imports, the server starts and Prefect
    creates the run.
    """
    from flows.checks import validate
    from flows.run.steps import chunks

    for _first, paths in chunks(registry):
        signatures = tuple(signature(p) for p in paths)
        read = [read_file(p, "registry") for p in paths]
        delivery = Delivery(
            "registry",
            pl.concat([frame for frame, _ in read]),
            [info for _, info in read],
            any(info.fullwidth for _, info in read),
        )
        checked, quarantine = validate.validate_delivery(delivery, program)
        infos = [info for _, info in read]
        with _warmed.lock:
            _warmed.chunks[(program_key(program), signatures)] = (infos, checked, quarantine)
    for path in enrollment:
        sig = signature(path)
        result = read_file(path, "enrollment")
        with _warmed.lock:
            _warmed.files[("enrollment", sig)] = result


@contextlib.contextmanager
def alongside(work: Callable[[], None]) -> Iterator[None]:
    """Run `work` (e.g. `warm`) in a thread while the block runs; forget what was not taken.

    The run's steps wait for the thread before they look for its results (`read`,
    `registry_chunk`). `work`'s errors are dropped: what it did not finish, the run does itself.
    """

    def quietly() -> None:
        with contextlib.suppress(Exception):
            work()

    thread = threading.Thread(target=quietly, name="jiwon-warm", daemon=True)
    with _warmed.lock:
        _warmed.thread = thread
    thread.start()
    try:
        yield
    finally:
        settle()
        _warmed.clear()  # a refused run took nothing: its rows leave memory with the block


def settle() -> None:
    """Wait until the thread `alongside` started has finished (at once if there is none)."""
    with _warmed.lock:
        thread, _warmed.thread = _warmed.thread, None
    if thread is not None:
        thread.join()
