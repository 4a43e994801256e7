"""Give every registry and enrollment row exactly one outcome, with reasons and the deciding rule.

Pure functions over LazyFrames: the run context (program, key, dates, ledger) is passed in, and
nothing here reads a clock, the environment or a file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers the .chash namespace)

from flows.checks import rrn
from flows.decide import attributes
from flows.decide.codes import Outcome
from flows.decide.dedup import mark_duplicate_records, winning_applications
from flows.decide.eligibility import assess, ineligibility
from flows.decide.polars_engine import ENGINE
from flows.decide.rulebook import EMPTY, Rule, first_match
from rules import reference
from rules.program import Program


def from_vocabulary(word: str) -> Callable[[], Any]:
    """Return a factory reading `word` of rules/vocabulary.yaml when a context is made."""
    return lambda: reference.vocabulary()[word]


@dataclass(frozen=True)
class RunContext:
    """What a run decides with, fixed before any data is read.

    The relation words and the age of majority are read from rules/vocabulary.yaml when the
    context is made (data, not code); a caller may still pass others.
    """

    run_id: str
    program: Program
    run_month: str
    decided_at: dt.datetime  # UTC
    pii_key: str
    head_relation: str = field(default_factory=from_vocabulary("head_relation"))
    spouse_relation: str = field(default_factory=from_vocabulary("spouse_relation"))
    minor_age_under: int = field(default_factory=from_vocabulary("minor_age_under"))
    instalment: int = 1
    default_welfare_status: str = field(default_factory=from_vocabulary("welfare_status_default"))


def describing(program: Program) -> RunContext:
    """Return a context for listing a program's rules: no run, no key, no data."""
    return RunContext("describe", program, "", dt.datetime(1970, 1, 1, tzinfo=dt.UTC), "")


@dataclass(frozen=True)
class Decisions:
    """Every input row with its outcome (`registry`, `enrollment`) and the payees to pay."""

    registry: pl.DataFrame
    enrollment: pl.DataFrame
    payees: pl.DataFrame


def keyed(column: str, key: str, prefix: str = "") -> pl.Expr:
    """Return the HMAC-SHA256 (hex) of a column with the deployment's secret key."""
    value = pl.concat_str(pl.lit(prefix), pl.col(column)) if prefix else pl.col(column)
    hmac: pl.Expr = value.chash.hmac_sha256(key=key)  # type: ignore[attr-defined]
    return hmac


def sha256_hex(expr: pl.Expr) -> pl.Expr:
    """Return the SHA-256 (hex) of a string expression (polars-hash, stable across versions)."""
    digest: pl.Expr = expr.chash.sha2_256()  # type: ignore[attr-defined]
    return digest


def payment_id(ctx: RunContext) -> pl.Expr:
    """Return the id stable for (program, person, instalment), so reruns reuse it."""
    identity = pl.concat_str(
        pl.lit(f"{ctx.program.id}|"), pl.col("person_key"), pl.lit("|"), pl.col("instalment")
    )
    return pl.concat_str(pl.lit("JW"), sha256_hex(identity).str.slice(0, 22).str.to_uppercase())


# An officer's recorded decision on a held application (flows.review), joined onto it by
# `decide_enrollment`: null, APPROVE or REJECT.
REVIEW, APPROVE, REJECT = "_review", "approve", "reject"

# The first rule of both lists: a row that failed a row check keeps the check's reasons.
ROW_CHECK_FAILED = Rule(
    "validate.row",
    Outcome.QUARANTINED.value,
    (),
    pl.col("quarantined"),
    "행 검사 실패 (사유: docs/codes.md의 행 검사 코드)",
    "a row check failed (reasons: the row check codes of docs/codes.md)",
    why=pl.col("reason_codes"),
)

HEADS = "_heads"  # kept heads in the row's household (computed once: a window is costly)
ELIGIBLE_HEADS = "_eligible_heads"


def household_counts(head_relation: str) -> list[pl.Expr]:
    """Return the household's kept heads and eligible kept heads, as columns read by later rules.

    Each `.over("household_id")` groups every row again; polars does not share repeated windows
    between expressions, so they are computed once here (8 s instead of 0.5 s on 540,000 rows).
    """
    head = pl.col("kept") & (pl.col("relation") == head_relation)
    return [
        head.cast(pl.Int64).sum().over("household_id").alias(HEADS),
        (head & pl.col("eligible")).cast(pl.Int64).sum().over("household_id").alias(ELIGIBLE_HEADS),
    ]


def household_warnings(head_relation: str) -> pl.Expr:
    """Return the row's warnings extended with a household that has no head or several.

    Counted over kept rows only, so a person listed twice does not make two heads.
    """
    heads = pl.col(HEADS)
    fault = (
        pl.when(pl.col("kept") & (heads == 0))
        .then(pl.lit(["HOUSEHOLD_NO_HEAD"]))
        .when(pl.col("kept") & (heads > 1))
        .then(pl.lit(["HOUSEHOLD_MULTIPLE_HEADS"]))
        .otherwise(EMPTY)
    )
    return pl.concat_list("warning_codes", fault)


