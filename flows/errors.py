"""Errors that stop a run, each with the exit status of spec/outputs.md and a one-line message."""

from __future__ import annotations

import re

from flows.i18n import _


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
            where = _("{file}, line {line}").format(file=file, line=line)
        elif row is not None:
            where = _("{file}, row {row}").format(file=file, row=row)
        super().__init__(
            _("input rejected: {where}: {problem}. {action}").format(
                where=where, problem=problem, action=action
            )
        )


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
            _(
                "audit trail damaged: {file} {problem}; nothing was paid or answered from the "
                "trail. Restore the file from backup (do not delete it: the runs after it link "
                "to it), then run `jiwon audit verify`."
            ).format(file=file, problem=problem)
        )


class LedgerUntrusted(RunHalted):
    """The trail does not match what its runs wrote (a record edited, a file missing): exit 4.

    Like TrailDamaged, the run writes no run record: it could not be chained to such a trail.
    """


class Unexpected(RuntimeError):
    """An error jiwon has no advice for, its text scrubbed of values (see `scrub`)."""


_DIGITS = re.compile(r"\d(?:[\d\- ]*\d)?")
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")


def scrub(text: str) -> str:
    """Return `text` with the values an input row could have put into it hidden.

    An unexpected error's text may quote a cell (a parser's or a library's message): quoted
    strings become '…' (names, account holders) and every run of digits keeps its first six and
    stars the rest (RRNs, card ids, account numbers), as `flows.inputs.excel.masked_value`
    does. What is left (the error's type and wording) is enough to report it.
    """
    quoted = _QUOTED.sub("'…'", text)
    return _DIGITS.sub(lambda m: masked_value(m.group(0)), quoted)


def masked_value(value: str) -> str:
    """Show the first six digits of a value and star the rest (messages reach logs)."""
    seen, out = 0, []
    for char in value:
        if char.isdigit():
            seen += 1
            out.append(char if seen <= 6 else "*")
        else:
            out.append(char)
    return "".join(out)
