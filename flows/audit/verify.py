"""`jiwon audit verify`: recompute the hash chain, file hashes and totals of the whole trail."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from flows.audit import anchor, attempts, keyprint, payouts, release, rotation, signing
from flows.audit.records import record_from_row
from flows.errors import LedgerUntrusted, TrailDamaged
from flows.i18n import N_, _
from flows.inputs import reference
from flows.inputs.ledger import read_trail, trail_problem
from flows.money import won_sum, won_total
from flows.pay import bankfile, pain001
from flows.run import outbox
from flows.run import paths as layout


def sha256_file(path: Path) -> str:
    """Return a file's SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_units(program: str, run_month: str, run_id: str) -> list[Path]:
    """Return the folders a run may have written (everything but its run record)."""
    return [u for u in layout.publish_units(program, run_month, run_id) if u.suffix != ".parquet"]


def trail_keys(out: Path) -> list[Ed25519PublicKey]:
    """Return the public signing keys stored beside the trail (`audit/keys/*.pem`)."""
    keys = []
    for path in sorted((out / "audit/keys").glob("*.pem")):
        try:
            keys.append(signing.public_key(path.read_bytes()))
        except signing.SigningKeyError:
            continue  # an unreadable key signs nothing: its records are reported unsigned
    return keys


def verify_run(out: Path, row: dict[str, object], unsigned: str | None = None) -> list[str]:
    """Return the problems of one run record: its seal, signature, files and totals.

    `unsigned`: why its signature is not acceptable (`rotation.signature_problems`), if it is not.
    """
    record = record_from_row(dict(row))
    where = _("run {run_id} ({program})").format(run_id=record.run_id, program=record.program)
    problems = []
    if not record.seal_holds():
        problems.append(
            _("{where}: run record was edited (run_sha256 does not match its content)").format(
                where=where
            )
        )
    elif unsigned is not None:
        problems.append(_("{where}: run record {unsigned}").format(where=where, unsigned=unsigned))
    expected = str(layout.run_record_file(record.program, record.run_id))
    if row.get("record_file") not in (None, expected):
        problems.append(
            _(
                "{where}: run record is stored as {record_file}, not {expected} "
                "(run records were renamed or swapped)"
            ).format(where=where, record_file=row["record_file"], expected=expected)
        )
    listed = {o["file"]: o for o in record.outputs}
    for name, output in listed.items():
        path = out / name
        if not path.is_file():
            problems.append(_("{where}: file {name} is missing").format(where=where, name=name))
        elif sha256_file(path) != output["sha256"]:
            damage = trail_problem(path) if path.suffix == ".parquet" else None
            problems.append(
                _("{where}: file {name} {value}").format(
                    where=where, name=name, value=damage or "was changed (SHA-256 differs)"
                )
            )
    for unit in run_units(record.program, record.run_month, record.run_id):
        for path in sorted((out / unit).rglob("*")) if (out / unit).is_dir() else []:
            if path.is_file() and str(path.relative_to(out)) not in listed:
                problems.append(
                    _("{where}: file {relative_to} was added").format(
                        where=where, relative_to=path.relative_to(out)
                    )
                )
    if record.trigger == rotation.ROTATION and record.status == "committed" and not problems:
        problems += verify_rotation(out, record.outputs, where)
    elif record.trigger == attempts.RESULTS and record.status == "committed" and not problems:
        problems += verify_results(out, record.outputs, where)
    elif record.trigger == attempts.REVIEW and record.status == "committed" and not problems:
        problems += verify_reviews(out, record.outputs, where)
    elif record.trigger in attempts.EVENTS:
        pass  # an approval wrote its record only; the release rules are checked per program
    elif record.status == "committed" and not problems:
        problems += verify_totals(
            out,
            record.program,
            record.run_month,
            record.run_id,
            record.total_paid_krw,
            record.counts,
            record.inputs,
        )
    return problems


def verify_rotation(out: Path, outputs: list[dict[str, Any]], where: str) -> list[str]:
    """Check a key rotation's map: its two columns, one row per old and per new key (0014)."""
    problems = []
    for output in [o for o in outputs if o["file"].startswith("audit/rotations/")]:
        mapping = pl.read_parquet(out / output["file"])
        if tuple(mapping.columns) != rotation.MAP_COLUMNS:
            problems.append(
                _("{where}: rotation map {file} has columns {columns}").format(
                    where=where, file=output["file"], columns=mapping.columns
                )
            )
            continue
        unique = all(mapping[c].n_unique() == mapping.height for c in rotation.MAP_COLUMNS)
        if mapping.height != output["records"] or not unique:
            problems.append(
                _(
                    "{where}: rotation map {file} has {height:,} rows (record: {records:,}){value}"
                ).format(
                    where=where,
                    file=output["file"],
                    height=mapping.height,
                    records=output["records"],
                    value="" if unique else " and maps a key twice",
                )
            )
    return problems


