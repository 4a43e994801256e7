"""Generate the reference docs from the code, so they cannot drift.

docs/codes.md and docs/audit.md whole; in docs/programs.md, the rule table between its markers.
"""

from __future__ import annotations

from collections.abc import Sequence

from flows.decide.codes import CODES, Outcome
from flows.decide.rulebook import Rule
from schemas.audit import DECISION_COLUMNS, SCHEMA_VERSION

RULES_BEGIN = (
    "<!-- rules: generated from flows/decide/rules.py by `make docs`; a test checks it -->"
)
RULES_END = "<!-- /rules -->"
# The listed ids, outcomes, reasons and descriptions are the same for every program (only the
# program's own eligibility conditions differ, shown by `jiwon programs show`).
DOCS_PROGRAM = "paju-livelihood-2025"

OUTCOME_TEXT: dict[str, tuple[str, str]] = {
    "PAID": ("이번 실행에서 지급", "paid by this run"),
    "ALREADY_PAID": ("이전 실행에서 이미 지급", "paid by an earlier committed run"),
    "INELIGIBLE": ("지원 대상 아님", "fails the program's rules, or applied outside its window"),
    "UNENROLLED": ("대상이나 유효한 신청 없음", "eligible, no valid application yet"),
    "DUPLICATE_RECORD": ("중복 주민등록 행", "another row with the same RRN was kept"),
    "DUPLICATE_APPLICATION": ("중복 신청", "another application for the same beneficiary was kept"),
    "UNMATCHED": ("주민등록 자료에 없는 대상자", "beneficiary not among valid registry rows"),
    "PROXY_NOT_ALLOWED": (
        "허용되지 않는 대리 신청",
        "applicant may not apply for this beneficiary",
    ),
    "HELD_FOR_REVIEW": ("담당자 확인 필요", "needs a person's decision"),
    "QUARANTINED": ("행 검사 실패로 격리", "failed a row check"),
}


def codes_markdown() -> str:
    """Return docs/codes.md: every outcome, reason and warning code in Korean and English."""
    lines = [
        "# Outcome, reason and warning codes",
        "",
        "Generated from `flows/decide/codes.py` by `jiwon docs codes`; a test checks they agree.",
        "Codes are stable: never reused for a different meaning.",
        "",
        "## Outcomes",
        "",
        "| outcome | 한국어 | English |",
        "|---|---|---|",
    ]
    lines += [
        f"| `{o.value}` | {OUTCOME_TEXT[o.value][0]} | {OUTCOME_TEXT[o.value][1]} |"
        for o in Outcome
    ]
    for kind, title in (("reason", "Reason codes"), ("warning", "Warning codes")):
        lines += [
            "",
            f"## {title}",
            "",
            "| code | 한국어 | English | what to do |",
            "|---|---|---|---|",
        ]
        lines += [f"| `{c.code}` | {c.ko} | {c.en} | {c.action} |" for c in CODES if c.kind == kind]
    return "\n".join(lines) + "\n"


def audit_markdown() -> str:
    """Return docs/audit.md: the decision record columns, from the pandera audit schema."""
    lines = [
        "# Audit trail columns",
        "",
        "Generated from `schemas/audit.py` by `jiwon docs audit`; a test checks they agree.",
        f"Schema version {SCHEMA_VERSION} (Parquet key-value metadata `jiwon.schema_version`).",
        "",
        "Decision records: `OUT/audit/decisions/program=<p>/run_month=<YYYY-MM>/run_id=<id>/"
        "*.parquet` (`part-00000.parquet`, `part-00001.parquet`...: one per bucket the run",
        "decided in; earlier versions wrote one `decisions.parquet`), one row per input row of",
        "every file a run processed: read the folder, not a file name.",
        "`program`, `run_month` and `run_id` are hive partition columns: they live in the folder",
        "names (and in the file's metadata), and polars (`hive_partitioning=True`), DuckDB",
        "(`hive_partitioning=true`) and pyarrow (`pq.read_table(folder)`) add them back.",
        "",
        "**Every input row is accounted for, once per run.** For every registry and enrollment",
        "file in a committed run's record (`inputs`): `rows` = the run's decision records with",
        "that `source_file` + `rows_closed`. `rows_closed` counts the applications of a file an",
        "earlier committed run already closed (an outcome other than `UNMATCHED` or",
        "`HELD_FOR_REVIEW`): they are skipped, with no decision record, because their decision",
        "stands. An application that waits (`UNMATCHED`, `HELD_FOR_REVIEW`) is decided again by",
        "every later run that reads its file, so one application can have several decision",
        "records, one per run, the latest being its state (docs/decisions/0012). `skipped_by_run`",
        "names the first run that read a file every row of which was closed. `jiwon audit verify`",
        "checks the equation for every committed run.",
        "",
        "| column | type | English | 한국어 | nullable |",
        "|---|---|---|---|---|",
    ]
    for name, column in DECISION_COLUMNS.items():
        en, ko = (column.description or " | ").split(" | ", 1)
        lines.append(
            f"| `{name}` | {column.dtype} | {en} | {ko} | {'yes' if column.nullable else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def _ticked(values: Sequence[str]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def _rule_rows(rules: Sequence[Rule], first: int = 1) -> list[str]:
    """Return one table row per rule, numbered from `first`; nested rules as `12a`, `12b`...

    A rule that writes several ids (the eligibility rules) nests rules each program has its own
    of; those are left to `jiwon programs show`.
    """
    rows = []
    for n, rule in enumerate(rules, start=first):
        ko, en = rule.text
        rows.append(
            f"| {n} | {_ticked(rule.ids)} | {_ticked(rule.outcomes)} | {_ticked(rule.codes)} "
            f"| {en} / {ko} |"
        )
        nested = rule.within if len(rule.ids) == 1 else ()
        for letter, inner in zip("abcdefghijklmnopqrstuvwxyz", nested, strict=False):
            ko, en = inner.text
            rows.append(
                f"| {n}{letter} | ↳ | {_ticked(inner.outcomes) or 'none: next rule'} "
                f"| {_ticked(inner.codes)} | {en} / {ko} |"
            )
    return rows


def rules_markdown() -> str:
    """Return the rule table of docs/programs.md: flows/decide/rules.py's rules in order."""
    from flows.decide.rules import describing, enrollment_rules, registry_rules, settlement_rules
    from rules.program import load_program

    ctx = describing(load_program(DOCS_PROGRAM))
    applications = enrollment_rules(ctx)
    header = ["| # | rule_id | outcome | reasons | decides |", "|---|---|---|---|---|"]
    lines = [
        RULES_BEGIN,
        "",
        "Registry rows (주민등록 행):",
        "",
        *header,
        *_rule_rows(registry_rules(ctx)),
        "",
        f"Applications (신청); rules {len(applications) + 1}- decide the valid applications left:",
        "",
        *header,
        *_rule_rows(applications),
        *_rule_rows(settlement_rules(), first=len(applications) + 1),
        "",
        RULES_END,
    ]
    return "\n".join(lines)


def programs_guide(guide: str) -> str:
    """Return docs/programs.md (`guide`) with its rule table regenerated between the markers."""
    start, end = guide.index(RULES_BEGIN), guide.index(RULES_END) + len(RULES_END)
    return guide[:start] + rules_markdown() + guide[end:]
