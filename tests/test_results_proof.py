"""The proof of exactly once in money (issue 15, item 7): six monthly cycles on 20,000 residents.

Every cycle a real `jiwon run` pays a month (SIGKILLed at a random moment in some cycles, then run
again); a simulated bank and card operator answer each committed run (flows.results.simulate:
random rejections and later returns, in the card operator's CSV, the bank's fixed-width result
file and pain.002), and the answers arrive through real `jiwon results import` processes: some
late (a later cycle, some never), out of order (returns of one run before another run's answers,
a pain.002 saying pending before the final one), several files at once, some imports SIGKILLed
mid-way and imported again, a file imported twice. People whose payout details a result refused
send a corrected card or account in a later enrollment delivery (a quarter never do); some
people already settled or in flight send one they do not need, and a few send one before the
result refusing their card or account has arrived (it must be paid once it has).

After every step the trail (decision records, results files and run records: polars on
OUT/audit) shows no payment settled twice or in flight twice, nothing published by a run or
import that did not commit, and each run paid again exactly the payments that were owed. At the
end everyone a single clean run pays (eligible, with a valid application) is settled, in flight
(their answer never came) or owed with a stated reason; settled won in the reconciliation equal,
to the won, what the imported result files say was credited and not sent back; and `jiwon audit
verify` passes.

The livelihood program offers bank payouts here (as in tests/support/banktrail.py), and one
application in twenty asks for one, so every result format is exercised. `--kill-seed` varies
the story: population, fates, delays, corrections and kill moments.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from lxml import etree

from fixtures.generate import generate_population, write_population
from flows.inputs.reference import load_layout
from flows.pay import bankfile, pain001
from flows.results.formats import read_result_file
from flows.results.simulate import simulate
from flows.run.results import reconciliation
from tests.conftest import ROOT, TEST_KEY
from tests.support.flowrun import run_flow
from tests.support.processes import JIWON, env, finish, kill, start

pytestmark = [pytest.mark.slow, pytest.mark.flow, pytest.mark.usefixtures("prefect_backend")]

PROGRAM = "paju-livelihood-2025"
ROWS = 20_000
MONTHS = ("2025-02", "2025-03", "2025-04", "2025-05", "2025-06", "2025-07")
FINAL = len(MONTHS)  # the stage after the last run: the last answers arrive, nobody is paid
CUTS = ("2025-02-10", "2025-03-10")  # enrollment deliveries: applied before each cut, the rest
BANK_EVERY = 20  # one application in twenty asks for a bank transfer
BANK_CODES = ("004", "011", "020", "081", "088")
BANK_FILES = ("fixed_width", "pain.001")  # alternate months: both bank result formats
CORRECTED_SHARE = 0.75  # people whose details were refused and who send corrected ones
UNNEEDED = 10  # corrections per delivery from people already settled or in flight
EARLY = 3  # ... and from people whose attempt a result not delivered yet will refuse
KILLED_RUNS = 3  # of the cycles after the first
KILL_IMPORT_SHARE = 0.3
FORCED_IMPORT_KILLS = (2, 4, FINAL)  # cycles whose first import is SIGKILLed
DEFERRED_IMPORT = 3  # the cycle whose last import is SIGKILLed and retried after the run
SETTLED, RELEASED, FAILED = "SETTLED", "RELEASED", ("REJECTED", "RETURNED", "VOIDED")
OWED_AGAIN, DETAILS_REJECTED = "PAYMENT_OWED_AGAIN", "PAYOUT_DETAILS_REJECTED"


@dataclass
class ResultFile:
    """A result file of the simulated bank or card operator, and when it arrives."""

    path: Path
    run_id: str
    kind: str  # "pending" (pain.002 saying PDNG), "answer" or "returns"
    due: int  # the cycle it arrives in (FINAL: after the last run; later: never)
    after: Path | None = None  # imported only after this one (its answer, or its pending)


@dataclass
class Correction:
    """A corrected application: new payout details in a later enrollment delivery."""

    person_key: str
    row: dict[str, str | None]
    due: int  # the cycle whose delivery carries it
    details: str  # the new card id, or the new account number


# -- data ----------------------------------------------------------------------------------


def offer_bank(folder: Path) -> Path:
    """Return a programs folder whose livelihood program also pays to bank accounts."""
    source = ROOT / "rules/programs" / PROGRAM / "program.yaml"
    text = source.read_text(encoding="utf-8")
    assert "payout_channels: [local_currency]" in text
    target = folder / PROGRAM / "program.yaml"
    target.parent.mkdir(parents=True)
    target.write_text(
        text.replace(
            "payout_channels: [local_currency]", "payout_channels: [local_currency, bank]"
        ),
        encoding="utf-8",
    )
    return folder


def with_bank_payouts(frame: pl.DataFrame) -> pl.DataFrame:
    """Let one card application in BANK_EVERY ask for a bank transfer (a unique account each)."""
    i = pl.int_range(pl.len())
    bank = (pl.col("payout") == "local_currency") & (i % BANK_EVERY == 7)
    code = pl.lit(pl.Series(BANK_CODES)).gather(i % len(BANK_CODES))
    return frame.with_columns(
        payout=pl.when(bank).then(pl.lit("bank")).otherwise("payout"),
        card_id=pl.when(bank).then(None).otherwise("card_id"),
        bank_code=pl.when(bank).then(code).otherwise("bank_code"),
        account_no=pl.when(bank)
        .then((i + 100_200_300_000).cast(pl.String))
        .otherwise("account_no"),
        account_holder=pl.when(bank).then(pl.format("예금주{}", i)).otherwise("account_holder"),
    )


def population(root: Path, seed: int) -> tuple[Path, list[list[Path]]]:
    """Generate ROWS residents once; return the registry and three enrollment deliveries."""
    generated = root / "generated"
    write_population(generate_population(ROWS, seed=seed), generated)
    parts = root / "parts"
    parts.mkdir()
    deliveries: list[list[Path]] = [[], [], []]
    day = pl.col("applied_at").str.slice(0, 10)
    which = pl.when(day < CUTS[0]).then(0).when(day < CUTS[1]).then(1).otherwise(2)
    for source in sorted((generated / "enrollments").glob("*.csv")):
        frame = with_bank_payouts(pl.read_csv(source, infer_schema=False))
        frame = frame.with_columns(_delivery=which)
        for n, files in enumerate(deliveries):
            part = frame.filter(pl.col("_delivery") == n).drop("_delivery")
            if part.height:  # an extract with a header and no rows is refused
                files.append(parts / f"{source.stem}_{n + 1}.csv")
                part.write_csv(files[-1])
    return generated / "registry", deliveries


# -- the trail, read with polars -------------------------------------------------------------


def run_records(out: Path) -> pl.DataFrame:
    """Return every run record (runs and imports), in chain order."""
    if not (out / "audit/runs").is_dir():
        return pl.DataFrame(schema={"run_id": pl.String, "trigger": pl.String})
    return pl.read_parquet(out / "audit/runs/**/*.parquet").sort("started_at")


def committed(out: Path, imports: bool) -> list[str]:
    """Return the committed runs (imports: the committed results imports), in chain order."""
    runs = run_records(out)
    if not runs.height:
        return []
    kind = pl.col("trigger") == "results_import"
    runs = runs.filter(pl.col("status") == "committed", ~pl.col("dry_run"))
    runs = runs.filter(pl.col("trigger") != "approval")
    return runs.filter(kind if imports else ~kind)["run_id"].to_list()


def run_releases(out: Path) -> pl.DataFrame:
    """Return (run_id, release): ISSUED, RELEASED or VOIDED, read from the approval records.

    The program needs one approver: an approval releases a run, a rejection voids it.
    """
    runs = run_records(out)
    paying = committed(out, imports=False)
    decided = {}
    if runs.height:
        approvals = runs.filter(pl.col("trigger") == "approval", pl.col("status") == "committed")
        for body in approvals["parameters"].to_list():
            approval = json.loads(body)["approval"]
            decided.setdefault(approval["run_id"], approval["decision"])
    states = {"approve": RELEASED, "reject": "VOIDED"}
    return pl.DataFrame(
        {"run_id": paying, "release": [states.get(decided.get(r, ""), "ISSUED") for r in paying]},
        schema={"run_id": pl.String, "release": pl.String},
    )


def decisions(out: Path) -> pl.DataFrame:
    """Return the decision records of committed runs."""
    runs = committed(out, imports=False)
    return (
        pl.scan_parquet(out / "audit/decisions/**/*.parquet", hive_partitioning=True)
        .filter(pl.col("run_id").is_in(runs))
        .collect()
    )


def attempts(out: Path) -> pl.DataFrame:
    """Return every attempt (PAID enrollment record) with its state from the results files.

    The state is the last result that is not IN_FLIGHT, imports in chain order and lines in
    their order; an attempt without one is in its run's release state (`run_releases`).
    """
    paid = decisions(out).filter(pl.col("source_kind") == "enrollment", pl.col("outcome") == "PAID")
    tried = paid.select(
        "payment_id",
        "attempt",
        "person_key",
        "application_id",
        "payout",
        "amount_krw",
        "reissue_of",
        "run_id",
        "payment_file",
        instruction_id=pl.format("{}-{}", "payment_id", "attempt"),
        payout_key=pl.coalesce("account_key", "card_key"),
    )
    imports = committed(out, imports=True)
    frames = [
        pl.read_parquet(
            out / f"audit/results/program={PROGRAM}/run_id={r}/results.parquet"
        ).with_columns(_import=pl.lit(n), imported_by=pl.lit(r))
        for n, r in enumerate(imports)
    ]
    releases = run_releases(out)
    tried = tried.join(releases, on="run_id", how="left")
    if not frames:
        return tried.with_columns(
            state=pl.col("release"),
            reason_code=pl.lit(None, pl.String),
            details_wrong=pl.lit(False),
            imported_by=pl.lit(None, pl.String),
        )
    final = (
        pl.concat(frames)
        .filter(pl.col("state") != "IN_FLIGHT")
        .sort("_import", "seq")
        .group_by("instruction_id")
        .agg(pl.all().last())
        .select("instruction_id", "state", "reason_code", "details_wrong", "imported_by")
    )
    return tried.join(final, on="instruction_id", how="left").with_columns(
        state=pl.col("state").fill_null(pl.col("release")),
        details_wrong=pl.col("details_wrong").fill_null(False),
    )


def newest(tried: pl.DataFrame) -> pl.DataFrame:
    """Return each payment's newest attempt."""
    return tried.sort("attempt").group_by("payment_id").agg(pl.all().last())