def with_welfare(
    registry: pl.LazyFrame, welfare: pl.LazyFrame | None, default: str
) -> pl.LazyFrame:
    """Add `welfare_status` from the welfare extract (rrn, welfare_status); absent: `default`."""
    if welfare is None:
        return registry.with_columns(welfare_status=pl.lit(default))
    return registry.join(
        welfare.select("rrn", "welfare_status"), on="rrn", how="left", maintain_order="left"
    ).with_columns(pl.col("welfare_status").fill_null(default))


def unit_rules(ctx: RunContext) -> list[pl.Expr]:
    """Return `payable`, `unit_reason`, `unit_rule` and `entitled_krw` for eligible kept rows.

    Person programs pay every eligible kept row. Household programs pay the household's single
    head, with the household size counted over its eligible kept members; the other members are
    covered by that payment (or, when the household has no single eligible head, by nobody).
    A payee whose amount the program does not define (no tier applies) is not payable.
    """
    program = ctx.program
    head = pl.col("relation") == ctx.head_relation
    valid = pl.col("kept") & pl.col("eligible")
    amount: pl.Expr = pl.lit(None, dtype=pl.Int64)
    for inst in reversed(program.instalments):
        amount = (
            pl.when(pl.col("instalment") == inst.number)
            .then(attributes.entitlement(program, inst.number))
            .otherwise(amount)
        )
    payee: pl.Expr = valid
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    if program.unit == "household":
        heads = pl.col(HEADS)
        eligible_heads = pl.col(ELIGIBLE_HEADS)
        payee = valid & head & (heads == 1)
        reason = (
            pl.when(valid & head & (heads > 1))
            .then(pl.lit("HOUSEHOLD_HEAD_AMBIGUOUS"))
            .when(valid & ~head & (heads == 1) & (eligible_heads == 1))
            .then(pl.lit("COVERED_BY_HOUSEHOLD"))
            .when(valid & ~head)
            .then(pl.lit("HOUSEHOLD_HEAD_NOT_PAYABLE"))
        )
    undefined = amount.is_null() | (amount <= 0)
    reason = pl.when(payee & undefined).then(pl.lit("AMOUNT_NOT_DEFINED")).otherwise(reason)
    rule = (
        pl.when(reason == "AMOUNT_NOT_DEFINED")
        .then(pl.concat_str(pl.lit("amount.instalment_"), pl.col("instalment")))
        .when(reason.is_not_null())
        .then(pl.lit("unit.household"))
    )
    return [
        (payee & reason.is_null()).alias("payable"),
        reason.alias("unit_reason"),
        rule.alias("unit_rule"),
        pl.when(payee & reason.is_null()).then(amount).alias("entitled_krw"),
    ]


def requires(ctx: RunContext, check: str, column: str = "instalment") -> pl.Expr:
    """Return whether the row's instalment (a later one) must pass `check` when it falls due."""
    numbers = [i.number for i in ctx.program.instalments if check in i.requires]
    return pl.col(column).is_in(numbers).fill_null(False)


def split_progress(paid_before: pl.DataFrame, ctx: RunContext) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (blocked, due) from the ledger's progress (Ledger.progress) or a plain key list.

    `blocked` (person_key, last_paid, waiting): paid, and nothing further falls due this run
    (`waiting`: a later instalment exists but is not due yet). `due` (person_key, instalment):
    the later instalment this run decides for them.
    """
    progress = paid_before
    if "next_due" not in paid_before.columns:
        progress = (
            paid_before.select("person_key")
            .unique()
            .with_columns(
                last_paid=pl.lit(ctx.instalment, pl.Int64),
                next_instalment=pl.lit(None, pl.Int64),
                next_due=pl.lit(False),
            )
        )
    if "next_due_on" not in progress.columns:
        progress = progress.with_columns(
            next_due_on=pl.lit(None, pl.Date), used_applications=pl.lit([], pl.List(pl.String))
        )
    blocked = progress.filter(~pl.col("next_due")).select(
        "person_key", "last_paid", waiting=pl.col("next_instalment").is_not_null()
    )
    due = progress.filter("next_due").select(
        "person_key", "used_applications", instalment="next_instalment", due_on="next_due_on"
    )
    return blocked, due


def owed_first(
    blocked: pl.DataFrame, due: pl.DataFrame, progress: pl.DataFrame, reissue: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (blocked, due) with the instalments owed again decided before anything later.

    A payment owed again (`reissue`) is due now, whatever later instalment was paid since (an
    instalment 1 returned after instalment 2 was paid): its person is neither blocked nor due
    for a later one this run. The applications that paid other instalments stay used.
    """
    if not reissue.height:
        return blocked, due
    first = reissue.group_by("person_key").agg(pl.col("instalment").min())
    used = (
        progress.select("person_key", "used_applications")
        if "used_applications" in progress.columns
        else pl.DataFrame(schema={"person_key": pl.String, "used_applications": pl.List(pl.String)})
    )
    # only people the ledger's progress knows: one owed instalment 1 and nothing else is
    # decided as anyone with nothing paid
    again = first.join(used, on="person_key", how="inner").select(
        "person_key",
        "used_applications",
        pl.col("instalment").cast(pl.Int64),
        due_on=pl.lit(None, pl.Date),
    )
    return (
        blocked.join(first, on="person_key", how="anti"),
        pl.concat(
            [due.join(first, on="person_key", how="anti"), again.select(due.columns)],
            how="vertical_relaxed",
        ),
    )