def verify_lines(
    out: Path,
    outputs: list[dict[str, Any]],
    where: str,
    kind: str,
    schema: pl.Schema,
    known: tuple[str, str, tuple[str, ...]],
) -> list[str]:
    """Check an import's `audit/<kind>/` files: their columns, count, and a column's values.

    `known`: (column, what a value outside `values` is called, values).
    """
    column, strange_as, values = known
    problems = []
    for output in [o for o in outputs if o["file"].startswith(f"audit/{kind}/")]:
        lines = pl.read_parquet(out / output["file"])
        if tuple(lines.columns) != tuple(schema.names()):
            problems.append(
                _("{where}: {kind} file {file} has columns {columns}").format(
                    where=where, kind=kind, file=output["file"], columns=lines.columns
                )
            )
            continue
        strange = lines.filter(~pl.col(column).is_in(values)).height
        if lines.height != output["records"] or strange:
            problems.append(
                _(
                    "{where}: {kind} file {file} has {height:,} lines (record: "
                    "{records:,}), {strange:,} {strange_as}"
                ).format(
                    where=where,
                    kind=kind,
                    file=output["file"],
                    height=lines.height,
                    records=output["records"],
                    strange=strange,
                    strange_as=strange_as,
                )
            )
    return problems


def verify_results(out: Path, outputs: list[dict[str, Any]], where: str) -> list[str]:
    """Check a results import's lines: their columns, count and states (issue 15)."""
    states = (*attempts.STATES, attempts.IN_FLIGHT)
    known = ("state", _("with an unknown state"), states)
    return verify_lines(out, outputs, where, "results", attempts.EVENT_SCHEMA, known)


def verify_reviews(out: Path, outputs: list[dict[str, Any]], where: str) -> list[str]:
    """Check a review import's decisions: their columns, count and words (issue 18)."""
    from flows.audit.reviews import DECISIONS, REVIEW_SCHEMA

    known = ("decision", _("neither approve nor reject"), DECISIONS)
    return verify_lines(out, outputs, where, "reviews", REVIEW_SCHEMA, known)


def verify_totals(
    out: Path,
    program: str,
    run_month: str,
    run_id: str,
    total: int,
    counts: dict[str, int],
    inputs: list[dict[str, Any]],
) -> list[str]:
    """Check decisions, run record and payment manifest agree on counts and totals."""
    where = _("run {run_id} ({program})").format(run_id=run_id, program=program)
    # Aggregated while scanning: a national run's records do not fit in memory.
    decisions = pl.scan_parquet(
        out / layout.decisions_dir(program, run_month, run_id) / "*.parquet",
        hive_partitioning=False,
    )
    problems = []
    registry = pl.col("source_kind") == "registry"
    paid = int(decisions.filter(registry).select(won_sum()).collect().item())
    if paid != total:
        problems.append(
            _("{where}: audit PAID total {paid:,} != run record total {total:,}").format(
                where=where, paid=paid, total=total
            )
        )
    found = dict(decisions.group_by("outcome").len().collect().iter_rows())
    if any(found.get(o, 0) != n for o, n in counts.items()):
        problems.append(
            _("{where}: counts per outcome differ from the decision records").format(where=where)
        )
    problems += verify_rows_read(decisions, inputs, where)
    manifest = out / layout.payments_dir(program, run_id) / "manifest.json"
    if manifest.is_file():
        body = json.loads(manifest.read_text())
        if body["total_krw"] != total:
            problems.append(
                _("{where}: payment manifest total {total_krw:,} != {total:,}").format(
                    where=where, total_krw=body["total_krw"], total=total
                )
            )
        problems += verify_payment_files(manifest.parent, body, decisions, where)
    elif total:
        problems.append(
            _("{where}: paid {total:,} won but its payment manifest is missing").format(
                where=where, total=total
            )
        )
    return problems