def check_trail(out: Path) -> pl.DataFrame:
    """Assert the invariants of the attempts in the trail; return the attempts."""
    tried = attempts(out)
    assert tried["instruction_id"].is_unique().all(), "an attempt was issued twice"
    per = tried.group_by("payment_id").agg(
        settled=(pl.col("state") == SETTLED).sum(),
        in_flight=pl.col("state").is_in(["ISSUED", RELEASED]).sum(),
        n=pl.len(),
        last=pl.col("attempt").max(),
        people=pl.col("person_key").n_unique(),
    )
    assert per.filter(pl.col("settled") > 1).height == 0, "a payment settled twice"
    assert per.filter(pl.col("in_flight") > 1).height == 0, "two attempts in flight"
    assert per.filter(pl.col("n") != pl.col("last")).height == 0, "attempts not 1, 2, ..."
    assert per.filter(pl.col("people") > 1).height == 0, "a payment id of two people"
    people = tried.group_by("person_key").agg(pl.col("payment_id").n_unique())
    assert people.filter(pl.col("payment_id") > 1).height == 0, "a person with two payments"
    # every attempt but the newest of its payment failed, and each re-issue names the one before
    later = tried.join(
        tried.select("payment_id", attempt=pl.col("attempt") + 1, before_state="state"),
        on=["payment_id", "attempt"],
        how="inner",
    )
    assert later.filter(~pl.col("before_state").is_in(FAILED)).height == 0, (
        "a new attempt while the one before was not failed"
    )
    reissues = tried.filter(pl.col("attempt") > 1)
    wrong_reissue = reissues.filter(
        pl.col("reissue_of") != pl.format("{}-{}", "payment_id", pl.col("attempt") - 1)
    )
    assert wrong_reissue.height == 0
    # never paid again to details a result called wrong
    refused = tried.filter(pl.col("state").is_in(FAILED), "details_wrong").select(
        "payment_id", "payout_key", refused_attempt="attempt"
    )
    repaid = tried.join(refused, on=["payment_id", "payout_key"]).filter(
        pl.col("attempt") > pl.col("refused_attempt")
    )
    assert repaid.height == 0, f"paid again to refused details: {repaid.head(3)}"
    # the engine's own view of the states agrees with the files
    engine = reconciliation(out, PROGRAM).attempts.select("instruction_id", engine="state")
    both = tried.join(engine, on="instruction_id", how="full", coalesce=True)
    assert both.filter(pl.col("state").ne_missing(pl.col("engine"))).height == 0
    return tried


