"""What earlier committed runs of a program did, read back from the committed audit trail.

The ledger is derived, not stored: a run is committed exactly when its run record exists, so the
trail cannot disagree with it (docs/decisions/0002-ledger-from-audit-trail.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from flows.audit import attempts as tried
from flows.audit import release
from flows.errors import LedgerUntrusted, TrailDamaged, UsageError
from flows.i18n import _
from flows.money import won_total
from flows.run import paths as layout
from rules.program import Program


@dataclass(frozen=True)
class Reread:
    """Which enrollment rows earlier committed runs closed, and which still wait (0012).

    A file a committed run read is read again only for its open rows: those whose latest
    decision has an outcome in `OPEN_OUTCOMES`. Rows of files no committed run read are all new.
    """

    consumed: dict[str, str] = field(default_factory=dict)  # sha256 -> the first run that read it
    open_rows: dict[str, list[int]] = field(default_factory=dict)  # sha256 -> source rows

    def split(self, sha256: str, rows: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        """Return a file's rows still to decide, and how many are closed."""
        if sha256 not in self.consumed:
            return rows, 0
        keep = rows.filter(pl.col("source_row").is_in(self.open_rows.get(sha256, [])))
        return keep, rows.height - keep.height


@dataclass(frozen=True)
class Ledger:
    """Who was paid, which enrollment rows are closed, and the chain's last link."""

    # person_key, instalment, amount_krw, run_id, run_month (the later of the paying run's month
    # and the month it committed in, Asia/Seoul: what a later instalment's due date counts from)
    paid: pl.DataFrame
    reread: Reread = field(default_factory=Reread)
    used: pl.DataFrame | None = None  # person_key, application_id: applications that paid
    # the payments owed again after a failed attempt (REISSUE_SCHEMA): issue 15
    reissue: pl.DataFrame | None = None
    # the committed decision files (checked) and the results imported, for figures on demand
    decided: pl.LazyFrame | None = None
    events: pl.LazyFrame | None = None
    # run_id, attempt_state: each paying run's release (flows.audit.release), issue 18
    released: pl.DataFrame | None = None
    # officers' newest decision per held application (REVIEWED_SCHEMA of flows.decide.rules)
    reviews: pl.DataFrame | None = None

    def money_per_run(self) -> pl.DataFrame:
        """Return per earlier run: attempts and won issued, and per state after the results.

        Columns: run_id, state (the run's release state for attempts no result answered yet:
        ISSUED, RELEASED or VOIDED), attempts, amount_krw. Aggregated as it streams: no table of
        every attempt is kept.
        """
        if self.decided is None:
            return pl.DataFrame(
                schema={
                    "run_id": pl.String,
                    "state": pl.String,
                    "attempts": pl.UInt32,
                    "amount_krw": pl.Int64,
                }
            )
        issued = self.decided.filter(
            (pl.col("outcome") == "PAID") & (pl.col("source_kind") == "enrollment")
        ).select(
            pl.col("run_id").cast(pl.String),
            "amount_krw",
            instruction_id=tried.instruction_id(
                pl.col("payment_id"), pl.col("attempt").fill_null(1)
            ),
        )
        events = self.events if self.events is not None else EMPTY_EVENTS.lazy()
        final = tried.final_results(events)
        released = self.released if self.released is not None else EMPTY_RELEASED
        return (
            issued.join(final, on="instruction_id", how="left")
            .join(released.lazy(), on="run_id", how="left")
            .with_columns(state=pl.coalesce("state", "attempt_state", pl.lit(tried.AT_COMMIT)))
            .drop("attempt_state")
            .group_by("run_id", "state")
            .agg(attempts=pl.len(), amount_krw=pl.col("amount_krw").sum())
            .sort("run_id", "state")
            .collect(engine="streaming")
        )

    @property
    def paid_total_krw(self) -> int:
        """Return the won paid by committed runs so far."""
        return won_total(self.paid["amount_krw"])

    def paid_before(self, instalment: int) -> pl.DataFrame:
        """Return the person keys paid `instalment` by an earlier committed run."""
        return self.paid.filter(pl.col("instalment") == instalment).select("person_key").unique()

    def progress(self, program: Program, run_month: str) -> pl.DataFrame:
        """Return, per person paid any instalment, where they stand in a run of `run_month`.

        Columns: person_key, last_paid (highest instalment paid), next_instalment (null when all
        are paid), next_due (the next instalment falls due in or before `run_month`: its
        `due.months` after the run month that paid the instalment it counts from), next_due_on
        (that day: an application for it must be made on or after it) and used_applications
        (the application ids that paid them: an application pays at most one instalment).
        See docs/decisions/0010-instalments.md.
        """
        month = pl.concat_str(pl.col("run_month"), pl.lit("-01")).str.to_date("%Y-%m-%d")
        now = dt.date.fromisoformat(f"{run_month}-01")
        per_person = self.paid.group_by("person_key").agg(
            last_paid=pl.col("instalment").max(),
            **{
                f"paid_{i.number}": month.filter(pl.col("instalment") == i.number).min()
                for i in program.instalments
            },
        )
        due_on: pl.Expr = pl.lit(None, dtype=pl.Date)
        count = len(program.instalments)
        for inst in reversed(program.instalments[1:]):
            base = pl.col(f"paid_{inst.due.instalment}").dt.offset_by(f"{inst.due.months}mo")
            due_on = pl.when(pl.col("last_paid") + 1 == inst.number).then(base).otherwise(due_on)
        used = self.used if self.used is not None else EMPTY_USED
        applications = used.group_by("person_key").agg(used_applications="application_id")
        return (
            per_person.select(
                "person_key",
                "last_paid",
                next_instalment=pl.when(pl.col("last_paid") < count).then(pl.col("last_paid") + 1),
                next_due=(due_on <= now).fill_null(False),
                next_due_on=due_on,
            )
            .join(applications, on="person_key", how="left")
            .with_columns(pl.col("used_applications").fill_null(pl.lit([], pl.List(pl.String))))
        )