def verify_rows_read(
    decisions: pl.LazyFrame, inputs: list[dict[str, Any]], where: str
) -> list[str]:
    """Check every input row of a run is a decision record or a row closed earlier (0012).

    Per registry and enrollment file: rows read = decision records + rows skipped as closed.
    """
    per_file = dict(
        decisions.group_by("source_kind", "source_file")
        .len()
        .collect()
        .select(pl.concat_str("source_kind", pl.lit("/"), "source_file"), "len")
        .iter_rows()
    )
    problems = []
    for item in inputs:
        if item["kind"] not in ("registry", "enrollment"):
            continue
        records = per_file.get(f"{item['kind']}/{item['file']}", 0)
        closed = item.get("rows_closed") or (item["rows"] if item["skipped_by_run"] else 0)
        if records + closed != item["rows"]:
            problems.append(
                _(
                    "{where}: {file} has {rows:,} rows but {records:,} decision "
                    "records and {closed:,} rows closed by earlier runs"
                ).format(
                    where=where,
                    file=item["file"],
                    rows=item["rows"],
                    records=records,
                    closed=closed,
                )
            )
    return problems


def verify_payment_files(
    folder: Path, manifest: dict[str, Any], decisions: pl.DataFrame | pl.LazyFrame, where: str
) -> list[str]:
    """Recompute each payment file's records and total from its content and from the audit."""
    problems = []
    paid = (
        decisions.lazy()
        .filter(pl.col("source_kind") == "registry", pl.col("outcome") == "PAID")
        .group_by("payment_file")
        .agg(records=pl.len(), total_krw=won_sum())
        .collect()
    )
    by_audit = {r["payment_file"]: (r["records"], r["total_krw"]) for r in paid.to_dicts()}
    listed = {f["file"]: f for f in manifest["files"]}
    if set(listed) != set(by_audit):
        problems.append(
            _("{where}: manifest lists {sorted} but the audit pays through {sorted2}").format(
                where=where, sorted=sorted(listed), sorted2=sorted(by_audit)
            )
        )
    for name, entry in listed.items():
        path = folder / name
        if not path.is_file():
            continue  # reported as missing against the run record
        if sha256_file(path) != entry["sha256"]:
            problems.append(
                _("{where}: payment file {name} differs from its manifest SHA-256").format(
                    where=where, name=name
                )
            )
            continue
        try:
            found = payment_file_totals(path, entry.get("format", "local_currency_csv"))
        except (bankfile.BankFileError, ValueError, SyntaxError, pl.exceptions.PolarsError) as e:
            problems.append(
                _("{where}: payment file {name} cannot be read back: {e}").format(
                    where=where, name=name, e=e
                )
            )
            continue
        claimed = (entry["records"], entry["total_krw"])
        if found != claimed or by_audit.get(name) != claimed:
            problems.append(
                _(
                    "{where}: payment file {name}: content has {value:,} records / "
                    "{value2:,} won, manifest {value3:,} / {value4:,}, audit "
                    "{value5:,} / {value6:,}"
                ).format(
                    where=where,
                    name=name,
                    value=found[0],
                    value2=found[1],
                    value3=claimed[0],
                    value4=claimed[1],
                    value5=by_audit.get(name, (0, 0))[0],
                    value6=by_audit.get(name, (0, 0))[1],
                )
            )
    return problems


def payment_file_totals(path: Path, file_format: str) -> tuple[int, int]:
    """Return (records, total won) read back from a payment file's own content."""
    if file_format.startswith("kr_bulk_transfer:"):
        layout_name = file_format.split(":", 1)[1]
        read = bankfile.read_bank_file(path.read_bytes(), reference.load_layout(layout_name))
        return read.data.height, won_total(read.data["amount"])
    if file_format == pain001.FORMAT:
        return pain001.read_totals(path.read_bytes())
    credits = pl.read_csv(path, infer_schema=False)
    return credits.height, won_total(credits["amount"].cast(pl.Int64))


def chain_problem(
    row: dict[str, Any], previous: dict[str, Any] | None, by_sha: dict[str, str], program: str
) -> str | None:
    """Return what is wrong with a run's link to the run before it, or None."""
    if row["prev_run_sha256"] == (previous["run_sha256"] if previous else None):
        return None
    where = _("run {run_id} ({program}): chain broken:").format(
        run_id=row["run_id"], program=program
    )
    before = f"run {previous['run_id']}" if previous else "no run"
    if row["prev_run_sha256"] is None:
        return _(
            "{where} it claims to be the first run but follows {before} (a "
            "run was inserted before it, or runs reordered)"
        ).format(where=where, before=before)
    if row["prev_run_sha256"] in by_sha:
        return _("{where} it links to run {value} but follows {before} (runs reordered)").format(
            where=where, value=by_sha[row["prev_run_sha256"]], before=before
        )
    return _(
        "{where} it links to a run that is not in the trail, and follows "
        "{before} (the run before it was deleted, edited and resealed, "
        "or moved)"
    ).format(where=where, before=before)