def check_published(out: Path) -> None:
    """Assert that only committed runs and imports left anything, and each paying run is whole."""
    records = run_records(out)
    assert set(records["status"]) <= {"committed"}
    known = set(records["run_id"])
    found: dict[str, Path] = {}
    for pattern in (
        f"audit/decisions/program={PROGRAM}/*/run_id=*",
        f"audit/results/program={PROGRAM}/run_id=*",
        f"payments/{PROGRAM}/*",
        f"quarantine/{PROGRAM}/*",
        f"reports/{PROGRAM}/*",
    ):
        for path in out.glob(pattern):
            if path.parent.name == PROGRAM and path.name == "index.html":
                continue  # the program page belongs to no run (flows/run/page.py)
            found[path.name.removeprefix("run_id=").removesuffix(".parquet")] = path
    strays = {run: str(path) for run, path in found.items() if run not in known}
    assert strays == {}, "published by a run or import that never committed"
    for run in committed(out, imports=False):
        assert (out / "payments" / PROGRAM / run / "manifest.json").is_file(), run
    staging = out / ".staging"
    assert not staging.exists() or not any(staging.iterdir()), "staging left behind"


def staged_record(out: Path) -> bool:
    """Return whether a process has staged its run record (it is committing)."""
    staging = out / ".staging"
    return staging.is_dir() and any(
        (folder / "audit/runs").is_dir() for folder in staging.iterdir() if folder.is_dir()
    )


def check_whole(out: Path) -> None:
    """Assert, right after a SIGKILL, that every committed run and import has its audit files
    (a run's payment files may still wait for the next process to publish them)."""
    for run in committed(out, imports=False):
        assert list(out.glob(f"audit/decisions/program={PROGRAM}/*/run_id={run}/*.parquet")), run
    for run in committed(out, imports=True):
        assert (out / f"audit/results/program={PROGRAM}/run_id={run}/results.parquet").is_file(), (
            run
        )


# -- the story -------------------------------------------------------------------------------


