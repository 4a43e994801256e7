"""The shipped programs' rule cases cover both sides of every date the program names.

For each program: moving in on the reference date and the day after (when eligibility is fixed at
it), applying on the day before and the first day of every window, on its last day and the day
after, and both sides of every date condition. Tier thresholds are covered by the cases
themselves (see rules/programs/*/tests); this test keeps the date edges from being forgotten.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from rules.program import Program, list_programs

ONE_DAY = dt.timedelta(days=1)


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def case_dates(program: Program) -> dict[str, set[dt.date]]:
    """Return the dates the program's cases use, by what they are: registered, applied, born."""
    used: dict[str, set[dt.date]] = {"registered_on": set(), "applied": set(), "born": set()}
    for path in sorted((Path(program.source).parent / "tests").glob("*.yaml")):
        # approval cases (tests/approval.yaml) hold run totals, no dates
        for case in yaml.safe_load(path.read_text(encoding="utf-8")).get("cases", []):
            for row in case.get("registry", []):
                if "registered_on" in row:
                    used["registered_on"].add(_day(row["registered_on"]))
                if "born" in row:
                    used["born"].add(_day(row["born"]))
            for row in case.get("enrollments", []):
                at = row.get("applied_at") or row.get("applied_on")
                used["applied"].add(_day(at))
    return used


def required_dates(program: Program) -> dict[str, set[dt.date]]:
    """Return the dates on both sides of every edge the program names."""
    need: dict[str, set[dt.date]] = {"registered_on": set(), "applied": set(), "born": set()}
    if program.eligibility.registered_on_or_before_reference_date:
        need["registered_on"] |= {program.reference_date, program.reference_date + ONE_DAY}
    for p in program.populations:
        need["applied"] |= {p.window.start - ONE_DAY, p.window.start}
        need["applied"] |= {p.window.end, p.window.end + ONE_DAY}
    for c in program.eligibility.conditions:
        if c.attribute == "birth_date" and c.on_or_after is not None:
            need["born"] |= {c.on_or_after - ONE_DAY, c.on_or_after}
        if c.attribute == "birth_date" and c.on_or_before is not None:
            need["born"] |= {c.on_or_before, c.on_or_before + ONE_DAY}
    return need


@pytest.mark.parametrize("program", list_programs(), ids=lambda p: p.id)
def test_rule_cases_cover_both_sides_of_every_date_edge(program: Program) -> None:
    used, need = case_dates(program), required_dates(program)
    missing = {kind: sorted(need[kind] - used[kind]) for kind in need if need[kind] - used[kind]}
    assert not missing, f"{program.id}: no rule case uses {missing}"
