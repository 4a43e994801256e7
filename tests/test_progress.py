"""A long stage reports its progress: a bar on a terminal, a log line now and then (issue 17)."""

from __future__ import annotations

import logging

import pytest

from flows.run import progress
from flows.run.progress import Stage


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def logger() -> tuple[logging.Logger, Lines]:
    log = logging.getLogger("test-progress")
    log.handlers[:] = [lines := Lines()]
    log.setLevel(logging.INFO)
    log.propagate = False
    return log, lines


def test_a_stage_logs_each_tenth_with_rows_and_an_estimate() -> None:
    log, lines = logger()
    clock = Clock()
    with Stage("deciding buckets", 20, log, bar=False, clock=clock) as stage:
        for _ in range(20):
            clock.now += 0.1
            stage.advance(rows=1_000)
    assert len(lines.lines) == 10  # 2 of 20, 4 of 20, ... 20 of 20
    assert lines.lines[0] == "deciding buckets: 2 of 20 done, 2,000 rows, about 2 s left"
    assert lines.lines[-1] == "deciding buckets: 20 of 20 done, 20,000 rows"


def test_a_slow_stage_logs_at_most_every_five_seconds_between_tenths() -> None:
    log, lines = logger()
    clock = Clock()
    with Stage("validating registry files", 1_000, log, bar=False, clock=clock) as stage:
        for _ in range(50):  # 5 % of the stage, 2 s a file: no tenth, but 100 s
            clock.now += 2
            stage.advance(rows=10)
    # one line at 6 s (the first 5 s passed) then every 6 s, and one when the stage ends
    assert 15 <= len(lines.lines) <= 18
    assert (
        lines.lines[-1] == "validating registry files: 50 of 1000 done, 500 rows, about 1900 s left"
    )


def test_no_bar_in_ci_or_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert not progress.on_terminal()
    assert Stage("writing decision records", 3).bar is None


def test_a_stage_that_fails_or_never_starts_logs_nothing() -> None:
    log, lines = logger()
    with Stage("deciding buckets", 0, log, bar=False):
        pass
    with pytest.raises(RuntimeError), Stage("deciding buckets", 4, log, bar=False):
        raise RuntimeError("bucket failed")
    assert lines.lines == []