class Story:
    """Six months of one program's payments, results and corrections on one output root."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root, self.seed, self.rng = root, seed, random.Random(seed)
        self.out, self.data, self.results = root / "out", root / "in", root / "results"
        self.programs = offer_bank(root / "programs")
        self.environ = env(TEST_KEY, root)
        self.registry, self.deliveries = population(root, seed)
        (self.data / "enrollments").mkdir(parents=True)
        self.applications = pl.DataFrame()  # every application delivered so far, as text
        self.cycle_of_run: dict[str, int] = {}
        self.files: list[ResultFile] = []
        self.delivered: set[Path] = set()  # result files handed to an import that committed
        self.corrections: list[Correction] = []
        self.considered: set[str] = set()  # failed attempts whose person decided on correcting
        self.run_took = self.import_took = 0.0
        self.log: list[str] = []
        self.sequence: list[list[ResultFile]] = []  # the committed imports' files, in order
        self.kills: list[tuple[str, bool]] = []  # (run or import, had it committed)
        self.fixed = 0  # re-issues paid to corrected details
        self.early = 0  # corrections sent while the refused attempt was still in flight or settled

    # -- processes ---------------------------------------------------------------------------

    def jiwon(self, args: list[str]) -> tuple[int, str, str]:
        """Run `jiwon ARGS` to its end; return its status, stdout and stderr."""
        return finish(start([str(JIWON), *args], self.environ))

    def timed(self, args: list[str]) -> tuple[int, str, str, float]:
        """Run `jiwon ARGS`; return also how long it took to commit (its run record)."""
        records = self.out / "audit/runs" / f"program={PROGRAM}"
        count = len(list(records.glob("*.parquet")))
        began = time.monotonic()
        process = start([str(JIWON), *args], self.environ)
        took = 0.0
        while process.poll() is None and not took:
            time.sleep(0.02)
            if len(list(records.glob("*.parquet"))) > count:
                took = time.monotonic() - began
        code, stdout, err = finish(process)
        return code, stdout, err, took or time.monotonic() - began

    def killed(self, args: list[str], took: float) -> str:
        """Run `jiwon ARGS` and SIGKILL it: half of the time at a random moment before it
        would commit (after `took` seconds), half of the time just as its run record is staged
        (publishing). Return when it was killed."""
        process = start([str(JIWON), *args], self.environ)
        began = time.monotonic()
        if self.rng.random() < 0.5:
            moment = self.rng.uniform(0.1, 1.0) * took
            time.sleep(moment)
            when = f"at {moment:.1f}s (commits after ~{took:.1f}s)"
        else:
            delay = self.rng.uniform(0.0, 0.01)
            while process.poll() is None and not staged_record(self.out):
                time.sleep(0.002)
            time.sleep(delay)
            when = f"{delay * 1000:.0f} ms after staging its run record"
        if process.poll() is not None:
            when += f", but it had finished after {time.monotonic() - began:.1f}s"
        kill(process)
        return when

    def run_args(self, cycle: int, *extra: str) -> list[str]:
        return [
            "run",
            "--program",
            PROGRAM,
            "--registry",
            str(self.registry),
            "--enrollments",
            str(self.data / "enrollments"),
            "--out",
            str(self.out),
            "--run-month",
            MONTHS[cycle],
            "--programs-dir",
            str(self.programs),
            "--bank-file",
            BANK_FILES[cycle % 2],
            "--operator",
            "proof",
            *extra,
        ]

    # -- a cycle -----------------------------------------------------------------------------

    def deliver_enrollments(self, cycle: int) -> None:
        """Put this cycle's enrollment files (new applications, corrections) in the delivery."""
        folder = self.data / "enrollments"
        files = list(self.deliveries[cycle]) if cycle < len(self.deliveries) else []
        for source in files:
            (folder / source.name).write_bytes(source.read_bytes())
        corrected = [c.row for c in self.corrections if c.due == cycle]
        frames = [pl.read_csv(f, infer_schema=False) for f in files]
        if corrected:
            header = self.applications.columns
            rows = pl.DataFrame(corrected, schema=dict.fromkeys(header, pl.String))
            path = folder / f"enrollments_corrected_{cycle + 1}.csv"
            rows.write_csv(path)
            frames.append(rows)
        if frames:
            self.applications = pl.concat([self.applications, *frames], how="diagonal")

    def pay(self, cycle: int, killed: bool) -> list[str]:
        """Run the month (killed at a random moment first, then again); return the new runs."""
        before = set(committed(self.out, imports=False))
        if killed:
            when = self.killed(self.run_args(cycle), self.run_took)
            new = set(committed(self.out, imports=False)) - before
            assert len(new) <= 1
            check_whole(self.out)
            self.kills.append(("run", bool(new)))
            published = [(self.out / "payments" / PROGRAM / r).is_dir() for r in new]
            self.log.append(
                f"cycle {cycle + 1}: run SIGKILLed {when}: "
                + ("had committed" if new else "had not committed")
                + (", its payment files not yet published" if published == [False] else "")
            )
            extra = ["--trigger", "rerun", "--reason", "the last run was killed"]
            code, _, err = self.jiwon(self.run_args(cycle, *extra))
        else:
            code, _, err, self.run_took = self.timed(self.run_args(cycle))
        assert code == 0, f"cycle {cycle + 1}: jiwon run: {err[-3000:]}"
        check_published(self.out)
        new_runs = [r for r in committed(self.out, imports=False) if r not in before]
        for run in new_runs:
            self.cycle_of_run[run] = cycle
        return new_runs

    def answer(self, cycle: int, run_id: str) -> None:
        """Let a second person release a run, then the bank and card operator answer it;
        schedule when their files arrive."""
        folder = self.out / "payments" / PROGRAM / run_id
        if not json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["files"]:
            return  # a run that paid nobody (after a killed run that had committed)
        approve = ["approve", "--program", PROGRAM, "--out", str(self.out), "--run-id", run_id]
        folder = self.out / "outbox" / PROGRAM / run_id  # what was sent
        # a run above 1,000,000,000 won needs a second, distinct approver (the program file)
        for approver in ("proof-approver-1", "proof-approver-2"):
            code, _, err = self.jiwon([*approve, "--approver", approver])
            assert code == 0, f"cycle {cycle + 1}: jiwon approve: {err[-3000:]}"
            if folder.is_dir():
                break
        assert folder.is_dir(), f"cycle {cycle + 1}: run {run_id} not released"
        written = simulate(
            folder,
            self.results / run_id,
            reject_share=self.rng.uniform(0.03, 0.1),
            return_share=self.rng.uniform(0.005, 0.03),
            seed=self.rng.randrange(2**31),
        )
        answers = {p.name: p for p in written if "_returns" not in p.name}
        for path in answers.values():
            due = cycle + self.rng.choices([1, 2, 3], weights=[60, 25, 15])[0]
            if cycle == len(MONTHS) - 1:  # the card operator's last answer never comes
                due = FINAL + 1 if path.suffix == ".csv" else FINAL
            pending = None
            if path.suffix == ".xml":  # the bank says "pending" first
                pending = pending_report(path)
                self.files.append(ResultFile(pending, run_id, "pending", cycle + 1))
            self.files.append(ResultFile(path, run_id, "answer", due, after=pending))
            stem = path.name.split("_result")[0].split("_pain002")[0]
            for returned in written:
                if returned.name.startswith(f"{stem}_returns"):
                    later = due + self.rng.choice([0, 1, 2])
                    self.files.append(ResultFile(returned, run_id, "returns", later, after=path))

    def import_results(self, cycle: int, defer: bool = False) -> list[ResultFile]:
        """Import the files arriving this cycle: in a random order their order allows, in
        batches of one to three files, some imports SIGKILLed and imported again.

        `defer`: the last batch is SIGKILLed and returned, to be imported again after the run.
        """
        pool = [f for f in self.files if f.due == cycle]
        order: list[ResultFile] = []
        placed = set(self.delivered)
        while pool:
            ready = [f for f in pool if f.after is None or f.after in placed]
            pick = self.rng.choice(ready)
            order.append(pick)
            placed.add(pick.path)
            pool.remove(pick)
        batches = []
        while order:
            size = self.rng.choice([1, 2, 3])
            batches.append(order[:size])
            order = order[size:]
        later = batches.pop() if defer and batches and self.import_took else []
        for n, batch in enumerate(batches):
            killed = n == 0 and cycle in FORCED_IMPORT_KILLS
            self.import_batch(cycle, batch, killed or self.rng.random() < KILL_IMPORT_SHARE)
        if later:
            self.kill_import(cycle, later)
        if self.delivered and self.rng.random() < 0.5:  # a file imported again: a no-op
            again = self.rng.choice(sorted(self.delivered))
            before = run_records(self.out).height
            code, stdout, err = self.jiwon(self.import_args([again]))
            assert code == 0, err[-3000:]
            assert "imported before" in stdout, stdout
            assert run_records(self.out).height == before
            self.log.append(f"cycle {cycle + 1}: {again.name} imported again: a no-op")
        return later

    def import_args(self, paths: list[Path]) -> list[str]:
        files = [str(p) for p in paths]
        return ["results", "import", "--program", PROGRAM, "--out", str(self.out), *files]

    def kill_import(self, cycle: int, batch: list[ResultFile]) -> bool:
        """SIGKILL an import of `batch` at a random moment; return whether it had committed."""
        before = set(committed(self.out, imports=True))
        when = self.killed(self.import_args([f.path for f in batch]), self.import_took)
        new = set(committed(self.out, imports=True)) - before
        assert len(new) <= 1
        check_whole(self.out)
        self.kills.append(("import", bool(new)))
        names = ", ".join(f.path.name for f in batch)
        self.log.append(
            f"cycle {cycle + 1}: import of {names} SIGKILLed {when}: "
            + ("had committed" if new else "had not committed")
        )
        if new:
            self.delivered.update(f.path for f in batch)
            self.sequence.append(batch)
        return bool(new)

    def import_batch(self, cycle: int, batch: list[ResultFile], killed: bool) -> None:
        """Import `batch` (first SIGKILLed at a random moment when `killed`)."""
        paths = [f.path for f in batch]
        names = ", ".join(p.name for p in paths)
        before = set(committed(self.out, imports=True))
        done = killed and self.import_took and self.kill_import(cycle, batch)
        code, stdout, err, took = self.timed(self.import_args(paths))
        assert code == 0, f"cycle {cycle + 1}: import of {names}: {err[-3000:]}"
        self.import_took = took if not done else self.import_took
        if done:
            assert "nothing new to import" in stdout, stdout
        else:
            self.sequence.append(batch)
        check_published(self.out)
        assert len(set(committed(self.out, imports=True)) - before) == 1
        self.delivered.update(paths)

    def correct(self, cycle: int, tried: pl.DataFrame) -> None:
        """Let most people whose details a result refused send corrected ones, this delivery or
        the next; and a few who need none send one anyway."""
        last = newest(tried)
        refused = last.filter(pl.col("state").is_in(FAILED), "details_wrong").sort("payment_id")
        for row in refused.iter_rows(named=True):
            if row["instruction_id"] in self.considered:
                continue
            self.considered.add(row["instruction_id"])
            due = cycle + self.rng.choice([0, 1])
            if self.rng.random() < CORRECTED_SHARE and due < len(MONTHS):
                self.corrections.append(self.corrected(row, due))
        corrected = {c.person_key for c in self.corrections}
        fine = last.filter(pl.col("state").is_in([SETTLED, RELEASED])).sort("payment_id")
        fine = fine.filter(~pl.col("person_key").is_in(list(corrected)))
        # Some of them will need it after all: a late answer or a return not delivered yet
        # refuses the details they were paid to (the person reported the card lost meanwhile).
        doomed = fine.filter(pl.col("instruction_id").is_in(list(self.refused_later(cycle))))
        early = self.rng.sample(list(doomed.iter_rows(named=True)), min(EARLY, doomed.height))
        fine = fine.filter(~pl.col("payment_id").is_in([r["payment_id"] for r in early]))
        for row in early + self.rng.sample(list(fine.iter_rows(named=True)), UNNEEDED):
            self.corrections.append(self.corrected(row, cycle))
        self.early += len(early)

    def refused_later(self, cycle: int) -> set[str]:
        """Return the attempts a file not delivered yet says failed with wrong details."""
        found: set[str] = set()
        for f in self.files:
            if f.due > cycle and f.kind != "pending":
                lines = read_result_file(f.path)
                wrong = lines.filter(pl.col("status").is_in(FAILED), "details_wrong")
                found |= set(wrong["instruction_id"])
        return found

    def corrected(self, attempt: dict[str, object], due: int) -> Correction:
        """Return a new application of the person behind `attempt` with new payout details."""
        found = self.applications.filter(pl.col("application_id") == attempt["application_id"])
        assert found.height >= 1, attempt["application_id"]
        row: dict[str, str | None] = dict(found.row(0, named=True))
        number = len(self.corrections) + 1
        row["application_id"] = f"C{self.seed:04d}{number:08d}"
        minute = self.rng.randrange(60 * 8)
        row["applied_at"] = f"{MONTHS[due]}-01T{9 + minute // 60:02d}:{minute % 60:02d}:00"
        to_bank = self.rng.random() < (0.8 if row["payout"] == "bank" else 0.1)
        if to_bank:
            details = str(self.rng.randrange(10**12, 10**13))
            row |= {
                "payout": "bank",
                "card_id": None,
                "bank_code": self.rng.choice(BANK_CODES),
                "account_no": details,
                "account_holder": row["account_holder"] or "예금주",
            }
        else:
            details = f"9419{self.rng.randrange(10**12):012d}"
            row |= {
                "payout": "local_currency",
                "card_id": details,
                "bank_code": None,
                "account_no": None,
                "account_holder": None,
            }
        return Correction(str(attempt["person_key"]), row, due, details)

    def owed(self, cycle: int, tried: pl.DataFrame) -> set[str]:
        """Return the payments the run of `cycle` must pay again.

        A payment whose newest attempt failed: always when the failure was temporary; when the
        details were refused, only if the person's delivery carries a correction newer than
        that attempt (delivered in a later cycle than the run that issued it).
        """
        last = newest(tried).filter(pl.col("state").is_in(FAILED))
        owed = set()
        for row in last.iter_rows(named=True):
            issued = self.cycle_of_run[row["run_id"]]
            fixed = any(
                c.person_key == row["person_key"] and issued < c.due <= cycle
                for c in self.corrections
            )
            if not row["details_wrong"] or fixed:
                owed.add(row["payment_id"])
        return owed

    def check_reissues(self, cycle: int, new_runs: list[str], owed: set[str]) -> int:
        """Assert the cycle's runs paid again exactly the owed payments, to the newest card."""
        tried = check_trail(self.out)
        now = tried.filter(pl.col("run_id").is_in(new_runs))
        again = now.filter(pl.col("attempt") > 1)
        assert owed <= set(again["payment_id"]), (
            f"cycle {cycle + 1}: paid again {again.height}, owed {len(owed)}: "
            f"not paid {sorted(owed - set(again['payment_id']))[:5]}"
        )
        # Paid again beyond the corrections: the person's other valid application (a duplicate
        # with other details, delivered earlier) is their newest payable one (lifecycle.md).
        # It must be another application than the refused attempt's, to details never refused.
        extra = again.filter(~pl.col("payment_id").is_in(list(owed)))
        refused = tried.filter(pl.col("state").is_in(FAILED) & pl.col("details_wrong"))
        for row in extra.iter_rows(named=True):
            before = tried.filter(
                (pl.col("payment_id") == row["payment_id"]) & (pl.col("attempt") < row["attempt"])
            )
            mine = refused.filter(pl.col("payment_id") == row["payment_id"])
            assert row["application_id"] not in set(mine["application_id"]), row
            assert row["payout_key"] not in set(mine["payout_key"]), row
            assert before.height and before["details_wrong"].all(), row
        payees = payee_details(self.out, new_runs)
        latest: dict[str, Correction] = {}
        for c in self.corrections:
            if c.due <= cycle:
                latest[c.person_key] = c
        fixed = 0
        for row in again.iter_rows(named=True):
            fix = latest.get(row["person_key"])
            if fix is not None:  # paid to the newest application's details
                assert payees[row["instruction_id"]] == fix.details, row["instruction_id"]
                fixed += 1
        self.fixed += fixed
        return again.height

    def retry(self, cycle: int, batch: list[ResultFile]) -> None:
        """Import again a batch whose import was SIGKILLed before the run."""
        if all(f.path in self.delivered for f in batch):
            code, stdout, err = self.jiwon(self.import_args([f.path for f in batch]))
            assert code == 0 and "nothing new to import" in stdout, stdout + err
        else:
            self.import_batch(cycle, batch, killed=False)