EMPTY_PAID = pl.DataFrame(
    schema={
        "person_key": pl.String,
        "instalment": pl.Int64,
        "amount_krw": pl.Int64,
        "run_id": pl.String,
        "run_month": pl.String,
    }
)
EMPTY_USED = pl.DataFrame(schema={"person_key": pl.String, "application_id": pl.String})
EMPTY_ATTEMPTS = pl.DataFrame(schema=tried.ATTEMPT_SCHEMA)
EMPTY_EVENTS = tried.empty_events().with_columns(
    result_run_id=pl.lit(None, pl.String), _order=pl.lit(None, pl.Int64)
)


# Decision record columns later versions added: files written before them read back as null.
EMPTY_RELEASED = pl.DataFrame(schema={"run_id": pl.String, "attempt_state": pl.String})
LATER_COLUMNS = {"attempt": pl.Int64(), "reissue_of": pl.String()}


def scan_decisions(files: list[Path]) -> pl.LazyFrame:
    """Scan decision files written by any version: a column a file lacks reads as null.

    The newest file leads (polars takes the first file's columns and inserts the missing ones
    in the others), and a column no file has yet is added as null.
    """
    frame = pl.scan_parquet(files[::-1], hive_partitioning=True, missing_columns="insert")
    have = frame.collect_schema().names()
    return frame.with_columns(
        pl.lit(None, dtype).alias(name) for name, dtype in LATER_COLUMNS.items() if name not in have
    )


def trail_problem(path: Path) -> str | None:
    """Return what makes a trail Parquet file unreadable (its footer and schema), or None."""
    try:
        pl.read_parquet_schema(path)
    except (pl.exceptions.PolarsError, OSError) as e:
        return unreadable(e)
    return None


def unreadable(error: Exception) -> str:
    """Return the problem of a Parquet file a reader refused, in one short line."""
    why = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
    return _("is not a readable Parquet file ({name})").format(name=why)