def orphan_runs(out: Path, program: str, known: set[str]) -> list[str]:
    """Return one problem per output folder of a run that has no run record, oldest first."""
    folders = [
        out / "payments" / program,
        out / "reports" / program,
        out / "quarantine" / program,
    ]
    decisions = out / "audit/decisions" / f"program={program}"
    maps = out / "audit/rotations" / f"program={program}"
    imports = out / "audit/results" / f"program={program}"
    reviews = out / "audit/reviews" / f"program={program}"
    found: dict[str, list[str]] = {}
    outputs = [d for f in folders if f.is_dir() for d in f.iterdir()]
    for d in (
        [d for d in outputs if not program_page(d)]
        + sorted(decisions.glob("run_month=*/run_id=*"))
        + sorted(maps.glob("run_id=*.parquet"))
        + sorted(imports.glob("run_id=*"))
        + sorted(reviews.glob("run_id=*"))
    ):
        run_id = d.name.removeprefix("run_id=").removesuffix(".parquet")
        if run_id not in known:
            found.setdefault(run_id, []).append(str(d.relative_to(out)))
    return [
        f"run {run_id} ({program}): run record is missing but its outputs remain "
        f"({', '.join(sorted(paths))}): a run record was deleted"
        for run_id, paths in sorted(found.items())
    ]


def program_page(path: Path) -> bool:
    """Return whether `path` is a program page (or one being written): part of no run.

    `reports/<program>/index.html` is rebuilt from the trail after every run and import; it
    is no output of any run, so neither an added file nor a run without a record.
    """
    name = path.name
    page = name == layout.PROGRAM_PAGE or name.startswith(layout.PROGRAM_PAGE_TEMP)
    return page and path.parent.parent.name == "reports" and path.is_file()


def readable_run_records(out: Path, program: str) -> tuple[pl.DataFrame, list[str], set[str]]:
    """Return a program's readable run records, the problems of its unreadable ones, their ids.

    The records come oldest first with `record_file` (as `run_records(with_file=True)`); a
    damaged record is one problem naming its file, so the rest of the trail is still checked.
    """
    folder = out / layout.run_record_file(program, "x").parent
    frames, problems, damaged = [], [], set()
    for path in sorted(folder.glob("run_id=*.parquet")):
        name = str(path.relative_to(out))
        try:
            frames.append(read_trail(out, path).with_columns(record_file=pl.lit(name)))
        except TrailDamaged as e:
            run_id = path.name.removeprefix("run_id=").removesuffix(".parquet")
            problems.append(
                _("run {run_id} ({program}): run record {name} {problem}").format(
                    run_id=run_id, program=program, name=name, problem=e.problem
                )
            )
            damaged.add(run_id)
    if not frames:
        return pl.DataFrame(), problems, damaged
    runs = pl.concat(frames, how="diagonal_relaxed").sort("finished_at", "run_id")
    return runs, problems, damaged


def verify_trail(
    out: Path, keys: list[Ed25519PublicKey] | None = None, anchors: Path | None = None
) -> tuple[list[str], int]:
    """Return every problem in the trail (first broken link first) and how many runs were read.

    Per program: run records that cannot be read come first, then outputs without a run record
    (a deleted run record), then each run in chain order: its link to the run before it, its
    seal and signature, its files and totals; then the chain's head against its anchor outside
    the output root. Signatures are checked with `keys` (an auditor's trusted copy), else with
    the public keys stored beside the trail; anchors are read from `anchors` (a folder), else
    from where runs write them (`flows.audit.anchor`).
    """
    runs_root = out / "audit/runs"
    if not runs_root.is_dir():
        return [_("no audit trail under {out}").format(out=out)], 0
    if keys is None:
        keys = trail_keys(out)
    problems: list[str] = []
    checked = 0
    for folder in sorted(runs_root.glob("program=*")):
        program = folder.name.removeprefix("program=")
        runs, unreadable, damaged = readable_run_records(out, program)
        problems += unreadable
        known = set(runs["run_id"].to_list()) if runs.height else set()
        problems += orphan_runs(out, program, known | damaged)
        by_sha = dict(zip(runs["run_sha256"], runs["run_id"], strict=True)) if runs.height else {}
        previous: dict[str, Any] | None = None
        unsigned = rotation.signature_problems(runs, keys) if runs.height else {}
        for index, row in enumerate(runs.iter_rows(named=True)):
            checked += 1
            link = chain_problem(row, previous, by_sha, program)
            if link and damaged and row["prev_run_sha256"] not in by_sha:
                link += _("; the run it links to may be one whose record is damaged (listed above)")
            problems += [link] if link else []
            problems += verify_run(out, row, unsigned.get(index))
            previous = row
        problems += key_problems(runs, program)
        problems += release.problems(runs) + outbox.problems(out, program, runs)
        path = anchor.anchor_file(out, program, anchors)
        try:
            stale = anchor.anchor_problem(runs, anchor.read_anchor(path), path)
        except LedgerUntrusted as e:
            stale = str(e)
        problems += [f"program {program}: {stale}"] if stale else []
    seen = {f.name.removeprefix("program=") for f in runs_root.glob("program=*")}
    problems += trailless_outputs(out, seen) + trailless_anchors(out, seen, anchors)
    return problems, checked