def pending_report(final: Path) -> Path:
    """Return a pain.002 saying every transaction of `final` is still pending (PDNG)."""
    text = final.read_text(encoding="utf-8")
    text = re.sub(
        r"<TxSts>(ACSC|RJCT)</TxSts>(<StsRsnInf>.*?</StsRsnInf>)?", "<TxSts>PDNG</TxSts>", text
    )
    path = final.with_name(final.stem + "_pending.xml")
    path.write_text(text.replace("<MsgId>SIM-", "<MsgId>PDG-"), encoding="utf-8")
    return path


def payee_details(out: Path, runs: list[str]) -> dict[str, str]:
    """Return {instruction id: card id or account number} of the runs' payment files."""
    found: dict[str, str] = {}
    layout = load_layout("kr_bulk_transfer_default")
    ns = {"p": pain001.NAMESPACE}
    for run in runs:
        for path in sorted((out / "payments" / PROGRAM / run).iterdir()):
            if path.suffix == ".csv":
                lines = pl.read_csv(path, infer_schema=False)
                ids = lines.select(pl.format("{}-{}", "payment_id", "attempt"), "card_id")
                found |= dict(ids.iter_rows())
            elif path.suffix == ".dat":
                data = bankfile.read_bank_file(path.read_bytes(), layout).data
                ids = data.select(
                    pl.format("{}-{}", "payment_id", "attempt"),
                    pl.col("account_no").str.strip_chars(),
                )
                found |= dict(ids.iter_rows())
            elif path.suffix == ".xml":
                root = etree.fromstring(path.read_bytes(), etree.XMLParser(resolve_entities=False))
                for tx in root.iterfind(".//p:CdtTrfTxInf", ns):
                    account = tx.findtext("p:CdtrAcct/p:Id/p:Othr/p:Id", "", ns)
                    found[tx.findtext("p:PmtId/p:InstrId", "", ns)] = account
    return found


