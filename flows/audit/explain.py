"""`jiwon audit explain`: everything the trail knows about one person or payment, PII-safe."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from flows.audit.records import record_from_row
from flows.audit.rotation import aliases, signature_problems
from flows.checks.rrn import birth_date
from flows.checks.validate import normalise
from flows.decide.codes import describe
from flows.decide.rules import keyed
from flows.errors import TrailDamaged, UsageError, masked_value
from flows.i18n import _, format_month, format_won, pick
from flows.inputs.ledger import scan_trail, unreadable

DECISIONS_GLOB = "audit/decisions/**/*.parquet"


def person_key(rrn: str, key: str) -> str:
    """Return the person key of an RRN typed in any accepted form."""
    typed = normalise(pl.LazyFrame({"rrn": [rrn]}), ["rrn"])
    return str(typed.select(keyed("rrn", key)).collect().item())


def rrn_problem(rrn: str) -> str | None:
    """Return why a typed RRN is not one, or None; judged as row validation judges it.

    Hyphens, spaces and full-width digits are accepted; it must then be 13 digits whose first
    seven give a real birth date (RRN_FORMAT, RRN_DATE_INVALID). The check digit is not
    checked: numbers issued since 2020-10-05 have none (validation only warns about it).
    """
    typed = normalise(pl.LazyFrame({"rrn": [rrn]}), ["rrn"])
    row = typed.select("rrn", born=birth_date("rrn")).collect().row(0, named=True)
    value: str = row["rrn"] or ""
    if not value:
        return _("is blank")
    if not (value.isascii() and value.isdigit()):
        return _("holds characters other than digits, hyphens and spaces")
    if len(value) != 13:
        return _("has {digits} digits, not 13").format(digits=len(value))
    if row["born"] is None:
        return _("has digits 1-7 that are not a real birth date (YYMMDD and the century digit)")
    return None


def malformed_rrn(rrn: str) -> UsageError | None:
    """Return the bad-usage error for a malformed RRN; the value is shown starred past 6 digits."""
    problem = rrn_problem(rrn)
    if problem is None:
        return None
    shown = masked_value(rrn.strip())
    shown = shown if len(shown) <= 20 else f"{shown[:20]}…"
    return UsageError(
        _(
            "bad usage: --rrn {shown!r} is not a resident registration "
            "number: it {problem}. Give the resident's 13 digits as "
            "YYMMDD-SXXXXXX."
        ).format(shown=shown, problem=problem)
    )


def committed_decisions(out: Path) -> pl.LazyFrame:
    """Return the decision records of committed runs only."""
    runs = (
        scan_trail(out, out / "audit/runs/**/*.parquet", hive_partitioning=False)
        .filter(pl.col("status") == "committed")
        .select("run_id")
    )
    return scan_trail(out, out / DECISIONS_GLOB, hive_partitioning=True).join(
        runs, on="run_id", how="semi"
    )


def check_explain_key(out: Path, key: str, program: str | None) -> list[str]:
    """Refuse to look up an RRN with a key other than the one the programs' runs use now.

    Person keys are HMACs with the key: with another one nobody would be found, and "not paid"
    would be a wrong answer, not an empty one. Without `program`, programs whose key is another
    (one rotated, one not yet) are left out and returned; with none left, it refuses.
    """
    from flows.audit import keyprint
    from flows.inputs.ledger import run_records

    folders = sorted((out / "audit/runs").glob("program=*"))
    names = [f.name.removeprefix("program=") for f in folders]
    refused: list[tuple[str, str]] = []
    for name in [n for n in names if not program or n == program]:
        known = keyprint.program_fingerprints(run_records(out, name))
        if known and not keyprint.matches(key, known[0][0]):
            refused.append((name, known[0][1]))
    if refused and (program or len(refused) == len(names)):
        name, run_id = refused[0]
        raise UsageError(
            _(
                "bad usage: JIWON_PII_KEY is not the key program {name}'s runs "
                "used (its key fingerprint differs from committed run {run_id}): "
                "with it no RRN would be found. Set the deployment's key from "
                "your secret store and ask again."
            ).format(name=name, run_id=run_id)
        )
    return [name for name, _ in refused]


def rotation_maps(out: Path) -> list[pl.DataFrame]:
    """Return the maps of every committed personal-data key rotation in the trail.

    Only rotations whose record is sealed and signed by a key beside the trail are followed, and
    each map must match the SHA-256 its record holds (else the ledger's halt names it): a planted
    or edited map would tie one person's history to another's. `audit verify` checks the rest.
    """
    from flows.audit.verify import trail_keys
    from flows.inputs.ledger import rotation_maps as checked_maps
    from flows.inputs.ledger import run_records

    keys = trail_keys(out)
    maps = []
    for folder in sorted((out / "audit/runs").glob("program=*")):
        runs = run_records(out, folder.name.removeprefix("program="))
        if not runs.height:
            continue
        unsigned = signature_problems(runs, keys)
        sealed = [
            i
            for i in range(runs.height)
            if i not in unsigned and record_from_row(runs.row(i, named=True)).seal_holds()
        ]
        trusted = runs.with_row_index("_i").filter(pl.col("_i").is_in(sealed)).drop("_i")
        committed = trusted.filter(pl.col("status") == "committed", ~pl.col("dry_run"))
        maps += [m.collect() for _, m in checked_maps(out, runs, committed)]
    return maps


def damaged_file(out: Path, error: Exception) -> TrailDamaged:
    """Return TrailDamaged naming the first trail file that does not read whole (the slow path)."""
    for path in sorted(out.glob(DECISIONS_GLOB)) + sorted(out.glob("audit/runs/**/*.parquet")):
        try:
            pl.read_parquet(path)
        except pl.exceptions.PolarsError as e:
            return TrailDamaged(str(path.relative_to(out)), unreadable(e))
    return TrailDamaged("audit/", unreadable(error))


def paid_to(row: dict[str, Any]) -> str:
    """Return where a payment went, masked: the bank and the account's last four digits."""
    if row.get("payout") != "bank":
        return f" ({row['payout']})" if row.get("payout") else ""
    return _(" (bank {bank_code}, account ****{account_last4})").format(
        bank_code=row["bank_code"], account_last4=row["account_last4"]
    )


def explain_person(
    out: Path, rrn: str | None = None, payment_id: str | None = None, program: str | None = None
) -> str:
    """Return a readable account of a person's (or a payment's) decision records."""
    if rrn is not None and (error := malformed_rrn(rrn)) is not None:
        raise error
    if not list(out.glob(DECISIONS_GLOB)):
        raise UsageError(
            _("no audit trail under {out}: pass the output root of earlier runs").format(out=out)
        )
    decisions = committed_decisions(out)
    if rrn is not None:
        key = os.environ.get("JIWON_PII_KEY", "")
        if len(key) < 16:
            raise UsageError(
                _(
                    "bad usage: JIWON_PII_KEY is not set (or shorter than 16 "
                    "characters): explaining by RRN needs the key the runs used. Set "
                    "it from your secret store, or ask by --payment-id"
                )
            )
        other_key = check_explain_key(out, key, program)
        decisions = decisions.filter(~pl.col("program").is_in(other_key))
        keys = {person_key(rrn, key)}
        subject = _("this RRN")
    else:
        found = decisions.filter(pl.col("payment_id") == payment_id).select("person_key").unique()
        try:
            keys = set(found.collect()["person_key"].drop_nulls())
        except pl.exceptions.PolarsError as e:  # damaged inside, not only at the footer
            raise damaged_file(out, e) from None
        subject = _("payment {payment_id}").format(payment_id=payment_id)
    # The same person under the keys before and after a key rotation (0014).
    keys = aliases(keys, rotation_maps(out))
    decisions = decisions.filter(pl.col("person_key").is_in(list(keys)))
    if program:
        decisions = decisions.filter(pl.col("program") == program)
    try:
        rows = decisions.sort("decided_at", "source_kind", "source_file", "source_row").collect()
    except pl.exceptions.PolarsError as e:  # damaged inside, not only at the footer
        raise damaged_file(out, e) from None
    if rows.height == 0:
        hint = (
            _(
                " (RRNs are matched through JIWON_PII_KEY: if the runs used another key, "
                "none matches)"
            )
            if rrn is not None
            else ""
        )
        return _("No committed decision mentions {subject}{hint}.").format(
            subject=subject, hint=hint
        )
    lines = []
    paid = rows.filter((pl.col("outcome") == "PAID") & (pl.col("source_kind") == "registry"))
    head = rows.row(0, named=True)
    lines.append(
        _("person {rrn_masked} {name_masked} person_key {person_key}").format(
            rrn_masked=head["rrn_masked"] or _("(malformed RRN)"),
            name_masked=head["name_masked"] or "",
            person_key=head["person_key"],
        )
    )
    if paid.height:
        for p in paid.iter_rows(named=True):
            lines.append(
                _(
                    "PAID {amount} by run {run_id} ({program}, {run_month}), payment "
                    "{payment_id} in {payment_file}{paid_to}, rule {rule_id}"
                ).format(
                    amount=format_won(p["amount_krw"]),
                    run_id=p["run_id"],
                    program=p["program"],
                    run_month=format_month(p["run_month"]),
                    payment_id=p["payment_id"],
                    payment_file=p["payment_file"],
                    paid_to=paid_to(p),
                    rule_id=p["rule_id"],
                )
            )
    else:
        lines.append(_("NOT PAID by any committed run"))
    lines += attempt_history(out, rows)
    lines += review_history(out, rows)
    for r in rows.iter_rows(named=True):
        reasons = (
            "; ".join(f"{c} ({pick(describe(c).ko, describe(c).en)})" for c in r["reason_codes"])
            or "-"
        )
        warnings = ", ".join(r["warning_codes"]) or "-"
        app = (
            _(" application {application_id}").format(application_id=r["application_id"])
            if r["application_id"]
            else ""
        )
        lines.append(
            _(
                "  {decided_at} run {run_id} {program}: {source_kind} {source_file} row "
                "{source_row}{application} -> {outcome} [{rule_id}] reasons: {reasons}; "
                "warnings: {warnings}"
            ).format(
                decided_at=f"{r['decided_at']:%Y-%m-%d %H:%M}",
                run_id=r["run_id"],
                program=r["program"],
                source_kind=r["source_kind"],
                source_file=r["source_file"],
                source_row=r["source_row"],
                application=app,
                outcome=r["outcome"],
                rule_id=r["rule_id"],
                reasons=reasons,
                warnings=warnings,
            )
            + (
                _("; duplicate of {duplicate_of}").format(duplicate_of=r["duplicate_of"])
                if r["duplicate_of"]
                else ""
            )
        )
    return "\n".join(lines)


def attempt_history(out: Path, rows: pl.DataFrame) -> list[str]:
    """Return one line per payment attempt of `rows`, with every result recorded for it (15).

    Results come from committed results imports (`audit/results/`); an attempt with none is in
    its run's release state (ISSUED while the run waits for approval, RELEASED, or VOIDED).
    """
    from flows.audit import release
    from flows.audit.attempts import AT_COMMIT, IN_FLIGHT, instruction_id
    from flows.inputs.ledger import run_records

    tried = (
        rows.filter((pl.col("outcome") == "PAID") & (pl.col("source_kind") == "enrollment"))
        .with_columns(attempt=pl.col("attempt").fill_null(1))
        .with_columns(instruction_id=instruction_id(pl.col("payment_id"), pl.col("attempt")))
    )
    if not tried.height:
        return []
    events = result_lines(out, tried["instruction_id"])
    runs: dict[str, release.Release] = {}
    for program in tried["program"].unique().to_list() if "program" in tried.columns else []:
        runs |= release.walk(run_records(out, str(program)))
    lines = []
    for t in tried.iter_rows(named=True):
        mine = events.filter(pl.col("instruction_id") == t["instruction_id"])
        final = mine.filter(pl.col("state") != IN_FLIGHT)
        run = runs.get(str(t["run_id"]))
        state = final["state"][-1] if final.height else run.attempt_state if run else AT_COMMIT
        again = (
            _(", re-issue of {reissue_of}").format(reissue_of=t["reissue_of"])
            if t.get("reissue_of")
            else ""
        )
        lines.append(
            _(
                "attempt {attempt} {instruction_id}: {amount} by run {run_id}{again}: {state}"
            ).format(
                attempt=t["attempt"],
                instruction_id=t["instruction_id"],
                amount=format_won(t["amount_krw"]),
                run_id=t["run_id"],
                again=again,
                state=state,
            )
            + (_("; run {release}").format(release=release.shown(run)) if run else "")
        )
        for e in mine.iter_rows(named=True):
            why = f" {e['reason_code']}" if e["reason_code"] else ""
            lines.append(
                _(
                    "    {state}{why} from {result_file} line {result_line} (import {run_id})"
                ).format(
                    state=e["state"],
                    why=why,
                    result_file=e["result_file"],
                    result_line=e["result_line"],
                    run_id=e["result_run_id"],
                )
            )
    return lines


def review_history(out: Path, rows: pl.DataFrame) -> list[str]:
    """Return one line per officer's decision recorded for the applications of `rows` (18)."""
    files = sorted(out.glob("audit/reviews/program=*/run_id=*/reviews.parquet"))
    applications = rows.filter(pl.col("application_id").is_not_null()).select(
        "program", "application_id"
    )
    if not files or not applications.height:
        return []
    committed = (
        scan_trail(out, out / "audit/runs/**/*.parquet", hive_partitioning=False)
        .filter(pl.col("status") == "committed")
        .select(review_run_id="run_id", program="program", finished_at="finished_at")
        .collect()
    )
    frames = [
        pl.read_parquet(f).with_columns(
            review_run_id=pl.lit(f.parent.name.removeprefix("run_id=")),
            program=pl.lit(f.parent.parent.name.removeprefix("program=")),
        )
        for f in files
    ]
    recorded = (
        pl.concat(frames, how="diagonal_relaxed")
        .join(applications.unique(), on=["program", "application_id"], how="semi")
        .join(committed, on=["review_run_id", "program"], how="inner")
        .sort("finished_at", "seq")
    )
    return [
        _("review of application {application_id} ({program}): {decision} by {officer}").format(
            application_id=r["application_id"],
            program=r["program"],
            decision=r["decision"],
            officer=r["officer"],
        )
        + (f" ({r['reason']})" if r["reason"] else "")
        + _(", from {review_file} line {review_line} (import {run_id})").format(
            review_file=r["review_file"], review_line=r["review_line"], run_id=r["review_run_id"]
        )
        + (_(", revises {revises}").format(revises=r["revises"]) if r["revises"] else "")
        for r in recorded.iter_rows(named=True)
    ]


def result_lines(out: Path, instructions: pl.Series) -> pl.DataFrame:
    """Return the result lines committed imports recorded for `instructions`, in chain order."""
    files = sorted(out.glob("audit/results/program=*/run_id=*/*.parquet"))
    if not files:
        return pl.DataFrame(
            schema={
                "instruction_id": pl.String,
                "state": pl.String,
                "reason_code": pl.String,
                "result_file": pl.String,
                "result_line": pl.Int64,
                "result_run_id": pl.String,
            }
        )
    committed = (
        scan_trail(out, out / "audit/runs/**/*.parquet", hive_partitioning=False)
        .filter(pl.col("status") == "committed")
        .select("run_id", "finished_at")
        .collect()
    )
    frames = [
        pl.read_parquet(f).with_columns(result_run_id=pl.lit(f.parent.name.removeprefix("run_id=")))
        for f in files
    ]
    return (
        pl.concat(frames, how="diagonal_relaxed")
        .filter(pl.col("instruction_id").is_in(instructions.implode()))
        .join(committed.rename({"run_id": "result_run_id"}), on="result_run_id", how="inner")
        .sort("finished_at", "seq")
    )
