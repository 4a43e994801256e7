"""Generated deliveries with cross-file duplicates and moved household members, and comparisons
of two runs' published outputs that ignore only what differs by run (ids, clocks)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl

from fixtures.generate import Faults
from fixtures.programs import generate_for_program, write_program_data
from rules.program import load_program
from tests.support.flowrun import decisions

FAULTS = Faults(
    duplicate_record=0.01, duplicate_application=0.03, malformed=0.003, outside_window=0.01
)
# Columns that name the run or its clock, not the decision.
RUN_COLUMNS = ("run_id", "decided_at")
ROW_ORDER = ("source_kind", "source_file", "source_row")
FIRST_FILE = "000_moved.csv"  # sorts before registry_*.csv: its rows are the kept ones


def moved_members(registry: pl.DataFrame, copies: int = 40, moved: int = 12) -> pl.DataFrame:
    """Return registry rows of a file that sorts first in the delivery.

    `copies` members of households of three or more, verbatim: the originals in later files
    become duplicates of these rows. `moved` more members listed in another household (the
    next one in id order), heads among them: the first listing wins, so their old household
    loses a member (possibly its head) and the new one gains one (possibly a second head).
    """
    valid = registry.filter(
        pl.col("rrn").str.len_chars() >= 13, pl.col("household_id").is_not_null()
    )
    sizes = valid.group_by("household_id").len().filter(pl.col("len") >= 3)
    big = valid.join(sizes.select("household_id"), on="household_id").sort("household_id", "rrn")
    verbatim = big.gather_every(5).head(copies)
    ids = big["household_id"].unique().sort()
    shifted = dict(zip(ids.to_list(), ids.shift(-1).fill_null(ids[0]).to_list(), strict=True))
    others = big.join(verbatim.select("rrn"), on="rrn", how="anti").gather_every(7).head(moved)
    listed_elsewhere = others.with_columns(pl.col("household_id").replace_strict(shifted))
    return pl.concat([verbatim, listed_elsewhere])


def delivery(program_id: str, folder: Path, rows: int, seed: int) -> Path:
    """Write a generated delivery with faults, cross-file duplicates and moved members."""
    data = generate_for_program(rows, load_program(program_id), seed=seed, faults=FAULTS)
    write_program_data(data, folder)
    moved_members(data.population.registry).write_csv(folder / "registry" / FIRST_FILE)
    return folder


def decision_rows(out: Path) -> pl.DataFrame:
    """Return the published decision records without run columns, in input-row order."""
    return decisions(out).drop(RUN_COLUMNS).sort(ROW_ORDER)


def differing(left: pl.DataFrame, right: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Return, per column, the rows (by input row) whose values differ between two runs."""
    joined = left.join(right, on=list(ROW_ORDER), how="full", suffix="_other", nulls_equal=True)
    out = {}
    for column in (c for c in left.columns if c not in ROW_ORDER):
        other = pl.col(f"{column}_other")
        bad = joined.filter(pl.col(column).ne_missing(other))
        if bad.height:
            out[column] = bad.select(*ROW_ORDER, column, other)
    return out


def payment_dir(out: Path) -> Path:
    """Return the only run's payments folder."""
    (folder,) = (p.parent for p in out.glob("payments/**/manifest.json"))
    return folder


def manifest_totals(out: Path) -> tuple[int, int, list[tuple[str, int, int]]]:
    """Return the manifest's records, total and (file, records, total) per file."""
    body = json.loads((payment_dir(out) / "manifest.json").read_text())
    files = [(f["file"], f["records"], f["total_krw"]) for f in body["files"]]
    return body["records"], body["total_krw"], files


def payment_lines(out: Path, run_id: str) -> Counter[str]:
    """Return every line of every payment file, the run id blanked, as a multiset."""
    lines: Counter[str] = Counter()
    for path in sorted(payment_dir(out).iterdir()):
        if path.name != "manifest.json":
            text = path.read_bytes().decode("utf-8", errors="replace").replace(run_id, "RUN")
            lines.update(f"{path.name}|{line}" for line in text.splitlines())
    return lines
