"""The `jiwon` command: run, serve, demo, audit explain/verify, fixtures generate.

Exit status (spec/outputs.md): 0 done; 2 bad usage; 3 input rejected; 4 halted by a safety check;
1 anything unexpected. Every non-zero exit prints one line: what went wrong, what to do next.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import sys
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, TypeVar

from flows.i18n import _

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_TASKS_DEFAULT_NO_CACHE", "true")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
# Prefect's temporary API server takes 11-13 s to start here, and 30-40 s on a fresh PREFECT_HOME
# with both cores busy: Prefect's default wait of 20 s failed runs (docs/performance.md, "Prefect
# start-up"). Set before Prefect is imported (it reads its settings then); an operator's own
# value wins.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import typer
from pydantic import ValidationError

from flows import i18n
from flows.errors import JiwonError
from flows.run import server
from flows.run.server import START_FAILED as PREFECT_START_FAILED

# Help texts are read when the commands are defined, below: take the language (`--lang`, else
# JIWON_LANG, else the locale) from the command line before that (flows/i18n.py).
i18n.use(i18n.language_from(sys.argv[1:]))
i18n.translate_click()

if TYPE_CHECKING:
    from flows.run.flow import RunSummary

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help=_("jiwon (지원): pay a support fund exactly once per resident, with an audit trail."),
)
audit_app = typer.Typer(no_args_is_help=True, help=_("Read and check the audit trail."))
fixtures_app = typer.Typer(no_args_is_help=True, help=_("Synthetic extracts for demos and tests."))
app.add_typer(audit_app, name="audit")
docs_app = typer.Typer(
    no_args_is_help=True, help=_("Print reference docs generated from the code.")
)
app.add_typer(fixtures_app, name="fixtures")
programs_app = typer.Typer(no_args_is_help=True, help=_("The support programs jiwon can run."))
app.add_typer(programs_app, name="programs")
app.add_typer(docs_app, name="docs")
keys_app = typer.Typer(no_args_is_help=True, help=_("The city's signing key for the audit trail."))
app.add_typer(keys_app, name="keys")
results_app = typer.Typer(
    no_args_is_help=True, help=_("Bank and card results: import them, see where payments stand.")
)
app.add_typer(results_app, name="results")
review_app = typer.Typer(
    no_args_is_help=True, help=_("Held applications: export the queue, import officers' decisions.")
)
app.add_typer(review_app, name="review")


@app.callback()
def options(
    lang: Annotated[
        Literal["ko", "en"] | None,
        typer.Option(
            "--lang",
            help=_(
                "language of messages and reports: ko (한국어) or en (default: JIWON_LANG, "
                "else the locale, e.g. LANG=ko_KR.UTF-8)"
            ),
        ),
    ] = None,
) -> None:
    i18n.use(lang or i18n.language_from(None))  # the environment of this invocation
    i18n.translate_click()
    if lang is not None:
        os.environ["JIWON_LANG"] = lang  # the flow's workers and tasks read it too


T = TypeVar("T")
DEMO_KEY = "jiwon-demo-key-NOT-FOR-REAL-RUNS"
DEMO_PROGRAM = "paju-livelihood-2025"
# The demo's Ed25519 signing key (32 bytes of hex): public, so it proves nothing. Never for real.
DEMO_SIGNING_KEY = "6a69776f6e2d64656d6f2d7369676e696e672d6b65792d6e6f742d7265616c21"


def fail(message: str, code: int) -> NoReturn:
    """Print one line to stderr and exit with `code`."""
    typer.echo(message.splitlines()[0] if message else _("failed"), err=True)
    raise typer.Exit(code)


def parameter_problem(error: ValidationError) -> str:
    """Return the one line for parameters the run's model refused (the first problem)."""
    first = error.errors()[0]
    where = ".".join(map(str, first["loc"]))
    if where == "run_month" and first["type"] == "string_pattern_mismatch":
        return _(
            "bad usage: --run-month {value!r} is not a month: give it as YYYY-MM (e.g. 2025-03)"
        ).format(value=first["input"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if where:
        return _("bad usage: {where}: {message}").format(where=where, message=message)
    return _("bad usage: {message}").format(message=message)


def execute(params: dict[str, object]) -> RunSummary:
    """Validate parameters, run the flow and print its summary, mapping errors to exit codes."""
    if keys_given():  # without them the run refuses below: no server for a refusal
        server.start()  # Prefect's temporary server starts while the flow's code is imported
    from flows.report.terminal import print_summary
    from flows.run.flow import (
        SIGNING_BLOCK_ENV,
        DisburseParams,
        disburse,
        pii_key,
        signing_key,
        warm_inputs,
    )

    try:
        pii_key()  # refuse before running Prefect at all
        if not os.environ.get(SIGNING_BLOCK_ENV):  # a Secret block is read by the flow
            signing_key()
    except JiwonError as e:
        fail(str(e), e.exit_code)
    try:
        validated = DisburseParams.model_validate(params)
    except ValidationError as e:
        fail(parameter_problem(e), 2)
    from rules.program import PROGRAMS_DIR, ProgramError, load_program

    try:  # a wrong program id is bad usage: say so before starting Prefect or touching --out
        load_program(validated.program, validated.programs_dir or PROGRAMS_DIR)
    except ProgramError as e:
        fail(str(e), 2)
    try:
        validated.out.mkdir(parents=True, exist_ok=True)
        writable = os.access(validated.out, os.W_OK)
    except OSError as e:
        writable, why = False, f" ({e.strerror})"
    else:
        why = ""
    if not writable:
        fail(
            _(
                "bad usage: cannot write the output root {out}{why}: pass --out "
                "a folder you may write to"
            ).format(out=validated.out, why=why),
            2,
        )
    from flows.inputs.ledger import check_trail

    try:  # a damaged trail halts before any flow runs: its one line is all the operator sees
        check_trail(validated.out, validated.program)
    except JiwonError as e:
        fail(str(e), e.exit_code)
    # A city's delivery is read while the server starts and Prefect creates the flow run.
    summary = flow_call(lambda: disburse(validated), warm=lambda: warm_inputs(validated))
    print_summary(summary)
    return summary


def keys_given() -> bool:
    """Return whether the environment holds the keys a run needs (checked in full later)."""
    pii = os.environ.get("JIWON_PII_KEY", "")
    signing = os.environ.get("JIWON_SIGNING_KEY") or os.environ.get("JIWON_SIGNING_KEY_BLOCK")
    return len(pii) >= 16 and bool(signing)


def flow_call(call: Callable[[], T], warm: Callable[[], None] | None = None) -> T:
    """Run a flow once Prefect's server answers, mapping every error to its exit status.

    `warm`: work for a thread while a temporary server starts (`flows.run.prefetch.alongside`:
    its errors are dropped), once the environment has its final settings (`server.prepare`).
    Against a running server there is no wait to fill: alternating runs were slower with it.
    """
    try:
        server.prepare()
        if warm is None or not server.starting():
            server.ready()
            return call()
        from flows.run.prefetch import alongside

        with alongside(warm):
            server.ready()
            return call()
    except JiwonError as e:
        fail(str(e), e.exit_code)
    except RuntimeError as e:
        if not str(e).startswith(PREFECT_START_FAILED):
            unexpected(e)
        fail(prefect_start_failed(str(e)), 1)
    except Exception as e:  # a bug or an environment failure: say so in one line
        unexpected(e)


def prefect_start_failed(message: str) -> str:
    """Return the line for Prefect's temporary API server not answering in time."""
    from prefect.settings import get_current_settings

    wait = get_current_settings().server.ephemeral.startup_timeout_seconds
    exited = re.search(r"exited with code (-?\d+)", message)
    why = (
        _("its process exited with code {code}").format(code=exited.group(1))
        if exited
        else _("the machine may be too busy, or the server stuck")
    )
    return _(
        "Prefect's temporary API server did not answer within {wait} s ({why}); nothing was "
        "paid. Run again; if it repeats, run `prefect server start` to see its error, or set "
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS higher on a very busy machine."
    ).format(wait=wait, why=why)


def unexpected(e: Exception) -> NoReturn:
    """Exit 1 with one line for an error jiwon has no specific advice for."""
    from flows.errors import Unexpected, scrub

    what = str(e) if isinstance(e, Unexpected) else scrub(f"{type(e).__name__}: {e}")
    fail(
        _(
            "unexpected error ({what}); nothing was published unless a run "
            "record says committed. Run again; if it repeats, report it with "
            "this line."
        ).format(what=what),
        1,
    )


@app.command(
    help=_("Run the disburse flow for one program. Needs JIWON_PII_KEY in the environment.")
)
def run(
    program: Annotated[str, typer.Option(help=_("program id (rules/programs/<id>)"))],
    registry: Annotated[Path, typer.Option(help=_("folder of registry extract files"))],
    enrollments: Annotated[Path, typer.Option(help=_("folder of enrollment extract files"))],
    out: Annotated[Path, typer.Option(help=_("output root"))],
    dry_run: Annotated[bool, typer.Option("--dry-run", help=_("pay and publish nothing"))] = False,
    reason: Annotated[
        str | None, typer.Option(help=_("why this run (required for reruns)"))
    ] = None,
    operator: Annotated[str, typer.Option(help=_("who starts the run"))] = os.environ.get(
        "USER", "operator"
    ),
    trigger: Annotated[str, typer.Option(help=_("manual, rerun or scheduled"))] = "manual",
    run_month: Annotated[str | None, typer.Option(help=_("YYYY-MM (default: this month)"))] = None,
    welfare: Annotated[
        Path | None, typer.Option(help=_("folder of welfare-status extract files (if needed)"))
    ] = None,
    programs_dir: Annotated[
        Path | None, typer.Option(help=_("folder of program folders (default: rules/programs)"))
    ] = None,
    bank_file: Annotated[
        str, typer.Option(help=_("bank payouts as fixed_width (대량이체) or pain.001 (ISO 20022)"))
    ] = "fixed_width",
    partitions: Annotated[
        str | None,
        typer.Option(
            help=_(
                "decide in N buckets on disk (auto: one per ~1,000,000 registry "
                "rows), for deliveries too large for memory; default: as --store "
                "chooses"
            )
        ),
    ] = None,
    store: Annotated[
        str,
        typer.Option(
            help=_(
                "where the work in progress lives: memory (one bucket), disk "
                "(buckets), or auto: memory up to ~1,000,000 registry rows, else "
                "disk"
            )
        ),
    ] = "auto",
    runner: Annotated[
        str, typer.Option(help=_("where the spill and decide tasks run: local or dask (on disk)"))
    ] = "local",
    dask_address: Annotated[
        str | None, typer.Option(help=_("Dask scheduler, e.g. tcp://host:8786 (default: local)"))
    ] = None,
) -> None:
    execute(
        {
            "program": program,
            "registry": registry,
            "enrollments": enrollments,
            "out": out,
            "dry_run": dry_run,
            "reason": reason,
            "operator": operator,
            "trigger": trigger,
            "run_month": run_month,
            "welfare": welfare,
            "programs_dir": programs_dir,
            "bank_file": bank_file,
            "partitions": partitions,
            "store": store,
            "runner": runner,
            "dask_address": dask_address,
        }
    )


@app.command(
    help=_(
        "Serve the `monthly` (06:00 KST on the 1st) and `rerun` deployments on a Prefect server."
    )
)
def serve(
    registry: Annotated[
        Path, typer.Option(envvar="JIWON_REGISTRY", help=_("folder of registry extract files"))
    ],
    enrollments: Annotated[
        Path, typer.Option(envvar="JIWON_ENROLLMENTS", help=_("folder of enrollment extract files"))
    ],
    out: Annotated[Path, typer.Option(envvar="JIWON_OUT", help=_("output root"))],
    program: Annotated[
        str, typer.Option(envvar="JIWON_PROGRAM", help=_("program id"))
    ] = "paju-livelihood-2025",
    operator: Annotated[
        str, typer.Option(help=_("operator named on reruns by default"))
    ] = "operator",
) -> None:
    from flows.run.flow import SIGNING_BLOCK_ENV, pii_key, signing_key
    from flows.serve import base_parameters, require_server, serve_deployments

    try:
        pii_key()
        if not os.environ.get(SIGNING_BLOCK_ENV):
            signing_key()
        url = require_server()
        base = base_parameters(program, registry, enrollments, out, operator)
    except JiwonError as e:
        fail(str(e), e.exit_code)
    except ValidationError as e:
        fail(parameter_problem(e), 2)
    typer.echo(
        _("serving disburse/monthly and disburse/rerun for {program} on {url}").format(
            program=program, url=url
        )
    )
    serve_deployments(base)


@app.command(
    help=_("Generate demo extracts, run the flow end to end with a demo key, print the summary.")
)
def demo(
    out: Annotated[Path, typer.Option(help=_("where to write demo data and results"))] = Path(
        "demo-output"
    ),
    rows: Annotated[int, typer.Option(help=_("residents to generate"))] = 20_000,
    seed: Annotated[int, typer.Option(help=_("random seed"))] = 2025,
) -> None:
    from fixtures.generate import generate_population, write_population

    if os.environ.get("JIWON_PII_KEY") or os.environ.get("JIWON_SIGNING_KEY"):
        typer.echo(
            _("note: the demo ignores JIWON_PII_KEY and JIWON_SIGNING_KEY: it uses demo keys")
        )
    os.environ["JIWON_PII_KEY"] = DEMO_KEY
    os.environ["JIWON_SIGNING_KEY"] = DEMO_SIGNING_KEY
    # The demo's anchors live beside its output root (OUT/anchors, outside OUT/out): removing
    # the demo folder starts afresh, as the README says. A real deployment keeps them elsewhere.
    os.environ["JIWON_ANCHOR_DIR"] = str((out / "anchors").resolve())
    os.environ.pop("JIWON_SIGNING_KEY_BLOCK", None)
    server.start()  # the demo's first call to Prefect is below (the anchor's copy)
    typer.secho(
        _(
            "DEMO MODE: person keys and signatures use built-in demo keys; "
            "never use them for real data."
        ),
        fg=typer.colors.YELLOW,
        bold=True,
    )
    if not (out / "out/audit/runs").is_dir():
        # A removed demo folder starts afresh: the anchor's copy on the Prefect server (whose
        # database outlives the folder) goes with it. Never done for a real output root.
        from flows.run.flow import forget_server_anchor

        flow_call(lambda: forget_server_anchor(out / "out", DEMO_PROGRAM))
    data = out / "data"
    write_population(generate_population(rows, seed=seed), data)
    typer.echo(
        _("generated {rows:,} residents in {data}/registry and {data}/enrollments").format(
            rows=rows, data=data
        )
    )
    params: dict[str, object] = {
        "program": DEMO_PROGRAM,
        "registry": data / "registry",
        "enrollments": data / "enrollments",
        "out": out / "out",
        "operator": "demo",
        "reason": "demo run on synthetic data",
        "run_month": "2025-03",
    }
    first = execute(params)
    if first.status == "committed" and first.payments:
        demo_results_cycle(out, data, params, first.run_id, seed)


def demo_results_cycle(
    out: Path, data: Path, params: dict[str, object], run_id: str, seed: int
) -> None:
    """Show one results cycle: the card operator answers, corrections arrive, the run re-issues."""
    from fixtures.corrections import corrected_applications
    from flows.report.terminal import print_reconciliation
    from flows.results.simulate import simulate
    from flows.run.results import reconciliation

    trail = out / "out"
    replies = out / "replies"
    sent = demo_release(trail, run_id)
    typer.secho(_("\nthe card operator answers (simulated): some cards refused"), bold=True)
    answered = simulate(sent, replies / run_id, 0.03, 0.005, seed)
    import_files(trail, answered)
    fixed = corrected_applications(trail, DEMO_PROGRAM, data, "2025-03-20T10:00:00")
    typer.echo(
        _(
            "{fixed:,} resident(s) gave another card at the community "
            "centre: {data}/enrollments/enrollments_corrected.csv"
        ).format(fixed=fixed, data=data)
    )
    typer.secho(_("\nthe next run re-issues what is owed again"), bold=True)
    again = execute(
        params | {"trigger": "rerun", "reason": "re-issue payments the card operator refused"}
    )
    if again.status == "committed" and again.payments:
        sent = demo_release(trail, again.run_id)
        answered = simulate(sent, replies / again.run_id, 0, 0, seed)
        import_files(trail, answered)
    typer.echo("")
    print_reconciliation(reconciliation(trail.resolve(), DEMO_PROGRAM))
    typer.echo(
        _("see it again: jiwon results status --program {demo_program} --out {trail}").format(
            demo_program=DEMO_PROGRAM, trail=trail
        )
    )


def demo_release(trail: Path, run_id: str) -> Path:
    """Approve a demo run as other people (four eyes); return its folder in the outbox.

    A run above the program's `two_approvers_above_krw` needs a second, distinct approver.
    """
    from flows.run.approve import ApproveParams, approve_release

    typer.secho(
        _("\nanother person approves run {run_id} (four eyes)").format(run_id=run_id), bold=True
    )
    outbox = None
    for approver in ("demo-approver-1", "demo-approver-2"):
        try:
            summary = approve_release(
                ApproveParams(program=DEMO_PROGRAM, out=trail, run_id=run_id, approver=approver)
            )
        except JiwonError as e:
            fail(str(e), e.exit_code)
        except Exception as e:
            unexpected(e)
        typer.echo(
            _("release decision {event_id}: {message}").format(
                event_id=summary.event_id, message=summary.message
            )
        )
        if summary.outbox:
            outbox = summary.outbox
            break
    typer.echo(_("  outbox: {outbox}").format(outbox=outbox))
    return Path(str(outbox))


def import_files(out: Path, files: list[Path]) -> None:
    """Import result files as `jiwon results import` does, printing its line."""
    from flows.run.results import ImportParams, import_results

    try:
        summary = import_results(ImportParams(program=DEMO_PROGRAM, out=out, files=files))
    except JiwonError as e:
        fail(str(e), e.exit_code)
    except Exception as e:
        unexpected(e)
    typer.echo(
        _("results import {run_id}: {message}").format(
            run_id=summary.run_id, message=summary.message
        )
    )


@audit_app.command(
    "explain",
    help=_("Say whether a person was paid, how much, by which run and rule, from which input row."),
)
def explain(
    out: Annotated[Path, typer.Option(help=_("output root"))],
    rrn: Annotated[str | None, typer.Option(help=_("the resident's RRN (never printed)"))] = None,
    payment_id: Annotated[str | None, typer.Option(help=_("a payment id"))] = None,
    program: Annotated[str | None, typer.Option(help=_("limit to one program"))] = None,
) -> None:
    from flows.audit.explain import explain_person

    if (rrn is None) == (payment_id is None):
        fail(_("bad usage: give exactly one of --rrn or --payment-id"), 2)
    try:
        typer.echo(explain_person(out, rrn=rrn, payment_id=payment_id, program=program))
    except JiwonError as e:
        fail(str(e), e.exit_code)


@audit_app.command(
    "verify",
    help=_(
        "Recompute the hash chain, signatures and totals and check the "
        "chain's head against its anchor; with JIWON_PII_KEY, also check "
        "every payment file's payees and amounts against the decision "
        "records. Exit 1 naming the first broken link."
    ),
)
def verify(
    out: Annotated[Path, typer.Option(help=_("output root"))],
    public_key: Annotated[
        list[Path] | None,
        typer.Option(
            help=_(
                "the city's public signing key (PEM) from a copy you trust; "
                "repeatable. Default: the keys stored beside the trail "
                "(audit/keys/)"
            )
        ),
    ] = None,
    anchors: Annotated[
        Path | None,
        typer.Option(
            help=_(
                "folder of the anchors the runs wrote outside the output root "
                "(default: JIWON_ANCHOR_DIR or ~/.local/state/jiwon/anchors)"
            )
        ),
    ] = None,
) -> None:
    from flows.audit import signing
    from flows.audit.verify import NOT_CROSS_CHECKED, cross_check_trail, verify_trail

    if not (out / "audit/runs").is_dir():
        fail(
            _("no audit trail under {out}: pass the output root of earlier runs").format(out=out), 2
        )
    keys = None
    if public_key:
        keys = []
        for path in public_key:
            try:
                keys.append(signing.public_key(path.read_bytes()))
            except (OSError, signing.SigningKeyError) as e:
                problem = e.strerror if isinstance(e, OSError) else str(e)
                fail(
                    _("bad usage: --public-key {path} {problem}: pass the PEM file").format(
                        path=path, problem=problem
                    ),
                    2,
                )
    problems, checked = verify_trail(out, keys, anchors)
    pii_key = os.environ.get("JIWON_PII_KEY", "")
    if len(pii_key) >= 16:
        crossed = cross_check_trail(out, pii_key)
        problems += crossed.problems
        unchecked = crossed.unchecked
    else:
        unchecked = [_(NOT_CROSS_CHECKED)]
    for note in unchecked:
        typer.echo(_("note: {note}").format(note=note))
    if problems:
        for p in problems:
            typer.echo(p)
        fail(
            _(
                "audit verify failed: {value} ({len} problem(s) listed above). "
                "The trail no longer matches what the runs wrote: do not pay "
                "from it; restore the named files from backup and report it."
            ).format(value=problems[0], len=len(problems)),
            1,
        )
    source = _("the given public key(s)") if public_key else _("the public key(s) beside the trail")
    payees = "" if unchecked else _(", payment files' payees and amounts against the decisions")
    typer.echo(
        _(
            "audit verify: {checked} run(s) checked, hash chain, signatures "
            "({source}), totals{payees} and anchors intact"
        ).format(checked=checked, source=source, payees=payees)
    )


@audit_app.command(
    "anchor",
    help=_(
        "Adopt a trail that has no anchor (moved, or written before "
        "anchors): verify it with the public key you trust, then record "
        "its newest run as the anchor outside the output root."
    ),
)
def anchor_trail(
    out: Annotated[Path, typer.Option(help=_("output root"))],
    program: Annotated[str, typer.Option(help=_("program id"))],
    public_key: Annotated[
        Path, typer.Option(help=_("the city's public signing key (PEM) from a copy you trust"))
    ],
) -> None:
    from flows.audit import anchor, signing
    from flows.audit.verify import verify_trail
    from flows.inputs.ledger import run_records

    try:
        key = signing.public_key(public_key.read_bytes())
    except (OSError, signing.SigningKeyError) as e:
        fail(
            _("bad usage: --public-key {public_key} {value}").format(
                public_key=public_key, value=getattr(e, "strerror", None) or e
            ),
            2,
        )
    runs = run_records(out, program)
    if not runs.height:
        fail(
            _("bad usage: no run records of {program} under {out}: nothing to anchor").format(
                program=program, out=out
            ),
            2,
        )
    path = anchor.anchor_file(out, program)
    if path.exists():
        fail(
            _("bad usage: {path} exists already: an anchor is never overwritten by hand").format(
                path=path
            ),
            2,
        )
    problems, _checked = verify_trail(out, [key])
    # Anchors are adopted one program at a time: none of them is missing a reason to refuse.
    no_anchor = re.escape(_(anchor.NO_ANCHOR).split("{", 1)[0])
    problems = [p for p in problems if not re.match(rf"program \S+: {no_anchor}", p)]
    if problems:
        fail(
            _("audit anchor refused: {value}; the trail must verify before it is anchored").format(
                value=problems[0]
            ),
            1,
        )
    head = anchor.ChainHead.of(runs)
    anchor.write_anchor(out, program, head.anchored(), pending=None)
    typer.echo(
        _("anchored {program} at run {run_id} (record {records}) in {path}").format(
            program=program, run_id=head.run_id, records=head.records, path=path
        )
    )


@keys_app.command(
    "new",
    help=_("Make a new signing key: print the private key once, write the public key to a file."),
)
def keys_new(
    public_key: Annotated[Path, typer.Option(help=_("where to write the public key (PEM)"))],
) -> None:
    from flows.audit import signing

    secret = signing.new_private_hex()
    private = signing.private_key(secret)
    public_key.write_bytes(signing.public_pem(private))
    typer.echo(
        _(
            "public key written to {public_key} (id {key_id}); keep a copy "
            "for auditors. The private key follows on stdout: put it in your "
            "secret store as {signing_key_env} and nowhere else."
        ).format(
            public_key=public_key,
            key_id=signing.key_id(private),
            signing_key_env=signing.SIGNING_KEY_ENV,
        ),
        err=True,
    )
    typer.echo(secret)


@keys_app.command(
    "rotate",
    help=_("Rotate a program's personal-data key or signing key, as a signed event in its ledger."),
)
def keys_rotate(
    key: Annotated[
        Literal["pii", "signing"],
        typer.Argument(
            help=_(
                "pii: JIWON_PII_KEY_PREVIOUS -> JIWON_PII_KEY; signing: "
                "JIWON_SIGNING_KEY_PREVIOUS -> JIWON_SIGNING_KEY"
            )
        ),
    ],
    program: Annotated[str, typer.Option(help=_("program id"))],
    out: Annotated[Path, typer.Option(help=_("output root"))],
    registry: Annotated[
        Path | None, typer.Option(help=_("pii: folder of registry extracts to key under both keys"))
    ] = None,
    enrollments: Annotated[
        Path | None, typer.Option(help=_("pii: folder of enrollment extracts, likewise"))
    ] = None,
    operator: Annotated[str, typer.Option(help=_("who rotates (recorded)"))] = "unknown",
    reason: Annotated[str | None, typer.Option(help=_("why (recorded)"))] = None,
) -> None:
    server.start()
    from flows.run.rotate import RotateParams, rotate_key

    try:
        params = RotateParams(
            program=program,
            out=out,
            key=key,
            registry=registry,
            enrollments=enrollments,
            operator=operator,
            reason=reason,
        )
    except ValidationError as e:
        fail(parameter_problem(e), 2)
    if not (out / "audit/runs").is_dir():
        fail(
            _("bad usage: no audit trail under {out}: pass the output root of earlier runs").format(
                out=out
            ),
            2,
        )
    summary = flow_call(lambda: rotate_key(params))
    typer.echo(
        _("rotation {run_id} ({program}): {message}").format(
            run_id=summary.run_id, program=summary.program, message=summary.message
        )
    )


@results_app.command(
    "import",
    help=_("Record the bank's or card operator's results, whole or not at all, as a ledger event."),
)
def results_import(
    files: Annotated[list[Path], typer.Argument(help=_("result files (pain.002, bank, card CSV)"))],
    program: Annotated[str, typer.Option(help=_("program id"))],
    out: Annotated[Path, typer.Option(help=_("output root of the runs that paid"))],
    operator: Annotated[str, typer.Option(help=_("who imports (recorded)"))] = "unknown",
    reason: Annotated[str | None, typer.Option(help=_("why (recorded)"))] = None,
) -> None:
    server.start()
    from flows.run.results import ImportParams, import_results

    try:
        params = ImportParams(
            program=program, out=out, files=files, operator=operator, reason=reason
        )
    except ValidationError as e:
        fail(parameter_problem(e), 2)
    record_event(out, _("results import"), lambda: import_results(params))


def record_event(out: Path, name: str, start: Callable[[], Any]) -> None:
    """Run an import flow into the trail under `out` and print its line (and the program page).

    `start` returns the flow's summary (`run_id`, `program`, `message`, `page`): no run id when
    it recorded nothing.
    """
    if not (out / "audit/runs").is_dir():
        fail(
            _("bad usage: no audit trail under {out}: pass the output root of earlier runs").format(
                out=out
            ),
            2,
        )
    summary = flow_call(start)
    if summary.run_id is None:
        typer.echo(f"{summary.program}: {summary.message}")
    else:
        typer.echo(f"{name} {summary.run_id} ({summary.program}): {summary.message}")
        if summary.page:  # rebuilt by the import flow (flows.run.page)
            typer.echo(_("program page: {page}").format(page=summary.page))


@results_app.command(
    "status",
    help=_(
        "Show per program, run and payment file: issued, settled, rejected, returned, in flight."
    ),
)
def results_status(
    program: Annotated[str, typer.Option(help=_("program id"))],
    out: Annotated[Path, typer.Option(help=_("output root of the runs that paid"))],
) -> None:
    from flows.report.terminal import print_reconciliation
    from flows.run.results import reconciliation

    try:
        print_reconciliation(reconciliation(out.resolve(), program))
    except JiwonError as e:
        fail(str(e), e.exit_code)
    except Exception as e:  # the totals are computed as they are printed
        unexpected(e)


@app.command(
    "approve",
    help=_("Release a committed run's payment files to the outbox, or reject them (four eyes)."),
)
def approve(
    program: Annotated[str, typer.Option(help=_("program id"))],
    out: Annotated[Path, typer.Option(help=_("output root of the runs that paid"))],
    run_id: Annotated[
        str | None, typer.Option(help=_("the run to decide (without it: list the runs and exit)"))
    ] = None,
    approver: Annotated[
        str | None, typer.Option(help=_("who decides (recorded; never the run's operator)"))
    ] = None,
    reject: Annotated[bool, typer.Option(help=_("reject: void the run's payments"))] = False,
    reason: Annotated[str | None, typer.Option(help=_("why (required with --reject)"))] = None,
) -> None:
    if not (out / "audit/runs").is_dir():
        fail(
            _("bad usage: no audit trail under {out}: pass the output root of earlier runs").format(
                out=out
            ),
            2,
        )
    if run_id is None:
        list_releases(out.resolve(), program)
        return
    server.start()
    from flows.run.approve import ApproveParams, approve_release

    if approver is None:
        fail(_("bad usage: --approver is required: name the person who approves or rejects"), 2)
    try:
        params = ApproveParams(
            program=program,
            out=out,
            run_id=run_id,
            approver=approver or "",
            reject=reject,
            reason=reason,
        )
    except ValidationError as e:
        fail(parameter_problem(e), 2)
    summary = flow_call(lambda: approve_release(params))
    typer.echo(
        _("release decision {event_id} ({program}): {message}").format(
            event_id=summary.event_id, program=summary.program, message=summary.message
        )
    )
    if summary.outbox:
        typer.echo(_("outbox: {outbox}").format(outbox=summary.outbox))


def list_releases(out: Path, program: str) -> None:
    """Print every paying run of `program` with its release: pending, released or voided."""
    from flows.audit import release
    from flows.inputs.ledger import run_records

    try:
        runs = run_records(out, program)
    except JiwonError as e:
        fail(str(e), e.exit_code)
    found = release.walk(runs)
    if not found:
        typer.echo(
            _("{program}: no committed run that pays under {out}").format(program=program, out=out)
        )
        return
    typer.echo(
        _("{program}: runs and their release (approve with --run-id and --approver)").format(
            program=program
        )
    )
    for r in found.values():
        typer.echo(
            _("  {run_id}  {total_paid_krw:>16,} won  operator {operator}: {shown}").format(
                run_id=r.run_id,
                total_paid_krw=r.total_paid_krw,
                operator=r.operator,
                shown=release.shown(r),
            )
        )


@review_app.command(
    "export",
    help=_("Write the applications waiting for an officer as an XLSX and a CSV to fill in."),
)
def review_export(
    out: Annotated[
        Path, typer.Option(help=_("output root of the runs that held the applications"))
    ],
    program: Annotated[str, typer.Option(help=_("program id"))],
    to: Annotated[
        Path | None, typer.Option(help=_("folder for the sheets (default: OUT/review/<program>)"))
    ] = None,
) -> None:
    from flows.run.review import export_queue

    if not (out / "audit/runs").is_dir():
        fail(
            _("bad usage: no audit trail under {out}: pass the output root of earlier runs").format(
                out=out
            ),
            2,
        )
    try:
        size, files = export_queue(out, program, to)
    except JiwonError as e:
        fail(str(e), e.exit_code)
    except Exception as e:
        unexpected(e)
    typer.echo(
        _("{program}: {size:,} application(s) wait for an officer's decision").format(
            program=program, size=size
        )
    )
    for path in files:
        typer.echo(_("wrote {path}").format(path=path))


@review_app.command(
    "import",
    help=_("Record an officer's review decisions, whole or not at all, as a ledger event."),
)
def review_import(
    file: Annotated[Path, typer.Argument(help=_("the filled-in review sheet (.xlsx or .csv)"))],
    out: Annotated[
        Path, typer.Option(help=_("output root of the runs that held the applications"))
    ],
    program: Annotated[
        str | None, typer.Option(help=_("program id (default: the program the sheet names)"))
    ] = None,
    operator: Annotated[str, typer.Option(help=_("who imports (recorded)"))] = "unknown",
    reason: Annotated[str | None, typer.Option(help=_("why (recorded)"))] = None,
) -> None:
    server.start()
    from flows.run.review import ReviewParams, import_reviews

    try:
        params = ReviewParams(out=out, file=file, program=program, operator=operator, reason=reason)
    except ValidationError as e:
        fail(parameter_problem(e), 2)
    record_event(out, _("review import"), lambda: import_reviews(params))


@fixtures_app.command(
    "generate",
    help=_("Write a deterministic synthetic population as registry and enrollment extracts."),
)
def generate(
    rows: Annotated[int, typer.Option(help=_("residents to generate"))],
    out: Annotated[Path, typer.Option(help=_("writes OUT/registry and OUT/enrollments"))],
    seed: Annotated[int, typer.Option(help=_("random seed"))] = 0,
    encoding: Annotated[str, typer.Option(help=_("utf-8 or cp949"))] = "utf-8",
    scope: Annotated[
        str, typer.Option(help=_("paju (Paju's 읍면동) or national (every 시군구)"))
    ] = "paju",
    block_rows: Annotated[
        int, typer.Option(help=_("residents generated and written at a time (memory bound)"))
    ] = 1_000_000,
    program: Annotated[
        str | None,
        typer.Option(help=_("fit the data to a program's dates, unit and reach (and OUT/welfare)")),
    ] = None,
    programs_dir: Annotated[
        Path | None, typer.Option(help=_("folder of program folders (default: rules/programs)"))
    ] = None,
) -> None:
    from fixtures.generate import BLOCK_ROWS, SCOPES, Faults, generate_blocks, write_blocks

    if encoding not in ("utf-8", "cp949"):
        fail(
            _("bad usage: --encoding must be utf-8 or cp949, not {encoding!r}").format(
                encoding=encoding
            ),
            2,
        )
    if scope not in SCOPES:
        fail(
            _("bad usage: --scope must be one of {join}, not {scope!r}").format(
                join=", ".join(SCOPES), scope=scope
            ),
            2,
        )
    if rows < 1 or not 1 <= block_rows <= BLOCK_ROWS:
        fail(
            _("bad usage: --rows must be at least 1, --block-rows 1 to {block_rows:,}").format(
                block_rows=BLOCK_ROWS
            ),
            2,
        )
    enc: Literal["utf-8", "cp949"] = "cp949" if encoding == "cp949" else "utf-8"
    where: Literal["paju", "national"] = "national" if scope == "national" else "paju"
    if program is not None:
        from fixtures.programs import generate_program_blocks, write_program_blocks
        from rules.program import PROGRAMS_DIR, ProgramError, load_program

        try:
            chosen = load_program(program, programs_dir or PROGRAMS_DIR)
        except ProgramError as e:
            fail(_("bad usage: {e}").format(e=e), 2)
        if where == "national" and chosen.city is not None:
            fail(
                _("bad usage: {program} pays one city's residents; drop --scope national").format(
                    program=program
                ),
                2,
            )
        data = generate_program_blocks(
            rows, chosen, seed=seed, faults=Faults(), scope=where, block_rows=block_rows
        )
        written = write_program_blocks(data, out, encoding=enc)
    else:
        blocks = generate_blocks(rows, seed=seed, scope=where, block_rows=block_rows)
        written = write_blocks(blocks, out, encoding=enc)
    for kind, paths in written.items():
        typer.echo(
            _("{kind}: {len} file(s) in {value}").format(
                kind=kind, len=len(paths), value=paths[0].parent if paths else out
            )
        )


@programs_app.command(
    "list", help=_("List the programs with their titles, reference dates and units.")
)
def programs_list(
    programs_dir: Annotated[Path | None, typer.Option(help=_("folder of program folders"))] = None,
) -> None:
    from flows.describe import program_line
    from rules.program import PROGRAMS_DIR, ProgramError, list_programs

    try:
        programs = list_programs(programs_dir or PROGRAMS_DIR)
    except ProgramError as e:
        fail(str(e), 2)
    for p in programs:
        typer.echo(program_line(p))


@programs_app.command(
    "show", help=_("Say what a program pays, to whom and when, in Korean and English.")
)
def programs_show(
    program_id: Annotated[str, typer.Argument(metavar="ID", help=_("program id"))],
    programs_dir: Annotated[Path | None, typer.Option(help=_("folder of program folders"))] = None,
) -> None:
    from flows.describe import show
    from rules.program import PROGRAMS_DIR, ProgramError, load_program

    try:
        program = load_program(program_id, programs_dir or PROGRAMS_DIR)
    except ProgramError as e:
        fail(str(e), 2)
    typer.echo(show(program), nl=False)


@docs_app.command("codes", help=_("Print docs/codes.md (every outcome, reason and warning code)."))
def docs_codes() -> None:
    from flows.docgen import codes_markdown

    typer.echo(codes_markdown(), nl=False)


@docs_app.command(
    "audit", help=_("Print docs/audit.md (the audit trail's columns in English and Korean).")
)
def docs_audit() -> None:
    from flows.docgen import audit_markdown

    typer.echo(audit_markdown(), nl=False)


@docs_app.command(
    "programs",
    help=_("Print docs/programs.md with its rule table generated from the rules decide() applies."),
)
def docs_programs(
    guide: Annotated[Path, typer.Argument(help=_("docs/programs.md, whose rule table is renewed"))],
) -> None:
    from flows.docgen import programs_guide

    typer.echo(programs_guide(guide.read_text(encoding="utf-8")), nl=False)


# The status `main` exits with, once the command has finished (see `end_without_teardown`).
_EXIT_STATUS: list[int] = []


def end_without_teardown() -> None:
    """End the process at exit, after every other exit handler, without Python's teardown.

    Prefect's workers have sent their last logs and events (threading's exit hooks), the
    temporary server is stopped and logging is flushed; what remains is freeing every object
    one by one, which took 0.7 s after a 540,000-resident run. Every file jiwon writes is closed
    and renamed in place before a run commits, so nothing is lost by skipping it.
    """
    if not _EXIT_STATUS:  # the command did not finish: Python's own exit
        return
    logging.shutdown()
    finalize_all: Callable[[], None] | None = getattr(weakref.finalize, "_exitfunc", None)
    if finalize_all is not None:
        finalize_all()  # temporary folders and other finalizers, as Python's exit runs them
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(_EXIT_STATUS[0])


def main() -> None:
    """Entry point of the `jiwon` command."""
    atexit.register(end_without_teardown)  # first registered: runs after every other handler
    server.enable()  # this process is the command: it may start Prefect's server early
    try:
        app()
    except SystemExit as e:
        code = e.code
        _EXIT_STATUS.append(code if isinstance(code, int) else 0 if code is None else 1)
        raise
    except KeyboardInterrupt:
        typer.echo(
            _("interrupted: nothing was published unless a run record says committed"), err=True
        )
        sys.exit(1)
