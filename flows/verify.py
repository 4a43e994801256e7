"""`jiwon audit verify`: recompute the hash chain, file hashes and totals of the whole trail."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl

from flows import layout
from flows.audit import record_from_row
from flows.ledger import run_records


def sha256_file(path: Path) -> str:
    """Return a file's SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_units(program: str, run_month: str, run_id: str) -> list[Path]:
    """Return the folders a run may have written (everything but its run record)."""
    return [u for u in layout.publish_units(program, run_month, run_id) if u.suffix != ".parquet"]


def verify_run(out: Path, row: dict[str, object]) -> list[str]:
    """Return the problems of one run record: its seal, its files and its totals."""
    record = record_from_row(dict(row))
    where = f"run {record.run_id} ({record.program})"
    problems = []
    if hashlib.sha256(record.canonical()).hexdigest() != record.run_sha256:
        problems.append(f"{where}: run record was edited (run_sha256 does not match its content)")
    listed = {o["file"]: o for o in record.outputs}
    for name, output in listed.items():
        path = out / name
        if not path.is_file():
            problems.append(f"{where}: file {name} is missing")
        elif sha256_file(path) != output["sha256"]:
            problems.append(f"{where}: file {name} was changed (SHA-256 differs)")
    for unit in run_units(record.program, record.run_month, record.run_id):
        for path in sorted((out / unit).rglob("*")) if (out / unit).is_dir() else []:
            if path.is_file() and str(path.relative_to(out)) not in listed:
                problems.append(f"{where}: file {path.relative_to(out)} was added")
    if record.status == "committed" and not problems:
        problems += verify_totals(
            out,
            record.program,
            record.run_month,
            record.run_id,
            record.total_paid_krw,
            record.counts,
        )
    return problems


def verify_totals(
    out: Path, program: str, run_month: str, run_id: str, total: int, counts: dict[str, int]
) -> list[str]:
    """Check decisions, run record and payment manifest agree on counts and totals."""
    where = f"run {run_id} ({program})"
    decisions = pl.read_parquet(out / layout.decisions_dir(program, run_month, run_id))
    problems = []
    paid = int(decisions.filter(pl.col("source_kind") == "registry")["amount_krw"].sum())
    if paid != total:
        problems.append(f"{where}: audit PAID total {paid:,} != run record total {total:,}")
    found = dict(decisions.group_by("outcome").len().iter_rows())
    if any(found.get(o, 0) != n for o, n in counts.items()):
        problems.append(f"{where}: counts per outcome differ from the decision records")
    manifest = out / layout.payments_dir(program, run_id) / "manifest.json"
    if manifest.is_file():
        body = json.loads(manifest.read_text())
        if body["total_krw"] != total:
            problems.append(f"{where}: payment manifest total {body['total_krw']:,} != {total:,}")
    return problems


def verify_trail(out: Path) -> tuple[list[str], int]:
    """Return every problem in the trail (first broken link first) and how many runs were read."""
    runs_root = out / "audit/runs"
    if not runs_root.is_dir():
        return [f"no audit trail under {out}"], 0
    problems: list[str] = []
    checked = 0
    for folder in sorted(runs_root.glob("program=*")):
        program = folder.name.removeprefix("program=")
        runs = run_records(out, program)
        previous: str | None = None
        for row in runs.iter_rows(named=True):
            checked += 1
            if row["prev_run_sha256"] != previous:
                problems.append(
                    f"run {row['run_id']} ({program}): chain broken: prev_run_sha256 "
                    "does not match the previous run (a run was deleted, added or "
                    "reordered)"
                )
            problems += verify_run(out, row)
            previous = row["run_sha256"]
        known = set(runs["run_id"].to_list()) if runs.height else set()
        for unit_root in (
            out / "payments" / program,
            out / "reports" / program,
            out / "quarantine" / program,
        ):
            for d in sorted(unit_root.iterdir()) if unit_root.is_dir() else []:
                if d.name not in known:
                    problems.append(f"{d.relative_to(out)}: output of a run with no run record")
    return problems, checked
