"""Errors that stop a run, each with the exit status of spec/outputs.md and a one-line message."""

from __future__ import annotations


class JiwonError(Exception):
    """A failure an operator can act on: `str(error)` is one line saying what and what to do."""

    exit_code = 1


class InputRejected(JiwonError):
    """A delivery that must not be paid from (exit 3): names the file, line, problem and fix."""

    exit_code = 3

    def __init__(
        self, file: str, problem: str, action: str, line: int | None = None, row: int | None = None
    ) -> None:
        """`line` counts lines of the file (the header is line 1); `row` counts data records."""
        self.file, self.problem, self.action, self.line, self.row = file, problem, action, line, row
        where = file
        if line is not None:
            where = f"{file}, line {line}"
        elif row is not None:
            where = f"{file}, row {row}"
        super().__init__(f"input rejected: {where}: {problem}. {action}")


class RunHalted(JiwonError):
    """A safety check stopped the run before anything was paid (exit 4)."""

    exit_code = 4


class UsageError(JiwonError):
    """Bad parameters or settings (exit 2)."""

    exit_code = 2


class TrailDamaged(RunHalted):
    """A file of the audit trail cannot be read: nothing may be paid or answered from it (exit 4).

    `file` is the file's path under the output root; `problem` says what is wrong with it.
    """

    def __init__(self, file: str, problem: str) -> None:
        self.file, self.problem = file, problem
        super().__init__(
            f"audit trail damaged: {file} {problem}; nothing was paid or answered from the "
            "trail. Restore the file from backup (do not delete it: the runs after it link to "
            "it), then run `jiwon audit verify`."
        )