def trailless_outputs(out: Path, programs: set[str]) -> list[str]:
    """Return one problem per output of a program with no run records at all, or stray file."""
    problems = []
    for kind in ("payments", "reports", "quarantine"):
        for entry in sorted((out / kind).iterdir()) if (out / kind).is_dir() else []:
            if entry.is_dir() and entry.name in programs:
                continue
            problems.append(
                _(
                    "{relative_to} belongs to no run in the trail (no run records of "
                    "program {name}): outputs were added, or the program's trail was "
                    "deleted"
                ).format(relative_to=entry.relative_to(out), name=entry.name)
            )
    decisions = out / "audit/decisions"
    for entry in sorted(decisions.glob("program=*")) if decisions.is_dir() else []:
        if entry.name.removeprefix("program=") not in programs:
            problems.append(
                _(
                    "{relative_to} holds decisions of a program with no run records "
                    "(its run records were deleted)"
                ).format(relative_to=entry.relative_to(out))
            )
    return problems


def trailless_anchors(out: Path, programs: set[str], folder: Path | None) -> list[str]:
    """Return one problem per program anchored for this output root whose trail is gone."""
    problems = []
    root = folder or anchor.anchor_dir()
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        try:
            body = anchor.read_anchor(path)
        except LedgerUntrusted as e:
            problems.append(str(e))
            continue
        if not body or body.get("out") != str(out.resolve()) or body["program"] in programs:
            continue
        if not body["records"]:  # its first run never committed: nothing to lose
            continue
        if anchor.anchor_file(out, str(body["program"]), folder) != path:
            continue
        problems.append(
            _(
                "program {program}: the anchor at {path} names run {run_id} as "
                "record {records}, and the trail holds no run records of the "
                "program (its whole trail was deleted)"
            ).format(
                program=body["program"], path=path, run_id=body["run_id"], records=body["records"]
            )
        )
    return problems


def key_problems(runs: pl.DataFrame, program: str) -> list[str]:
    """Return a problem for each committed run whose key fingerprint is not the program's key.

    Every run of a program records its key's fingerprint with the program's salt, so the same
    key gives the same text: another value means person keys do not join across those runs. The
    program's key is its first run's until a personal-data key rotation, which must name that
    key as the one it retires; the rotation's key is the program's key from then on (0014).
    """
    if runs.height == 0 or "key_fingerprint" not in runs.columns:
        return []
    committed = runs.filter(
        pl.col("status") == "committed", ~pl.col("dry_run"), pl.col("key_fingerprint").is_not_null()
    ).with_columns(
        pl.lit(None, pl.String).alias(c) for c in ("trigger", "parameters") if c not in runs.columns
    )
    problems: list[str] = []
    current: tuple[str, str] | None = None
    for row in committed.select("run_id", "key_fingerprint", "trigger", "parameters").iter_rows(
        named=True
    ):
        print_, run_id = row["key_fingerprint"], row["run_id"]
        detail = (
            rotation.rotation_of(row["parameters"]) if row["trigger"] == rotation.ROTATION else None
        )
        if detail is not None and detail.get("kind") == rotation.PII:
            if current is not None and detail.get("previous_key_fingerprint") != current[0]:
                problems.append(
                    _(
                        "run {run_id} ({program}): a key rotation that does not retire "
                        "the key of run {value} (its previous_key_fingerprint differs)"
                    ).format(run_id=run_id, program=program, value=current[1])
                )
            current = (print_, run_id)
        elif current is None:
            current = (print_, run_id)
        elif print_ != current[0]:
            problems.append(
                _(
                    "run {run_id} ({program}): committed with another JIWON_PII_KEY "
                    "than run {value} (key_fingerprint differs): its person keys and "
                    "payment ids do not match the program's"
                ).format(run_id=run_id, program=program, value=current[1])
            )
    return problems


