"""Reference docs are generated from the code; these tests fail when they drift apart."""

from __future__ import annotations

import re
from pathlib import Path

from flows.audit.attempts import IN_FLIGHT
from flows.decide.codes import BY_CODE, OUTCOMES
from flows.docgen import audit_markdown, codes_markdown, programs_guide

DOCS = Path(__file__).resolve().parents[1] / "docs"
FLOWS = Path(__file__).resolve().parents[1] / "flows"
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def test_codes_doc_matches_the_code() -> None:
    assert (DOCS / "codes.md").read_text(encoding="utf-8") == codes_markdown(), (
        "docs/codes.md is stale: run `make docs`"
    )


def test_audit_doc_matches_the_audit_schema() -> None:
    assert (DOCS / "audit.md").read_text(encoding="utf-8") == audit_markdown(), (
        "docs/audit.md is stale: run `make docs`"
    )


def test_every_code_the_pipeline_emits_is_documented() -> None:
    source = "\n".join(
        p.read_text(encoding="utf-8")
        for d in (FLOWS, SCHEMAS)
        for p in d.rglob("*.py")
        if p.name not in ("codes.py", "docgen.py")
    )
    used = set(re.findall(r'"([A-Z][A-Z0-9]+(?:_[A-Z0-9]+)+)"', source))
    used = {u for u in used if not u.startswith(("PREFECT_", "JIWON_", "POLARS_", "XDG_"))}
    audit_invariants = {
        "SOURCE_KIND",
        "AMOUNT_ONLY_WHEN_PAID",
        "PAYMENT_ID_WHEN_PAID",
        "RULE_ID_KNOWN",
    }
    audit_invariants |= {"ATTEMPT_WHEN_PAID", "REISSUE_ONLY_WHEN_PAID_AGAIN"}
    used -= set(OUTCOMES) | audit_invariants
    used -= {IN_FLIGHT}  # a result line's state (docs/payment-files.md), not a reason code
    # audit invariants, not codes
    used -= {"ACCOUNT_ONLY_WHEN_BANK", "ACCOUNT_LAST4_FORMAT", "CARD_ONLY_WHEN_LOCAL_CURRENCY"}
    assert used <= set(BY_CODE), sorted(used - set(BY_CODE))


def test_programs_guide_rule_table_matches_the_rules_decide_applies() -> None:
    guide = (DOCS / "programs.md").read_text(encoding="utf-8")
    assert programs_guide(guide) == guide, "docs/programs.md's rule table is stale: run `make docs`"