def imported_lines(story: Story) -> pl.DataFrame:
    """Return the lines of every result file a committed import recorded, in import order."""
    by_sha = {}
    for f in story.files:
        lines = read_result_file(f.path)
        by_sha[lines["result_sha256"][0]] = lines
    runs = run_records(story.out).filter(pl.col("trigger") == "results_import")
    frames = []
    for n, inputs in enumerate(runs["inputs"].to_list()):
        for m, item in enumerate(inputs):
            frames.append(by_sha[item["sha256"]].with_columns(_order=pl.lit(n * 100 + m)))
    return pl.concat(frames).sort("_order", "line", maintain_order=True)


def clean_run(story: Story, root: Path) -> pl.DataFrame:
    """Return who a single uninterrupted run on every original delivery pays (the oracle)."""
    data = root / "oracle"
    (data / "enrollments").mkdir(parents=True)
    shutil.copytree(story.registry, data / "registry")
    for files in story.deliveries:
        for source in files:
            (data / "enrollments" / source.name).write_bytes(source.read_bytes())
    out = root / "oracle-out"
    run_flow(data, out, run_month=MONTHS[-1], programs_dir=story.programs)
    paid = decisions(out).filter(pl.col("source_kind") == "registry", pl.col("outcome") == "PAID")
    return paid.select("person_key", "amount_krw")