NOT_CROSS_CHECKED = N_(
    "payout details (card ids, account numbers) in the payment files were not cross-checked "
    "against the decision records: that needs JIWON_PII_KEY, the key the runs used"
)


def cross_check_trail(out: Path, key: str) -> payouts.CrossCheck:
    """Cross-check every committed run's payment files against its decision records.

    Per program, only when `key` is the key its runs used (their key fingerprint); runs
    committed with another key are reported by `key_problems`, and skipped here.
    """
    result = payouts.CrossCheck()
    for folder in sorted((out / "audit/runs").glob("program=*")):
        program = folder.name.removeprefix("program=")
        runs, _problems, _ids = readable_run_records(out, program)
        known = keyprint.program_fingerprints(runs)
        if not known:
            if runs.height and runs.filter(pl.col("status") == "committed").height:
                result.unchecked.append(
                    _(
                        "program {program}: its committed runs record no key "
                        "fingerprint, so JIWON_PII_KEY cannot be confirmed as their key: "
                        "payout details were not cross-checked"
                    ).format(program=program)
                )
            continue
        if not keyprint.matches(key, known[0][0]):
            result.unchecked.append(
                _(
                    "program {program}: JIWON_PII_KEY is not the key its runs used "
                    "(its key fingerprint differs from committed run {value}): "
                    "payout details were not cross-checked"
                ).format(program=program, value=known[0][1])
            )
            continue
        paying = attempts.paying_runs(runs)
        same_key = paying.filter(pl.col("key_fingerprint") == known[0][0])
        rotated = [r.seq for r in rotation.rotations(runs) if r.kind == rotation.PII]
        retired = set(runs["run_id"].head(rotated[-1])) if rotated else set()
        if before := paying.filter(pl.col("run_id").is_in(retired)).height:
            result.unchecked.append(
                _(
                    "program {program}: {before} run(s) before its last "
                    "personal-data key rotation used the retired key: their payout "
                    "details were not cross-checked"
                ).format(program=program, before=before)
            )
        for run_id, run_month in zip(same_key["run_id"], same_key["run_month"], strict=True):
            found = cross_check_run(out, program, run_month, run_id, key)
            result.problems.extend(found.problems)
            result.unchecked.extend(found.unchecked)
    return result


def cross_check_run(
    out: Path, program: str, run_month: str, run_id: str, key: str
) -> payouts.CrossCheck:
    """Cross-check one committed run's payment files against its decision records."""
    where = _("run {run_id} ({program})").format(run_id=run_id, program=program)
    try:
        scan = pl.scan_parquet(
            out / layout.decisions_dir(program, run_month, run_id) / "*.parquet",
            hive_partitioning=False,
        )
        names = scan.collect_schema().names()
        records = (
            scan.filter(pl.col("outcome") == "PAID", pl.col("source_kind") == "registry")
            .select(c for c in payouts.RECORD_COLUMNS if c in names)
            .collect()
        )
    except (OSError, pl.exceptions.PolarsError) as e:
        problem = _(
            "{where}: its decision records cannot be read to cross-check its payment files"
        ).format(where=where)
        return payouts.CrossCheck([f"{problem}: {str(e).splitlines()[0]}"])
    files = written_payment_files(out / layout.payments_dir(program, run_id))
    layouts = {}
    for name in {f.format.removeprefix(payouts.BANK_FORMAT) for f in files}:
        try:
            layouts[name] = reference.load_layout(name)
        except bankfile.BankFileError:
            continue  # its files are reported as unreadable
    return payouts.cross_check(files, records, key, where, layouts)


def written_payment_files(folder: Path) -> list[payouts.WrittenFile]:
    """Return the payment files a run's manifest lists, each with its format.

    A file the manifest does not list is reported as added by `verify_run`; a missing or
    unreadable manifest, by `verify_totals`.
    """
    try:
        body = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        listed = [
            (str(f["file"]), str(f.get("format", payouts.CREDIT_FORMAT))) for f in body["files"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [
        payouts.WrittenFile(name, file_format, (folder / name).read_bytes())
        for name, file_format in listed
        if (folder / name).is_file()
    ]
