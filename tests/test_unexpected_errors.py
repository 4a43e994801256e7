"""An unexpected error never carries an input value out of the run (issue 12, item 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.errors import scrub

RRN, CARD, ACCOUNT, HOLDER = "9001011234567", "9410123412341234", "110-123-456789", "김철수"


def test_scrub_hides_quoted_cells_and_every_digit_after_the_sixth() -> None:
    line = scrub(
        f"ComputeError: could not parse '{RRN}' in row {CARD}, holder \"{HOLDER}\", {ACCOUNT}"
    )
    for value in (RRN, CARD, HOLDER, "456789", "1234567"):
        assert value not in line
    assert line.startswith("ComputeError: could not parse '…' in row 941012") and "110-123-" in line


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_backend")
def test_an_unexpected_error_quoting_a_cell_reaches_the_terminal_scrubbed(
    story: Path, tmp_path: Path, pii_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError(f"cannot use value '{HOLDER}' for {RRN} (card {CARD})")

    monkeypatch.setattr("flows.run.steps.decide", broken)
    args = ["run", "--program", "paju-livelihood-2025", "--run-month", "2025-03"]
    args += ["--registry", str(story / "registry"), "--enrollments", str(story / "enrollments")]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("unexpected error (ValueError: cannot use value '…' for 900101")
    for value in (RRN, CARD, HOLDER):
        assert value not in result.stdout + result.stderr