def test_six_months_of_results_kills_and_corrections_pay_everyone_exactly_once_in_money(
    request: pytest.FixtureRequest, tmp_path: Path, pii_key: str
) -> None:
    began = time.monotonic()
    seed = request.config.getoption("--kill-seed") + 3000
    story = Story(tmp_path, seed)
    killed_runs = set(story.rng.sample(range(1, len(MONTHS)), KILLED_RUNS))
    tally: list[str] = []
    for cycle in range(len(MONTHS)):
        later = story.import_results(cycle, defer=cycle == DEFERRED_IMPORT)
        tried = check_trail(story.out) if cycle else None
        if tried is not None:
            story.correct(cycle, tried)
        story.deliver_enrollments(cycle)
        owed = story.owed(cycle, tried) if tried is not None else set()
        new_runs = story.pay(cycle, cycle in killed_runs)
        again = story.check_reissues(cycle, new_runs, owed)
        if later:  # the import killed before the run is done again after it
            story.retry(cycle, later)
            check_trail(story.out)
        for run in new_runs:
            story.answer(cycle, run)
        paid = attempts(story.out).filter(pl.col("run_id").is_in(new_runs)).height
        tally.append(f"{MONTHS[cycle]}: paid {paid:,} attempts ({again:,} again)")
    story.import_results(FINAL)
    tried = check_trail(story.out)

    # Everyone eligible with a valid application (whom one clean run pays) has a payment, and
    # nobody else has.
    oracle = clean_run(story, tmp_path)
    last = newest(tried)
    assert set(last["person_key"]) == set(oracle["person_key"])
    assert (last["amount_krw"] == 100_000).all() and (oracle["amount_krw"] == 100_000).all()

    # ... settled, in flight because its answer never came, or owed with a stated reason.
    lines = imported_lines(story)
    answered = set(lines.filter(pl.col("status") != "IN_FLIGHT")["instruction_id"])
    never = {f.path for f in story.files if f.due > FINAL}
    unanswered = {
        i for f in never for i in read_result_file(f)["instruction_id"] if i not in answered
    }
    flying = last.filter(pl.col("state") == RELEASED)
    assert set(flying["instruction_id"]) == unanswered
    failed = last.filter(pl.col("state").is_in(FAILED))
    assert failed["reason_code"].null_count() == 0, "a failed attempt without a reason"
    # a failure the last run knew of: the details were refused and no correction came; the
    # run's decisions say the person is owed and why they were not paid
    last_run = committed(story.out, imports=False)[-1]
    known = set(committed(story.out, imports=True)[: imports_before(story.out, last_run)])
    told = failed.filter(pl.col("imported_by").is_in(list(known)))
    assert told["details_wrong"].all(), "a temporary failure the last run did not pay again"
    said = decisions(story.out).filter(
        pl.col("run_id") == last_run, pl.col("person_key").is_in(told["person_key"].implode())
    )
    # (a resident listed twice in the registry has a DUPLICATE_RECORD row besides)
    registry = said.filter(
        pl.col("source_kind") == "registry", pl.col("outcome") != "DUPLICATE_RECORD"
    )
    assert registry["person_key"].is_unique().all()
    assert set(registry["person_key"]) == set(told["person_key"])
    assert registry["reason_codes"].list.contains(OWED_AGAIN).all()
    # and the first run after the import that recorded the failure refused their application
    reopened = told.with_columns(
        run_id=pl.col("imported_by").replace_strict(runs_after(story.out), default=None)
    ).select("person_key", "run_id")
    refused = decisions(story.out).join(reopened, on=["person_key", "run_id"])
    refused = refused.filter(
        pl.col("source_kind") == "enrollment",
        pl.col("reason_codes").list.contains(DETAILS_REJECTED),
    )
    assert set(refused["person_key"]) == set(told["person_key"])
    settled = last.filter(pl.col("state") == SETTLED)
    assert settled.height + flying.height + failed.height == oracle.height

    # Settled won, to the won: the reconciliation, the trail, and the imported files.
    status = reconciliation(story.out, PROGRAM)
    totals = status.by_program.row(0, named=True)
    final = (
        lines.filter(pl.col("status") != "IN_FLIGHT")
        .group_by("instruction_id")
        .agg(pl.col("status").last(), pl.col("amount_krw").last())
    )
    in_files = final.filter(pl.col("status") == SETTLED)
    assert totals["settled_krw"] == int(in_files["amount_krw"].sum())
    assert totals["settled_krw"] == int(
        tried.filter(pl.col("state") == SETTLED)["amount_krw"].sum()
    )
    assert totals["settled"] == in_files.height == settled.height
    assert status.owed_again == failed.height

    code, stdout, err = story.jiwon(["audit", "verify", "--out", str(story.out)])
    assert code == 0, stdout + err

    # The story exercised what it claims to.
    order = [f for batch in story.sequence for f in batch]
    late = [f for f in order if f.kind == "answer" and f.due > story.cycle_of_run[f.run_id] + 1]
    crossed = sum(  # returns of one run imported before the answer of another run
        1
        for n, f in enumerate(order)
        if f.kind == "returns"
        for g in order[n + 1 :]
        if g.kind == "answer" and g.run_id != f.run_id
    )
    pending = lines.filter(pl.col("status") == "IN_FLIGHT").height
    kinds = {kind for kind, _ in story.kills}
    assert late and crossed and pending and story.fixed and story.early
    assert kinds == {"run", "import"}
    assert {"card_csv", "bank_result", "pain.002"} <= set(lines["result_format"])
    assert told.height, "nobody left owed with refused details: the end proves less"

    took = time.monotonic() - began
    formats = lines.group_by("result_format").len().sort("result_format").rows()
    print(
        f"\n{ROWS:,} residents, {oracle.height:,} owed a payment; {took:.0f}s "
        f"(a run {story.run_took:.1f}s, an import {story.import_took:.1f}s)\n"
        + "\n".join(tally + story.log)
        + f"\n{len(story.sequence)} imports of {len(story.delivered)} files, lines {formats}; "
        f"{len(late)} answers late, {crossed} returns before another run's answer, "
        f"{pending} pending lines\n"
        f"{len(story.corrections)} corrected applications ({story.early} before the refusal was "
        f"known), {story.fixed} paid to them\n"
        f"end: {settled.height:,} settled ({totals['settled_krw']:,} won), "
        f"{flying.height:,} in flight, {failed.height:,} owed "
        f"({told.height:,} refused details without correction)"
    )


def imports_before(out: Path, run_id: str) -> int:
    """Return how many committed imports precede the run `run_id` in the chain."""
    records = run_records(out).filter(pl.col("status") == "committed")
    position = records["run_id"].to_list().index(run_id)
    return records.head(position).filter(pl.col("trigger") == "results_import").height


def runs_after(out: Path) -> dict[str, str]:
    """Return {import run id: the first paying run after it in the chain}."""
    records = run_records(out).filter(pl.col("status") == "committed")
    following: dict[str, str] = {}
    waiting: list[str] = []
    for run, trigger in records.select("run_id", "trigger").iter_rows():
        if trigger == "results_import":
            waiting.append(run)
            continue
        following |= dict.fromkeys(waiting, run)
        waiting = []
    return following
