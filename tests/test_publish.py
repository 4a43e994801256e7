"""Staging and atomic publish: a crash leaves a whole run or nothing, and recovery finishes it."""

from __future__ import annotations

import stat
from pathlib import Path

from flows.run import paths as layout
from flows.run.publish import Staging, move_unit, recover

PROGRAM, MONTH, RUN = "paju-livelihood-2025", "2025-03", "20250301T000000Z-0000abcd"


def staged(out: Path) -> Staging:
    staging = Staging(out, PROGRAM, MONTH, RUN)
    staging.write(layout.decisions_dir(PROGRAM, MONTH, RUN) / "decisions.parquet", b"d")
    staging.write(layout.payments_dir(PROGRAM, RUN) / "manifest.json", b"{}")
    staging.write(layout.quarantine_dir(PROGRAM, RUN) / "quarantine.csv", b"q", private=True)
    staging.write(layout.run_record_file(PROGRAM, RUN), b"r")
    return staging


def test_nothing_is_visible_before_publish_and_everything_after(tmp_path: Path) -> None:
    staging = staged(tmp_path)
    assert not (tmp_path / "payments").exists() and not (tmp_path / "audit").exists()
    staging.publish()
    assert (tmp_path / layout.run_record_file(PROGRAM, RUN)).read_bytes() == b"r"
    assert (tmp_path / layout.payments_dir(PROGRAM, RUN) / "manifest.json").exists()
    assert not (tmp_path / ".staging" / RUN).exists()


def test_quarantine_is_written_owner_only(tmp_path: Path) -> None:
    staged(tmp_path).publish()
    path = tmp_path / layout.quarantine_dir(PROGRAM, RUN) / "quarantine.csv"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_recover_rolls_back_a_run_interrupted_before_its_run_record(tmp_path: Path) -> None:
    staging = staged(tmp_path)
    move_unit(staging.root, tmp_path, layout.decisions_dir(PROGRAM, MONTH, RUN))  # then a crash
    notes = recover(tmp_path)
    assert notes == [
        f"run {RUN}: interrupted before commit; removed its partial output (nothing was paid)"
    ]
    assert not (tmp_path / layout.decisions_dir(PROGRAM, MONTH, RUN)).exists()
    assert not (tmp_path / ".staging" / RUN).exists()


def test_recover_releases_payments_of_a_run_that_had_committed(tmp_path: Path) -> None:
    staging = staged(tmp_path)
    record = layout.run_record_file(PROGRAM, RUN)
    for unit in staging.units[: staging.units.index(record) + 1]:  # up to the run record
        move_unit(staging.root, tmp_path, unit)
    notes = recover(tmp_path)
    assert "committed before it was interrupted" in notes[0]
    assert (tmp_path / layout.payments_dir(PROGRAM, RUN) / "manifest.json").exists()


def test_recover_with_nothing_staged_does_nothing(tmp_path: Path) -> None:
    assert recover(tmp_path) == []
