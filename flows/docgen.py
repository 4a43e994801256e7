"""Generate the reference docs from the code, so they cannot drift: docs/codes.md, docs/audit.md."""

from __future__ import annotations

from flows.codes import CODES, Outcome
from schemas.audit import DECISION_COLUMNS, SCHEMA_VERSION

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
        "Generated from `flows/codes.py` by `jiwon docs codes`; a test checks they agree.",
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
        "*.parquet` (`decisions.parquet`, or `part-00000.parquet`... one per bucket in a",
        "partitioned run), one row per input row of every file a run processed: read the folder.",
        "`program`, `run_month` and `run_id` are hive partition columns: they live in the folder",
        "names (and in the file's metadata), and polars (`hive_partitioning=True`), DuckDB",
        "(`hive_partitioning=true`) and pyarrow (`pq.read_table(folder)`) add them back.",
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
