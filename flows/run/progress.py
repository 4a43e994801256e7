"""Progress of a run's long stages: a bar on the terminal, a line in Prefect's log now and then.

A stage (validating a delivery, deciding buckets, writing decision records) advances once per
chunk, bucket or file, never per row. On a terminal (stderr a TTY, `CI` not set) a `rich` bar
shows the stage, the chunks done, the rows and an estimate of the time left; elsewhere nothing
is drawn. The run's Prefect logger gets one line at most every `LOG_EVERY_S` seconds or each
tenth of the stage, and when the stage ends.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from flows.i18n import _

LOG_EVERY_S = 5.0


def on_terminal() -> bool:
    """Return whether a bar may be drawn: stderr is a terminal and this is not CI."""
    return sys.stderr.isatty() and not os.environ.get("CI")


class Stage:
    """One long stage: `advance(rows=n)` after each chunk, bucket or file of `total`.

    Use it as a context manager; it draws and logs nothing until it is advanced.
    """

    def __init__(
        self,
        name: str,
        total: int,
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        *,
        bar: bool | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.name, self.total, self.log, self.clock = name, max(total, 0), log, clock
        self.done = self.rows = 0
        self.started = self.logged_at = clock()
        self.logged_tenth = 0
        self.bar: Progress | None = None
        if self.total and (on_terminal() if bar is None else bar):
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rows]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.task = self.bar.add_task(name, total=self.total, rows="")

    def __enter__(self) -> Stage:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.stop()
        if kind is None and self.done and self.log is not None and self.logged_tenth < 10:
            self.log.info(self.line())

    def advance(self, steps: int = 1, rows: int = 0) -> None:
        """Count `steps` chunks (buckets, files) done, holding `rows` rows."""
        self.done += steps
        self.rows += rows
        if self.bar is not None:
            shown = _("{rows:,} rows").format(rows=self.rows) if self.rows else ""
            self.bar.update(self.task, advance=steps, rows=shown)
        if self.log is None or not self.total:
            return
        tenth = min(10, self.done * 10 // self.total)
        now = self.clock()
        if tenth > self.logged_tenth or now - self.logged_at >= LOG_EVERY_S:
            self.logged_tenth, self.logged_at = tenth, now
            self.log.info(self.line())

    def remaining_s(self) -> float | None:
        """Return the estimated seconds left (time per chunk so far), None before the first."""
        if not self.done:
            return None
        spent = self.clock() - self.started
        return spent / self.done * max(self.total - self.done, 0)

    def line(self) -> str:
        """Return the log line: stage, chunks done, rows and the estimate."""
        left = self.remaining_s()
        text = _("{stage}: {done} of {total} done").format(
            stage=self.name, done=self.done, total=self.total
        )
        if self.rows:
            text += _(", {rows:,} rows").format(rows=self.rows)
        if left is not None and self.done < self.total:
            text += _(", about {seconds:.0f} s left").format(seconds=left)
        return text