def prepare_registry(
    registry: pl.LazyFrame,
    ctx: RunContext,
    welfare: pl.LazyFrame | None = None,
    due: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Add keys, masks, household warnings, eligibility and entitlement to marked registry rows.

    `registry` carries `is_duplicate` and `duplicate_of` (flows.decide.dedup). `due` (person_key,
    instalment) names people whose later instalment this run decides; every other row is decided
    for instalment `ctx.instalment`.
    """
    if due is None:
        due = pl.LazyFrame(schema={"person_key": pl.String, "instalment": pl.Int64})
    used = set(ctx.program.attributes_used())
    marked = with_welfare(registry, welfare, ctx.default_welfare_status).with_columns(
        kept=~pl.col("quarantined") & ~pl.col("is_duplicate")
    )
    # Attributes counted over households are computed only when the program reads them.
    if "birth_order" in used:
        marked = marked.with_columns(birth_order=attributes.birth_order())
    assessed = assess(marked, ctx.program)
    if "household_size" in used:
        assessed = assessed.with_columns(household_size=attributes.household_size())
    return (
        assessed.with_columns(
            person_key=keyed("rrn", ctx.pii_key),
            household_key=keyed("household_id", ctx.pii_key, prefix="household:"),
            rrn_masked=rrn.masked("rrn"),
            name_masked=rrn.masked_name("name"),
        )
        .join(
            due.select("person_key", "instalment"),
            on="person_key",
            how="left",
            maintain_order="left",
        )
        .with_columns(pl.col("instalment").fill_null(ctx.instalment).cast(pl.Int64))
        .with_columns(household_counts(ctx.head_relation))
        .with_columns(warning_codes=household_warnings(ctx.head_relation))
        .with_columns(unit_rules(ctx))
        .drop(HEADS, ELIGIBLE_HEADS)
    )


def proxy_rules(ctx: RunContext) -> tuple[Rule, ...]:
    """Return who may apply for whom, in order; the first rule ("allowed") gives no outcome.

    Online, an adult applies for themself and a minor may be applied for by the head or the head's
    spouse of the minor's household. At the office the head may also apply for any member; an
    office application from outside the household waits for an officer (HELD_FOR_REVIEW).
    """
    head = pl.col("a_relation") == ctx.head_relation
    spouse = pl.col("a_relation") == ctx.spouse_relation
    minor = rrn.age_on(pl.col("b_birth"), ctx.program.reference_date) < ctx.minor_age_under
    same_household = pl.col("a_household").is_not_null() & (
        pl.col("a_household") == pl.col("b_household")
    )
    office = pl.col("channel") == "office"
    allowed = (
        (pl.col("applicant_rrn") == pl.col("rrn"))
        | (same_household & minor & (head | spouse))
        | (same_household & office & head)
    )
    not_allowed, held = Outcome.PROXY_NOT_ALLOWED.value, Outcome.HELD_FOR_REVIEW.value
    adult, head_word, spouse_word = ctx.minor_age_under, ctx.head_relation, ctx.spouse_relation
    needs_proof = ~same_household & office
    return (
        Rule(
            "proxy.allowed",
            "",
            (),
            allowed,
            f"본인 신청, 같은 세대 {head_word}·{spouse_word}의 {adult}세 미만 대리 신청, "
            f"같은 세대 {head_word}의 방문 대리 신청: 허용",
            f"allowed: applying for oneself; the household's {head_word} (head) or {spouse_word} "
            f"(spouse) for a member under {adult}; the head at the office for any member",
        ),
        Rule(
            "review.approved",
            "",
            (),
            needs_proof & (pl.col(REVIEW) == APPROVE).fill_null(False),
            "세대 밖 방문 대리 신청: 담당자가 직계가족 증빙을 확인하고 승인함 (허용)",
            "allowed: an office application from outside the household an officer approved "
            "after seeing proof of family (jiwon review import)",
        ),
        Rule("proxy.needs_family_proof", held, ("PROXY_NEEDS_FAMILY_PROOF",), needs_proof),
        Rule("proxy.outside_household", not_allowed, ("PROXY_OUTSIDE_HOUSEHOLD",), ~same_household),
        Rule("proxy.not_head_or_spouse", not_allowed, ("PROXY_NOT_HEAD_OR_SPOUSE",), minor),
        Rule("proxy.adult_online", not_allowed, ("PROXY_ADULT_ONLINE",), ~office),
        Rule("proxy.not_head", not_allowed, ("PROXY_NOT_HEAD",), pl.lit(True)),
    )


def proxy_check(ctx: RunContext) -> tuple[pl.Expr, pl.Expr]:
    """Return (outcome, reason) for an application's proxy, null outcome when it is allowed."""
    outcome, reason, _ = first_match(proxy_rules(ctx))
    return pl.when(outcome != "").then(outcome), reason


def enrollment_rules(ctx: RunContext) -> tuple[Rule, ...]:
    """Return the rules an application is checked against, in order (the first that holds decides).

    Applications no rule decides are valid: the earliest per beneficiary is paid
    (`settlement_rules`). Columns are those `decide_enrollment` joins onto each application.
    """
    later = pl.col("b_instalment") > 1
    in_city = requires(ctx, "registered_in_city", "b_instalment")
    carer_in_household = (
        pl.col("a_status").is_in(list(ctx.program.eligibility.statuses))
        & (pl.col("a_household") == pl.col("b_household"))
    ).fill_null(False)
    proxy = proxy_rules(ctx)
    proxy_outcome, proxy_reason = proxy_check(ctx)
    applied_day = pl.col("p_applied_at").dt.date()
    # A later instalment is paid on a new application (0010): not one that paid before, and
    # not one made before the instalment fell due.
    used_before = (
        later & pl.col("used_applications").list.contains(pl.col("application_id"))
    ).fill_null(False)
    applied_early = (later & (applied_day < pl.col("due_on"))).fill_null(False)
    in_window = (applied_day >= pl.col("window_start")) & (applied_day <= pl.col("window_end"))
    matched = pl.col("b_household").is_not_null()
    ineligible = Outcome.INELIGIBLE.value
    return (
        ROW_CHECK_FAILED,
        Rule(
            "match.registry",
            Outcome.UNMATCHED.value,
            ("BENEFICIARY_QUARANTINED",),
            ~matched & pl.col("b_quarantined").fill_null(False),
        ),
        Rule(
            "instalment.registered_in_city",
            ineligible,
            ("INSTALMENT_CONDITION_FAILED", "BENEFICIARY_NOT_IN_REGISTRY"),
            ~matched & later & in_city,
            "지급 시기가 된 회차: 대상자가 더 이상 주민등록 자료에 없음",
            "a due later instalment: the beneficiary is no longer in the city's registry",
        ),
        Rule(
            "match.registry",
            Outcome.UNMATCHED.value,
            ("BENEFICIARY_NOT_IN_REGISTRY",),
            ~matched,
        ),
        Rule(
            "instalment.registered_in_city",
            ineligible,
            ("INSTALMENT_CONDITION_FAILED", "BENEFICIARY_INELIGIBLE"),
            ~pl.col("b_eligible") & later & in_city,
            "지급 시기가 된 회차: 대상자가 더 이상 지원 대상이 아님",
            "a due later instalment: the beneficiary is no longer eligible",
        ),
        Rule(
            "eligibility.beneficiary",
            ineligible,
            ("BENEFICIARY_INELIGIBLE",),
            ~pl.col("b_eligible"),
        ),
        Rule(
            "unit.household, amount.instalment_<n>",
            ineligible,
            ("BENEFICIARY_NOT_HOUSEHOLD_HEAD", "HOUSEHOLD_HEAD_AMBIGUOUS", "AMOUNT_NOT_DEFINED"),
            ~pl.col("b_payable"),
            "대상자에게 지급하지 않음: 세대 단위 사업의 세대주가 아니거나, 지급액이 정해지지 않음",
            "the beneficiary is not paid: not the head in a household program, or no amount",
            why=pl.concat_list(
                pl.when(
                    pl.col("b_unit_reason").is_in(
                        ["COVERED_BY_HOUSEHOLD", "HOUSEHOLD_HEAD_NOT_PAYABLE"]
                    )
                )
                .then(pl.lit("BENEFICIARY_NOT_HOUSEHOLD_HEAD"))
                .otherwise(pl.col("b_unit_reason"))
            ),
            decided_by=pl.col("b_unit_rule"),
        ),
        Rule(
            "ledger.already_paid",
            Outcome.ALREADY_PAID.value,
            ("BENEFICIARY_ALREADY_PAID", "NEXT_INSTALMENT_NOT_DUE"),
            pl.col("paid_before").fill_null(False),
            "이전 실행에서 이미 지급됨 (다음 회차가 있으면 아직 지급 시기 전)",
            "paid by an earlier committed run (and the next instalment, if any, is not due)",
            why=pl.when(pl.col("waiting"))
            .then(pl.lit(["BENEFICIARY_ALREADY_PAID", "NEXT_INSTALMENT_NOT_DUE"]))
            .otherwise(pl.lit(["BENEFICIARY_ALREADY_PAID"])),
        ),
        Rule(
            "instalment.new_application",
            ineligible,
            ("APPLICATION_PAID_EARLIER_INSTALMENT",),
            used_before,
        ),
        Rule(
            "instalment.new_application",
            ineligible,
            ("APPLIED_BEFORE_INSTALMENT_DUE",),
            applied_early,
        ),
        Rule(
            "instalment.same_household_as_applicant",
            ineligible,
            ("INSTALMENT_CONDITION_FAILED", "CARER_NOT_IN_HOUSEHOLD"),
            later
            & requires(ctx, "same_household_as_applicant", "b_instalment")
            & ~carer_in_household,
        ),
        Rule(
            "review.rejected",
            ineligible,
            ("REVIEW_REJECTED",),
            (pl.col(REVIEW) == REJECT).fill_null(False),
        ),
        Rule(
            "application.proxy",
            "",
            (),
            proxy_outcome.is_not_null(),
            "신청인이 대상자를 대리 신청할 수 없음 (아래 규칙 중 처음 해당하는 것)",
            "the applicant may not apply for the beneficiary (the first of these that holds)",
            why=proxy_reason,
            decided=proxy_outcome,
            within=proxy,
        ),
        Rule(
            "application.window",
            ineligible,
            ("OUTSIDE_WINDOW",),
            # a person owed again after a failed payment applied in time: a corrected account
            # or card may come after the window (lifecycle.md, re-issue)
            ~in_window.fill_null(False) & ~later & ~pl.col("_newest_first"),
        ),
        Rule(
            "application.payout",
            ineligible,
            ("PAYOUT_NOT_OFFERED",),
            ~pl.col("payout").is_in(list(ctx.program.payout_channels)),
        ),
        Rule(
            "payment.details_rejected",
            ineligible,
            ("PAYOUT_DETAILS_REJECTED",),
            pl.col("_details_rejected"),
            "은행·카드사가 이전 시도에서 거절한 계좌·카드로는 다시 지급하지 않음",
            "never paid again to payout details a bank or card result said were wrong",
        ),
    )


LOST = pl.col("outcome").is_null() & (pl.col("application_id") != pl.col("winner_application_id"))
WON = pl.col("outcome").is_null()


def settlement_rules() -> tuple[Rule, ...]:
    """Return what happens to the applications no rule of `enrollment_rules` decided, in order."""
    return (
        Rule(
            "dedup.application",
            Outcome.DUPLICATE_APPLICATION.value,
            ("DUPLICATE_OF_EARLIER_APPLICATION",),
            LOST,
        ),
        Rule(
            "payment.paid, review.approved",
            Outcome.PAID.value,
            (),
            WON,
            "이번 실행에서 지급 (대상자의 가장 이른 유효한 신청, 재지급이면 가장 최근 신청; "
            "담당자가 승인한 신청이면 review.approved)",
            "paid by this run (the beneficiary's earliest valid application; the newest for a "
            "re-issue; review.approved when an officer approved the held application)",
            decided_by=pl.when((pl.col(REVIEW) == APPROVE).fill_null(False))
            .then(pl.lit("review.approved"))
            .otherwise(pl.lit("payment.paid")),
        ),
    )


def decide_enrollment(
    enrollment: pl.LazyFrame,
    registry: pl.LazyFrame,
    paid_before: pl.LazyFrame,
    ctx: RunContext,
    due: pl.LazyFrame | None = None,
    reissue: pl.LazyFrame | None = None,
    reviews: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Give every application an outcome; PAID for the earliest valid one per beneficiary.

    For a beneficiary owed again (`reissue`, REISSUE_SCHEMA) the newest valid one is paid, and
    never one whose payout details a bank or card result refused for them before. `reviews`
    (REVIEWED_SCHEMA): officers' newest recorded decisions; an approved held application is
    decided as if its rule had passed, a rejected one is INELIGIBLE (`review.rejected`).

    `due` (person_key, instalment): people whose later instalment falls due this run, so an
    application for one who is no longer in the city's registry fails that instalment's check.
    """
    if due is None:
        due = pl.LazyFrame(
            schema={
                "person_key": pl.String,
                "instalment": pl.Int64,
                "due_on": pl.Date,
                "used_applications": pl.List(pl.String),
            }
        )
    kept = registry.filter("kept")
    beneficiary = kept.select(
        "rrn",
        "person_key",
        "household_key",
        "rrn_masked",
        "name_masked",
        "admin_code",
        b_household="household_id",
        b_birth="p_birth_date",
        b_eligible="eligible",
        b_payable="payable",
        b_unit_reason="unit_reason",
        b_unit_rule="unit_rule",
        b_entitled="entitled_krw",
        b_instalment="instalment",
        window_start="window_start",
        window_end="window_end",
    )
    applicant = kept.select(
        applicant_rrn="rrn", a_household="household_id", a_relation="relation", a_status="status"
    )
    quarantined = (
        registry.filter(pl.col("quarantined") & pl.col("rrn").is_not_null())
        .select("rrn", b_quarantined=pl.lit(True))
        .unique("rrn")
    )
    frame = (
        enrollment.join(beneficiary, on="rrn", how="left", maintain_order="left")
        .join(applicant, on="applicant_rrn", how="left", maintain_order="left")
        .join(quarantined, on="rrn", how="left", maintain_order="left")
        .with_columns(
            person_key=pl.coalesce("person_key", keyed("rrn", ctx.pii_key)),
            rrn_masked=pl.coalesce("rrn_masked", rrn.masked("rrn")),
        )
        .join(
            paid_before.select("person_key", "last_paid", "waiting", paid_before=pl.lit(True)),
            on="person_key",
            how="left",
            maintain_order="left",
        )
    )
    frame = frame.join(
        due.select("person_key", "due_on", "used_applications", due_instalment="instalment"),
        on="person_key",
        how="left",
        maintain_order="left",
    ).with_columns(
        b_instalment=pl.coalesce("b_instalment", "due_instalment", pl.lit(ctx.instalment))
    )
    if reissue is None:  # nobody owed again (most runs): nothing to key or join
        frame = frame.with_columns(_details_rejected=pl.lit(False), _newest_first=pl.lit(False))
    else:
        frame = rejected_details(frame, reissue, ctx)
    frame = with_reviews(frame, reviews)
    outcome, reasons, rule = first_match(enrollment_rules(ctx))
    frame = frame.with_columns(outcome=outcome, reason_codes=reasons, rule_id=rule)
    winners = winning_applications(frame.filter(pl.col("outcome").is_null()))
    so_far = (pl.col("outcome"), pl.col("reason_codes"), pl.col("rule_id"))
    outcome, reasons, rule = first_match(settlement_rules(), otherwise=so_far)
    return (
        frame.join(winners, on="rrn", how="left", maintain_order="left")
        .with_columns(
            outcome=outcome,
            reason_codes=reasons,
            rule_id=rule,
            duplicate_of=pl.when(LOST).then("winner_application_id"),
        )
        .with_columns(
            amount_krw=pl.when(pl.col("outcome") == Outcome.PAID.value)
            .then(pl.col("b_entitled"))
            .otherwise(pl.lit(0, dtype=pl.Int64)),
            instalment=pl.when(pl.col("outcome") == Outcome.ALREADY_PAID.value)
            .then(pl.col("last_paid"))
            .otherwise(pl.col("b_instalment"))
            .fill_null(ctx.instalment)
            .cast(pl.Int64),
        )
        .drop("due_on", "used_applications", "_details_rejected", "_newest_first", REVIEW)
    )


REVIEWED_SCHEMA = pl.Schema(
    {"application_id": pl.String(), "person_key": pl.String(), "decision": pl.String()}
)


def empty_reviews() -> pl.LazyFrame:
    """Return a frame of officers' decisions with none."""
    return pl.LazyFrame(schema=REVIEWED_SCHEMA)


def with_reviews(frame: pl.LazyFrame, reviews: pl.LazyFrame | None) -> pl.LazyFrame:
    """Add REVIEW: the officer's decision recorded for the application (its id and person)."""
    if reviews is None:  # no decision recorded (most runs): nothing to join
        return frame.with_columns(pl.lit(None, pl.String).alias(REVIEW))
    decided = reviews.select("application_id", "person_key", pl.col("decision").alias(REVIEW))
    return frame.join(
        decided, on=["application_id", "person_key"], how="left", maintain_order="left"
    )


def rejected_details(frame: pl.LazyFrame, reissue: pl.LazyFrame, ctx: RunContext) -> pl.LazyFrame:
    """Mark the applications of people owed again: which carry details a result said were wrong.

    Adds `_details_rejected` (the application's keyed account or card is one a bank or card
    result refused for this person) and `_newest_first` (the person is owed again: their newest
    valid application wins, lifecycle.md). Only the owed people's applications are keyed.
    """
    from flows.audit.records import ACCOUNT_PREFIX, CARD_PREFIX

    wrong = reissue.group_by("person_key").agg(
        _wrong=pl.col("wrong_keys").list.explode(keep_nulls=False, empty_as_null=False).unique()
    )
    frame = frame.join(wrong, on="person_key", how="left", maintain_order="left")
    owed = pl.col("_wrong").is_not_null()
    account = pl.concat_str(pl.col("bank_code"), pl.lit(":"), pl.col("account_no"))
    key = (
        pl.when(pl.col("payout") == "bank")
        .then(keyed("_account", ctx.pii_key, prefix=ACCOUNT_PREFIX))
        .otherwise(keyed("card_id", ctx.pii_key, prefix=CARD_PREFIX))
    )
    marked = (
        frame.filter(owed)
        .with_columns(_account=account)
        .select(
            "source_file",
            "source_row",
            _details_rejected=pl.col("_wrong").list.contains(key).fill_null(False),
        )
    )
    return (
        frame.join(marked, on=["source_file", "source_row"], how="left", maintain_order="left")
        .with_columns(
            _details_rejected=pl.col("_details_rejected").fill_null(False), _newest_first=owed
        )
        .drop("_wrong")
    )


# Every id the eligibility rule can write (flows.decide.eligibility); a program has its own
# conditions.
ELIGIBILITY_IDS = (
    "eligibility.status, eligibility.registered_on, eligibility.population, "
    "eligibility.condition.<id>"
)


def registry_rules(ctx: RunContext) -> tuple[Rule, ...]:
    """Return the rules a registry row is checked against, in order (the first that holds decides).

    Columns are those of `prepare_registry`, with the row's applications (`has_paid_app`,
    `has_held_app`) and the ledger's progress joined by `decide_registry`.
    """
    kept = pl.col("kept")
    titles = {f"eligibility.condition.{c.id}": c.title for c in ctx.program.eligibility.conditions}
    eligibility = tuple(
        Rule(
            rule_id,
            Outcome.INELIGIBLE.value,
            (code,),
            fails.fill_null(True),
            titles[rule_id].ko if rule_id in titles else "",
            titles[rule_id].en if rule_id in titles else "",
        )
        for rule_id, code, fails in ineligibility(ctx.program)
    )
    ineligible = Outcome.INELIGIBLE.value
    return (
        ROW_CHECK_FAILED,
        Rule(
            "dedup.record",
            Outcome.DUPLICATE_RECORD.value,
            ("DUPLICATE_RRN",),
            pl.col("is_duplicate"),
        ),
        Rule(
            "instalment.registered_in_city",
            ineligible,
            ("INSTALMENT_CONDITION_FAILED",),
            ~pl.col("eligible") & (pl.col("instalment") > 1) & requires(ctx, "registered_in_city"),
            "지급 시기가 된 회차: 더 이상 지원 대상이 아님 (아래 자격 규칙의 사유 추가)",
            "a due later instalment: no longer eligible (with the reasons of the rules below)",
            why=pl.concat_list(pl.lit(["INSTALMENT_CONDITION_FAILED"]), "ineligible_reasons"),
        ),
        Rule(
            ELIGIBILITY_IDS,
            ineligible,
            (
                "STATUS_NOT_ELIGIBLE",
                "REGISTERED_AFTER_REFERENCE",
                "POPULATION_NOT_ELIGIBLE",
                "PROGRAM_CONDITION_NOT_MET",
            ),
            ~pl.col("eligible"),
            "사업의 지원 대상이 아님: 실패한 첫 자격 규칙이 rule_id, 실패한 모든 규칙이 사유",
            "not eligible for the program: rule_id names the first failed rule, reasons all",
            why=pl.col("ineligible_reasons"),
            decided_by=pl.col("ineligible_rule"),
            within=eligibility,
        ),
        Rule(
            "unit.household, amount.instalment_<n>",
            ineligible,
            (
                "COVERED_BY_HOUSEHOLD",
                "HOUSEHOLD_HEAD_NOT_PAYABLE",
                "HOUSEHOLD_HEAD_AMBIGUOUS",
                "AMOUNT_NOT_DEFINED",
            ),
            pl.col("unit_reason").is_not_null(),
            "지급하지 않음: 세대 단위 사업의 세대원이거나 세대주가 없음, 또는 지급액이 없음",
            "not paid: a household program pays the single head only, or no amount is defined",
            why=pl.concat_list(pl.col("unit_reason")),
            decided_by=pl.col("unit_rule"),
        ),
        Rule(
            "ledger.already_paid",
            Outcome.ALREADY_PAID.value,
            ("PAID_IN_EARLIER_RUN", "NEXT_INSTALMENT_NOT_DUE"),
            kept & pl.col("paid_before").fill_null(False),
            "이전 실행에서 이미 지급됨 (다음 회차가 있으면 아직 지급 시기 전)",
            "paid by an earlier committed run (and the next instalment, if any, is not due)",
            why=pl.when(pl.col("waiting"))
            .then(pl.lit(["PAID_IN_EARLIER_RUN", "NEXT_INSTALMENT_NOT_DUE"]))
            .otherwise(pl.lit(["PAID_IN_EARLIER_RUN"])),
        ),
        Rule(
            "payment.paid",
            Outcome.PAID.value,
            (),
            kept & pl.col("has_paid_app").fill_null(False),
            "이번 실행에서 이 사람의 신청이 지급됨",
            "this run pays the person's application",
        ),
        Rule(
            "application.proxy",
            Outcome.HELD_FOR_REVIEW.value,
            ("APPLICATION_HELD",),
            kept & pl.col("has_held_app").fill_null(False),
        ),
        Rule(
            "payment.owed_again",
            Outcome.UNENROLLED.value,
            ("PAYMENT_OWED_AGAIN",),
            kept & pl.col("owed_again").fill_null(False),
            "이전 지급이 거절·반환됨: 지급할 수 있는 신청이 오면 재지급",
            "an earlier payment was rejected or returned: re-issued once a payable application "
            "arrives",
        ),
        Rule("application.none", Outcome.UNENROLLED.value, ("NO_VALID_APPLICATION",), pl.lit(True)),
    )


def decide_registry(
    registry: pl.LazyFrame,
    enrollment: pl.LazyFrame,
    paid_before: pl.LazyFrame,
    ctx: RunContext,
    reissue: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Give every registry row an outcome, PAID where this run pays its winning application.

    `reissue` (REISSUE_SCHEMA): payments owed again after a failed attempt; their people are
    `UNENROLLED` + `PAYMENT_OWED_AGAIN` until an application of theirs can be paid.
    """
    by_beneficiary = enrollment.group_by("rrn").agg(
        has_paid_app=(pl.col("outcome") == Outcome.PAID.value).any(),
        has_held_app=(pl.col("outcome") == Outcome.HELD_FOR_REVIEW.value).any(),
    )
    frame = registry.join(by_beneficiary, on="rrn", how="left", maintain_order="left").join(
        paid_before.select("person_key", "last_paid", "waiting", paid_before=pl.lit(True)),
        on="person_key",
        how="left",
        maintain_order="left",
    )
    if reissue is None:
        frame = frame.with_columns(owed_again=pl.lit(False))
    else:
        owed = reissue.select("person_key").unique().with_columns(owed_again=pl.lit(True))
        frame = frame.join(owed, on="person_key", how="left", maintain_order="left")
    outcome, reasons, rule = first_match(registry_rules(ctx))
    return frame.with_columns(outcome=outcome, reason_codes=reasons, rule_id=rule).with_columns(
        amount_krw=pl.when(pl.col("outcome") == Outcome.PAID.value)
        .then(pl.col("entitled_krw"))
        .otherwise(pl.lit(0, dtype=pl.Int64)),
        instalment=pl.when(pl.col("outcome") == Outcome.ALREADY_PAID.value)
        .then(pl.col("last_paid"))
        .otherwise(pl.col("instalment")),
    )


def decide(
    registry: pl.DataFrame,
    enrollment: pl.DataFrame,
    paid_before: pl.DataFrame,
    ctx: RunContext,
    welfare: pl.DataFrame | None = None,
    duplicates_marked: bool = False,
    reissue: pl.DataFrame | None = None,
    reviews: pl.DataFrame | None = None,
) -> Decisions:
    """Decide every row of both deliveries and return them with the payees of this run.

    Duplicate registry rows are marked here by the one narrow-key pass (flows.decide.dedup), unless
    the caller marked them over a larger whole already (`duplicates_marked`: a partitioned run
    decides duplicates over all files before it splits them into buckets). `reissue`
    (REISSUE_SCHEMA, from the ledger): payments whose latest attempt was rejected, returned or
    voided; this run pays them again as the next attempt of the same `payment_id`. `reviews`
    (REVIEWED_SCHEMA, from the ledger): officers' decisions on held applications.
    """
    lazy_welfare = None if welfare is None else welfare.lazy()
    reviewed = reviews.lazy() if reviews is not None and reviews.height else None
    owed = reissue if reissue is not None and reissue.height else None
    again = None if owed is None else owed.lazy()  # None: nobody owed again, no joins for it
    blocked, due = split_progress(paid_before, ctx)
    if owed is not None:
        blocked, due = owed_first(blocked, due, paid_before, owed)
    rows = registry.lazy() if duplicates_marked else mark_duplicate_records(registry.lazy())
    reg = prepare_registry(rows, ctx, lazy_welfare, due.lazy()).collect(engine=ENGINE)
    enr = decide_enrollment(
        enrollment.lazy(), reg.lazy(), blocked.lazy(), ctx, due.lazy(), again, reviewed
    ).collect(engine=ENGINE)
    reg = decide_registry(reg.lazy(), enr.lazy(), blocked.lazy(), ctx, again).collect(engine=ENGINE)
    reg, enr = (attempts(frame.lazy(), again, ctx).collect(engine=ENGINE) for frame in (reg, enr))
    payees = enr.filter(pl.col("outcome") == Outcome.PAID.value).select(
        "payment_id",
        "person_key",
        "card_id",
        "bank_code",
        "account_no",
        "account_holder",
        "payout",
        "amount_krw",
        "application_id",
        "attempt",
        "reissue_of",
    )
    return Decisions(reg, enr, payees)


REISSUE_SCHEMA = pl.Schema(
    {
        "person_key": pl.String(),
        "instalment": pl.Int64(),
        "payment_id": pl.String(),
        "last_attempt": pl.Int64(),
        "last_instruction_id": pl.String(),
        "wrong_keys": pl.List(pl.String()),
        "amount_krw": pl.Int64(),  # what the failed attempt paid: a re-issue pays the same
    }
)


def empty_reissue() -> pl.LazyFrame:
    """Return a re-issue frame with no payments owed again."""
    return pl.LazyFrame(schema=REISSUE_SCHEMA)


def attempts(frame: pl.LazyFrame, reissue: pl.LazyFrame | None, ctx: RunContext) -> pl.LazyFrame:
    """Give PAID rows their payment id, attempt number and the attempt they re-issue.

    A first payment is attempt 1 of the id stable for (program, person, instalment); a payment
    owed again keeps the id of its earlier attempts (even across a key rotation) and the amount
    they were for, and is the attempt after the last one (lifecycle.md, "Payment states").
    """
    paid = pl.when(pl.col("outcome") == Outcome.PAID.value)
    if reissue is None:  # every payment is a first attempt
        return frame.with_columns(
            payment_id=paid.then(payment_id(ctx)),
            attempt=paid.then(pl.lit(1, pl.Int64)),
            reissue_of=pl.lit(None, pl.String),
        )
    return (
        frame.join(
            reissue.select(
                "person_key",
                "instalment",
                _r_payment_id="payment_id",
                _r_attempt=pl.col("last_attempt") + 1,
                _r_of="last_instruction_id",
                _r_amount="amount_krw",
            ),
            on=["person_key", "instalment"],
            how="left",
            maintain_order="left",
        )
        .with_columns(
            payment_id=paid.then(pl.coalesce("_r_payment_id", payment_id(ctx))),
            attempt=paid.then(pl.coalesce("_r_attempt", pl.lit(1, pl.Int64))),
            reissue_of=paid.then(pl.col("_r_of")),
            # what was owed is owed: a re-issue pays the failed attempt's amount, even if the
            # household or the tables changed since
            amount_krw=paid.then(pl.coalesce("_r_amount", "amount_krw")).otherwise("amount_krw"),
        )
        .drop("_r_payment_id", "_r_attempt", "_r_of", "_r_amount")
    )