def read_trail(out: Path, path: Path) -> pl.DataFrame:
    """Read one Parquet file of the trail; raise TrailDamaged naming it when it cannot be read."""
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise TrailDamaged(str(path.relative_to(out)), unreadable(e)) from None


def scan_trail(out: Path, source: Path, hive_partitioning: bool | None = None) -> pl.LazyFrame:
    """Scan trail Parquet files (`source`: a glob under `out`) once each file's footer reads.

    A truncated or overwritten file raises TrailDamaged naming it, not a reader's traceback.
    """
    for path in sorted(out.glob(str(source.relative_to(out)))):
        problem = trail_problem(path)
        if problem is not None:
            raise TrailDamaged(str(path.relative_to(out)), problem)
    return pl.scan_parquet(source, hive_partitioning=hive_partitioning)


def check_trail(out: Path, program: str) -> None:
    """Raise TrailDamaged naming a run record or decisions file of `program` that cannot be read.

    Reads only each file's footer: cheap enough to run before a run starts at all.
    """
    for pattern in (
        str(layout.run_record_file(program, "*")),
        f"{layout.decisions_dir(program, '*', '*')}/*.parquet",
    ):
        for path in sorted(out.glob(pattern)):
            problem = trail_problem(path)
            if problem is not None:
                raise TrailDamaged(str(path.relative_to(out)), problem)


def run_records(out: Path, program: str, with_file: bool = False) -> pl.DataFrame:
    """Return every run record of a program, oldest first (empty when there are none).

    `with_file` adds `record_file`, the path each record was read from (for verification).
    """
    folder = out / layout.run_record_file(program, "x").parent
    files = sorted(folder.glob("run_id=*.parquet")) if folder.is_dir() else []
    if not files:
        return pl.DataFrame()
    frames = [read_trail(out, f) for f in files]
    if with_file:
        frames = [
            f.with_columns(record_file=pl.lit(str(p.relative_to(out))))
            for f, p in zip(frames, files, strict=True)
        ]
    # Records written before a column existed (key_fingerprint) read back with it null.
    return pl.concat(frames, how="diagonal_relaxed").sort("finished_at", "run_id")


def sha256_file(path: Path) -> str:
    """Return a file's SHA-256, read in 4 MiB blocks (decision parts can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def ledger_files(
    out: Path, committed: pl.DataFrame, folder: str = "audit/decisions/"
) -> list[Path]:
    """Return the decision files of committed runs, each checked against its run record.

    The ledger is only as good as these files: a deleted or edited one would make its payees look
    unpaid and pay them again. So every file a committed run lists under `audit/decisions/` must
    exist with the SHA-256 its record holds, or the run halts naming the first one that does not.
    Only the listed files are read (a file added to a run's folder is not part of the ledger).
    Hashing runs on two threads (hashlib releases the GIL); its cost is in docs/performance.md.
    """
    listed = [
        (row["run_id"], o["file"], o["sha256"])
        for row in committed.select("run_id", "outputs").iter_rows(named=True)
        for o in row["outputs"]
        if o["file"].startswith(folder)
    ]
    missing = next(((r, f) for r, f, _ in listed if not (out / f).is_file()), None)
    if missing is None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            digests = list(pool.map(lambda item: sha256_file(out / item[1]), listed))
        changed = [(r, f) for (r, f, want), got in zip(listed, digests, strict=True) if got != want]
        if not changed:
            return [out / f for _, f, _ in listed]
        run_id, file = changed[0]
        damage = trail_problem(out / file)
        if damage is not None:  # cut short or overwritten: the same line as every other reader
            raise TrailDamaged(file, damage)
        problem = _("was changed (its SHA-256 differs from the run record)")
    else:
        run_id, file = missing
        problem = "is missing"
    raise untrusted(
        f"{file} of committed run {run_id} {problem}, and without it the people that run paid "
        "would be paid again"
    )


def untrusted(what: str) -> LedgerUntrusted:
    """Return the halt for a trail the ledger cannot be read from as it was written."""
    return LedgerUntrusted(
        _(
            "run halted: the ledger cannot be trusted: {what}; nothing was "
            "paid. Restore the audit folder from backup (do not delete or "
            "edit trail files), check it with `jiwon audit verify`, and run "
            "again."
        ).format(what=what)
    )


def check_records(out: Path, runs: pl.DataFrame, program: str, key: Ed25519PublicKey) -> None:
    """Halt unless every run record of `program` is sealed, signed and chained as written.

    Cheap (records are one row each) and run before anything else reads them: an edited record
    (a removed key fingerprint, an output list pointing elsewhere, a status changed to dry run)
    no longer matches its `run_sha256`; a record resealed by hand, or forged, lacks the city's
    signature (`key`: the public half of the signing key this run signs with, decision note
    0013); a removed record breaks the next one's link or leaves its decisions behind.
    """
    # flows.audit imports the decide stage: imported here, where it is needed
    from flows.audit import signing
    from flows.audit.records import record_from_row
    from flows.audit.rotation import signature_problems, signing_eras

    chain = signing_eras(runs) if runs.height else ([], [])
    unsigned = signature_problems(runs, [key], chain) if runs.height else {}
    previous: str | None = None
    for index, row in enumerate(runs.iter_rows(named=True) if runs.height else []):
        where = f"run record {layout.run_record_file(program, row['run_id'])}"
        record = record_from_row(row)
        if not record.seal_holds():
            raise untrusted(f"{where} was edited (its run_sha256 does not match its content)")
        if (problem := unsigned.get(index)) is not None:
            raise untrusted(f"{where} {problem}")
        if record.program != program or (
            "record_file" in row
            and Path(row["record_file"]).name != f"run_id={record.run_id}.parquet"
        ):
            raise untrusted(
                f"{row.get('record_file', where)} holds run {record.run_id} of program "
                f"{record.program} (a record copied or replayed)"
            )
        if row["prev_run_sha256"] != previous:
            raise untrusted(
                f"{where} does not link to the run before it (a run record was deleted, "
                "added or moved)"
            )
        previous = row["run_sha256"]
    eras = chain[0]
    current = eras[-1].key if len(eras) > 1 else None  # the last signing-key rotation's key
    if current is not None and signing.key_id(current) != signing.key_id(key):
        raise UsageError(
            _(
                "bad usage: program {program}'s signing key was rotated to key "
                "id {value}…, and the key given (id {value2}…) is another: runs "
                "(and rotations) are signed with the program's current key only. "
                "Set JIWON_SIGNING_KEY (or, rotating, "
                "JIWON_SIGNING_KEY_PREVIOUS) to it from your secret store."
            ).format(
                program=program, value=signing.key_id(current)[:12], value2=signing.key_id(key)[:12]
            )
        )
    known = set(runs["run_id"].to_list()) if runs.height else set()
    folder = out / "audit/decisions" / f"program={program}"
    imports = out / "audit/results" / f"program={program}"
    reviews = out / "audit/reviews" / f"program={program}"
    for found in [
        *(sorted(folder.glob("run_month=*/run_id=*")) if folder.is_dir() else []),
        *(sorted(imports.glob("run_id=*")) if imports.is_dir() else []),
        *(sorted(reviews.glob("run_id=*")) if reviews.is_dir() else []),
    ]:
        if found.name.removeprefix("run_id=") not in known:
            raise untrusted(
                f"{found.relative_to(out)} holds decisions or results of a run or import that "
                "has no run record (a run record was deleted)"
            )


def read_ledger(out: Path, program: str, runs: pl.DataFrame | None = None) -> Ledger:
    """Read the ledger of a program from its committed runs (`runs`: its records, if read)."""
    runs = run_records(out, program) if runs is None else runs
    if runs.height == 0:
        return Ledger(EMPTY_PAID)
    committed = runs.filter((pl.col("status") == "committed") & ~pl.col("dry_run"))
    consumed: dict[str, str] = {}
    for row in committed.select("run_id", "inputs").iter_rows(named=True):
        for item in row["inputs"]:
            if item["kind"] == "enrollment" and item["skipped_by_run"] is None:
                consumed.setdefault(item["sha256"], row["run_id"])
    paid, used, open_rows = EMPTY_PAID, EMPTY_USED, {}
    reissue, decided, events, reviews = None, None, None, None
    released = release.attempt_states(runs)
    files = ledger_files(out, committed)
    if files:
        decided = scan_decisions(files)
        events = result_events(out, runs, committed)
        reviews = latest_reviews(out, runs, committed)
        failed, reissue = owed(out, runs, committed, decided, events, released)
        paying = decided.filter(pl.col("outcome") == "PAID")
        if failed.height:  # a failed attempt is not a payment: its person is owed again
            paying = paying.with_columns(pl.col("attempt").fill_null(1).cast(pl.Int64)).join(
                failed.lazy(), on=["payment_id", "attempt"], how="anti"
            )
        narrow = paying.select(
            "source_kind",
            "person_key",
            "application_id",
            "instalment",
            "amount_krw",
            "run_id",
            pl.col("run_month").cast(pl.String),
        )
        both = person_keys_now(out, runs, committed, narrow).collect()
        registry = pl.col("source_kind") == "registry"
        # A payment counts from the later of its run month and the month its run committed in
        # (Seoul): a run labelled with an old month cannot bring a later instalment forward.
        committed_in = committed.select(
            "run_id",
            committed_month=pl.col("finished_at")
            .dt.convert_time_zone("Asia/Seoul")
            .dt.strftime("%Y-%m"),
        )
        paid = (
            both.filter(registry)
            .join(committed_in, on="run_id", how="left")
            .with_columns(
                run_month=pl.max_horizontal("run_month", pl.col("committed_month").fill_null(""))
            )
            .select(EMPTY_PAID.columns)
        )
        used = both.filter(~registry).select(EMPTY_USED.columns)
        persons = reissue["person_key"] if reissue is not None else None
        open_rows = still_open(
            files,
            committed,
            failed,
            persons,
            lambda frame: person_keys_now(out, runs, committed, frame),
        )
    return Ledger(
        paid,
        Reread(consumed, open_rows),
        used,
        reissue,
        decided,
        events,
        released=released,
        reviews=reviews,
    )


def owed(
    out: Path,
    runs: pl.DataFrame,
    committed: pl.DataFrame,
    decided: pl.LazyFrame,
    events: pl.LazyFrame,
    released: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return the failed attempts (payment_id, attempt) and the payments owed again (15).

    Reads little however large the program: only the attempts a result ever failed or a
    rejected release voided, and the decision records and results of their payments (a
    program with no failure reads none).
    """
    from flows.decide.rules import empty_reissue

    failing = events.filter(pl.col("state").is_in([tried.REJECTED, tried.RETURNED]))
    voided = released.filter(pl.col("attempt_state") == tried.VOIDED)["run_id"]
    touched = failing.select("payment_id")
    if voided.len():
        touched = pl.concat(
            [
                touched,
                decided.filter(
                    (pl.col("outcome") == "PAID")
                    & (pl.col("source_kind") == "enrollment")
                    & pl.col("run_id").cast(pl.String).is_in(voided.implode())
                ).select("payment_id"),
            ]
        )
    touched_ids = touched.unique().collect()
    if not touched_ids.height:
        return tried.failed_attempts(tried.states(EMPTY_ATTEMPTS, EMPTY_EVENTS, released)), (
            empty_reissue().collect()
        )
    theirs = decided.join(touched_ids.lazy(), on="payment_id", how="semi")
    issued = tried.issued(person_keys_now(out, runs, committed, theirs)).collect()
    answers = events.join(touched_ids.lazy(), on="payment_id", how="semi").collect()
    current = tried.states(issued, answers, released)
    return tried.failed_attempts(current), tried.owed_again(current)


def result_events(out: Path, runs: pl.DataFrame, committed: pl.DataFrame) -> pl.LazyFrame:
    """Scan every result line committed results imports recorded, in chain order (`_order`).

    Each results file is checked against its import's run record like a decision file; adds
    `result_run_id` (the import) and `_order` (the import's place in the chain, then its line).
    """
    lines = import_lines(out, runs, committed, tried.RESULTS, "audit/results/", "result_run_id")
    return EMPTY_EVENTS.lazy() if lines is None else lines


def import_lines(
    out: Path, runs: pl.DataFrame, committed: pl.DataFrame, trigger: str, folder: str, by: str
) -> pl.LazyFrame | None:
    """Scan the lines committed imports of `trigger` recorded under `folder`, in chain order.

    Each file is checked against its import's run record like a decision file (an edited or
    deleted one halts); adds `by` (the import's run id) and `_order` (the import's place in
    the chain, then the line's `seq`). None: no such import.
    """
    importing = committed.filter(pl.col("trigger") == trigger)
    files = ledger_files(out, importing, folder) if importing.height else []
    if not files:
        return None
    order = runs.with_row_index("_seq").select(
        pl.col("run_id").alias(by), _seq=pl.col("_seq").cast(pl.Int64)
    )
    return (
        pl.scan_parquet(files, hive_partitioning=True)
        .rename({"run_id": by})
        .drop("program", strict=False)
        .join(order.lazy(), on=by, how="left")
        .with_columns(_order=pl.col("_seq") * (1 << 32) + pl.col("seq"))
        .drop("_seq")
    )


def review_decisions(out: Path, runs: pl.DataFrame, committed: pl.DataFrame) -> pl.LazyFrame | None:
    """Scan every decision committed review imports recorded (`import_lines`), or None."""
    return import_lines(out, runs, committed, tried.REVIEW, "audit/reviews/", "review_run_id")


def latest_reviews(out: Path, runs: pl.DataFrame, committed: pl.DataFrame) -> pl.DataFrame | None:
    """Return each application's newest recorded review decision, under the current key.

    Columns: REVIEWED_SCHEMA of flows.decide.rules (application_id, person_key, decision).
    """
    from flows.audit.reviews import newest_reviews
    from flows.decide.rules import REVIEWED_SCHEMA

    recorded = review_decisions(out, runs, committed)
    if recorded is None:
        return None
    newest = newest_reviews(recorded).select(
        "application_id", "person_key", "decision", run_id="review_run_id"
    )
    return person_keys_now(out, runs, committed, newest).select(REVIEWED_SCHEMA.names()).collect()


def payment_states(
    out: Path, program: str, runs: pl.DataFrame | None = None, payment_ids: pl.Series | None = None
) -> pl.DataFrame:
    """Return the program's attempts with their states after the results imported so far.

    `payment_ids`: only these payments' attempts (a results import checks its lines' only).
    Every decision and results file is checked against its record first, as a run does.
    """
    runs = run_records(out, program) if runs is None else runs
    released = release.attempt_states(runs)
    if not runs.height:
        return tried.states(EMPTY_ATTEMPTS, EMPTY_EVENTS, released)
    committed = runs.filter((pl.col("status") == "committed") & ~pl.col("dry_run"))
    files = ledger_files(out, committed)
    if not files:
        return tried.states(EMPTY_ATTEMPTS, EMPTY_EVENTS, released)
    decided = scan_decisions(files)
    events = result_events(out, runs, committed)
    if payment_ids is not None:
        wanted = pl.LazyFrame({"payment_id": payment_ids.unique()})
        decided = decided.join(wanted, on="payment_id", how="semi")
        events = events.join(wanted, on="payment_id", how="semi")
    issued = tried.issued(person_keys_now(out, runs, committed, decided))
    return tried.states(issued.collect(), events.collect(), released)


def rotation_maps(
    out: Path, runs: pl.DataFrame, committed: pl.DataFrame
) -> list[tuple[int, pl.LazyFrame]]:
    """Return the personal-data key rotations of a program: (place in `runs`, map), oldest first.

    Each map file is checked against its run record's SHA-256 like a decision file.
    """
    from flows.audit.rotation import PII, rotations

    ids = set(committed["run_id"]) if committed.height else set()
    found = [r for r in rotations(runs) if r.kind == PII and r.file and r.run_id in ids]
    if not found:
        return []
    files = {str(p.relative_to(out)): p for p in ledger_files(out, committed, "audit/rotations/")}
    return [(r.seq, pl.scan_parquet(files[str(r.file)])) for r in found]


def person_keys_now(
    out: Path, runs: pl.DataFrame, committed: pl.DataFrame, frame: pl.LazyFrame
) -> pl.LazyFrame:
    """Return `frame`'s person keys as the program's current key gives them (0014)."""
    from flows.audit.rotation import translate

    maps = rotation_maps(out, runs, committed)
    order = runs.with_row_index("_seq").select("run_id", pl.col("_seq").cast(pl.Int64))
    return translate(frame, order, maps)


def still_open(
    files: list[Path],
    committed: pl.DataFrame,
    failed: pl.DataFrame | None = None,
    owed_persons: pl.Series | None = None,
    keys: Callable[[pl.LazyFrame], pl.LazyFrame] | None = None,
) -> dict[str, list[int]]:
    """Return, per enrollment file (SHA-256), the rows whose latest decision left them open.

    Candidates are the rows decided with an open outcome (few), and the applications whose
    payment attempt failed (`failed`: payment_id, attempt; a bank or card result rejected or
    returned it, issue 15) and every other application of a person owed again
    (`owed_persons`, their person keys under the current key; `keys` translates the records'
    keys to it, 0014): they are decided again. A later committed run that decided the same row
    again (read from the same file content) settles it either way.
    """
    from flows.decide.codes import OPEN_OUTCOMES

    order = committed.with_row_index("_seq").select("run_id", "_seq")
    sources = (
        committed.select("run_id", "inputs")
        .explode("inputs")
        .unnest("inputs")
        .filter(pl.col("kind") == "enrollment")
        .select("run_id", source_file="file", source_sha256="sha256")
    )
    waits = pl.col("outcome").is_in(OPEN_OUTCOMES)
    columns = ["run_id", "source_file", "source_row", "outcome"]
    if failed is not None and failed.height:  # only then are payment ids read at all
        instructions = tried.instruction_id(pl.col("payment_id"), pl.col("attempt"))
        failing = failed.select(instructions)["payment_id"].implode()
        attempt = tried.instruction_id(pl.col("payment_id"), pl.col("attempt").fill_null(1))
        waits = waits | ((pl.col("outcome") == "PAID") & attempt.is_in(failing))
        columns += ["payment_id", "attempt"]
    if owed_persons is not None and owed_persons.len():
        # every other application of a person owed again is decided again too: one of them
        # (a duplicate of the failed one, with other details) may be the one to pay now
        persons = owed_persons.unique().implode()
        waits = waits | ((pl.col("outcome") != "PAID") & pl.col("person_key").is_in(persons))
        columns += ["person_key"]
    scanned = scan_decisions(files).filter(pl.col("source_kind") == "enrollment").select(columns)
    if "person_key" in columns and keys is not None:
        scanned = keys(scanned)
    decided = (
        scanned.join(sources.lazy(), on=["run_id", "source_file"], how="inner")
        .join(order.lazy(), on="run_id", how="inner")
        .with_columns(_open=waits)
    )
    candidates = decided.filter("_open").select("source_sha256", "source_row")
    latest = (
        decided.join(candidates.unique(), on=["source_sha256", "source_row"], how="semi")
        .sort("_seq")
        .group_by("source_sha256", "source_row")
        .agg(pl.col("_open").last())
        .filter("_open")
        .group_by("source_sha256")
        .agg(pl.col("source_row").sort())
        .collect()
    )
    return {sha: rows for sha, rows in latest.iter_rows()}
