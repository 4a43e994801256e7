"""Rule tests as data: a pytest plugin that runs the YAML cases of every program.

Cases live next to the program they test, in `<programs>/<id>/tests/*.yaml`; each case names a
behaviour as a sentence, lists a few registry rows, applications and welfare rows by person, and
the outcome expected for each person. A case runs the real data path on files written to a
temporary folder: ingest, pandera validation, eligibility, decisions (no Prefect). So a new
program ships its own tests without Python; `rules/conftest.py` and `tests/conftest.py` register
the collector for their folders.

File format (docs/programs.md explains it with examples):

    cases:
      - name: a resident registered on the reference date is paid
        registry:
          - {person: kim, born: 1980-01-01, registered_on: 2024-12-26}
        enrollments:
          - {person: kim, applied_on: 2025-01-21}
        expect:
          kim: {outcome: PAID, amount: 100000, rule: payment.paid}
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from flows.checks import validate
from flows.decide.rules import RunContext, decide
from flows.inputs.ingest import empty_delivery, list_delivery, read_delivery
from flows.inputs.welfare import read_welfare
from rules.program import Program, load_program
from rules.reference import bank_codes, vocabulary
from schemas.enrollment import enrollment_schema
from schemas.registry import registry_schema

KEY = "rule-case-key-0123456789"
WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
REGISTRY_KEYS = {
    "person",
    "household",
    "relation",
    "born",
    "sex",
    "registered_on",
    "status",
    "nationality",
    "visa_type",
    "admin_code",
    "name",
}
ENROLLMENT_KEYS = {"person", "applicant", "applied_on", "applied_at", "channel", "payout"}
EXPECT_KEYS = {"outcome", "amount", "reasons", "rule"}
CASE_KEYS = {
    "name",
    "as_of",
    "registry",
    "enrollments",
    "welfare",
    "expect",
    "expect_applications",
}


class CaseError(Exception):
    """A malformed case file: names the file, the case and what is wrong."""


def rrn_for(born: dt.date, index: int, foreign: bool, female: bool) -> str:
    """Return an old-scheme RRN with a valid check digit for a test person."""
    century = 0 if born.year < 2000 else 2
    s = (5 if foreign else 1) + century + (1 if female else 0)
    body = f"{born:%y%m%d}{s}{index:05d}"
    base = 13 if foreign else 11
    check = (base - sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11) % 10
    return body + str(check)


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _check_keys(row: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(row) - allowed
    if unknown:
        raise CaseError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def registry_frame(
    rows: list[dict[str, Any]], program: Program, where: str, as_of: dt.date
) -> pl.DataFrame:
    """Return registry extract rows (strings) for the case's people, with defaults filled in."""
    admin = sorted(program.admin_codes())[0] if program.city else "4148051000"
    out = []
    for i, row in enumerate(rows, start=1):
        _check_keys(row, REGISTRY_KEYS, f"{where}: registry row {i}")
        born = _date(row.get("born", "1980-01-01"))
        foreign = row.get("nationality", "내국인") == "외국인"
        out.append(
            {
                "rrn": rrn_for(born, i, foreign, row.get("sex", "m") == "f"),
                "name": row.get("name", f"홍길{i}"),
                "birth_date": born.isoformat(),
                "household_id": str(row.get("household", 1000 + i)),
                "relation": row.get("relation", "본인"),
                "admin_code": str(row.get("admin_code", admin)),
                "address": "경기도 파주시 시청로 1",
                "registered_on": _date(row.get("registered_on", "2000-01-01")).isoformat(),
                "status": row.get("status", "거주"),
                "nationality": row.get("nationality", "내국인"),
                "visa_type": row.get("visa_type"),
                "status_changed_on": None,
                "as_of": as_of.isoformat(),
            }
        )
    return pl.DataFrame(out, schema={k: pl.String for k in out[0]} if out else None)


def enrollment_frame(rows: list[dict[str, Any]], rrns: dict[str, str], where: str) -> pl.DataFrame:
    """Return enrollment extract rows for the case's applications."""
    out = []
    for i, row in enumerate(rows, start=1):
        _check_keys(row, ENROLLMENT_KEYS, f"{where}: enrollment row {i}")
        person = row["person"]
        applicant = row.get("applicant", person)
        at = row.get("applied_at") or f"{_date(row['applied_on']).isoformat()}T10:00:00"
        out.append(
            {
                "application_id": f"APP{i:05d}",
                "applied_at": str(at),
                "rrn": rrns[person],
                "applicant_rrn": rrns[applicant],
                "channel": row.get("channel", "online"),
                "payout": row.get("payout", "local_currency"),
                "card_id": f"{9400000000000000 + i}",
                "bank_code": None,
                "account_no": None,
                "account_holder": None,
            }
        )
    columns = ["application_id", "applied_at", "rrn", "applicant_rrn", "channel", "payout"]
    columns += ["card_id", "bank_code", "account_no", "account_holder"]
    return pl.DataFrame(out, schema=dict.fromkeys(columns, pl.String))


def validate_case(case: dict[str, Any], where: str) -> None:
    """Raise CaseError for unknown keys, a person listed twice or a reference to nobody."""
    _check_keys(case, CASE_KEYS, where)
    people = [r.get("person") for r in case.get("registry", [])]
    if None in people or len(set(people)) != len(people):
        raise CaseError(f"{where}: every registry row needs a person, listed once")
    for row in case.get("enrollments", []) + case.get("welfare", []):
        for who in (row.get("person"), row.get("applicant", row.get("person"))):
            if who not in people:
                raise CaseError(f"{where}: person {who!r} is not in the case's registry rows")


def merge_cases(cases: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Return one case holding several, people renamed `<n>:<person>`, households apart.

    Cases with the same snapshot date run together (a run per case costs more than its rows);
    their people and households cannot meet, so each case decides exactly as it would alone.
    """
    merged: dict[str, list[dict[str, Any]]] = {"registry": [], "enrollments": [], "welfare": []}
    for n, case in cases:
        for i, row in enumerate(case.get("registry", []), start=1):
            household = int(row.get("household", 1000 + i)) + 100_000 * n
            merged["registry"].append(
                row | {"person": f"{n}:{row['person']}", "household": household}
            )
        for kind in ("enrollments", "welfare"):
            for row in case.get(kind, []):
                renamed = {"person": f"{n}:{row['person']}"}
                if "applicant" in row:
                    renamed["applicant"] = f"{n}:{row['applicant']}"
                merged[kind].append(row | renamed)
    first = cases[0][1]
    return {**merged, **({"as_of": first["as_of"]} if "as_of" in first else {})}


def run_case(case: dict[str, Any], program: Program, where: str) -> dict[str, pl.DataFrame]:
    """Run one case through ingest, validation and decisions; return registry/enrollment rows."""
    validate_case(case, where)
    people = [r["person"] for r in case.get("registry", [])]
    as_of = _date(case.get("as_of", program.reference_date))
    registry = registry_frame(case.get("registry", []), program, where, as_of)
    rrns = dict(zip(people, registry["rrn"].to_list(), strict=True))
    enrollment = enrollment_frame(case.get("enrollments", []), rrns, where)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for kind, frame in (("registry", registry), ("enrollment", enrollment)):
            (folder / kind).mkdir()
            frame.write_csv(folder / kind / f"{kind}.csv")
        welfare = None
        if program.needs_welfare_extract:
            (folder / "welfare").mkdir()
            pl.DataFrame(
                {
                    "rrn": [rrns[w["person"]] for w in case.get("welfare", [])],
                    "welfare_status": [w["status"] for w in case.get("welfare", [])],
                    "as_of": program.reference_date.isoformat(),
                },
                schema=dict.fromkeys(["rrn", "welfare_status", "as_of"], pl.String),
            ).write_csv(folder / "welfare/welfare.csv")
            welfare, _ = read_welfare(folder / "welfare", vocabulary(), program.reference_date)
        reg = read_delivery(list_delivery(folder / "registry", "registry"), "registry")
        enr = (
            read_delivery(list_delivery(folder / "enrollment", "enrollment"), "enrollment")
            if enrollment.height
            else empty_delivery("enrollment")
        )
    schema = registry_schema(program.admin_codes(), vocabulary(), program.admin_code_prefixes())
    reg_checked, _ = validate.validate_registry(
        reg, schema, vocabulary(), program.reference_date, program.as_of_must_equal_reference_date
    )
    enr_checked, _ = validate.validate_enrollments(
        enr, enrollment_schema(bank_codes(), vocabulary())
    )
    ctx = RunContext(
        "case",
        program,
        "2025-01",
        dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        KEY,
        default_welfare_status=vocabulary()["welfare_status_default"],
    )
    no_one = pl.DataFrame(schema={"person_key": pl.String})
    decisions = decide(reg_checked, enr_checked, no_one, ctx, welfare)
    by_person = {v: k for k, v in rrns.items()}
    return {
        "registry": decisions.registry.with_columns(
            person=pl.col("rrn").replace_strict(by_person, default=None)
        ),
        "enrollment": decisions.enrollment.with_columns(
            person=pl.col("rrn").replace_strict(by_person, default=None)
        ),
    }


def check(rows: pl.DataFrame, person: str, expected: dict[str, Any], where: str) -> None:
    """Assert one person's row against the case's expectation, saying what differs."""
    _check_keys(expected, EXPECT_KEYS, f"{where}: expect {person}")
    mine = rows.filter(pl.col("person") == person)
    assert mine.height == 1, f"{where}: expected one row for {person}, found {mine.height}"
    row = mine.row(0, named=True)
    got = {
        "outcome": row["outcome"],
        "amount": row["amount_krw"],
        "reasons": list(row["reason_codes"]),
        "rule": row["rule_id"],
    }
    want = {k: expected[k] for k in EXPECT_KEYS if k in expected}
    assert {k: got[k] for k in want} == want, f"{where}: {person}: got {got}"


class RuleCaseFile(pytest.File):
    """A YAML file of rule cases for the program whose folder holds it."""

    def collect(self) -> Iterator[pytest.Item]:
        data = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and set(data) == {"approval_cases"}:
            yield from self.approval_cases(data["approval_cases"])
            return
        if not isinstance(data, dict) or set(data) != {"cases"}:
            raise CaseError(
                f"{self.path}: expected a mapping with the single key `cases` (or `approval_cases`)"
            )
        self.cases: list[dict[str, Any]] = data["cases"]
        self.decided: dict[str, dict[str, pl.DataFrame]] = {}
        names = [c.get("name") for c in self.cases]
        for n, case in enumerate(self.cases):
            if not case.get("name") or names.count(case["name"]) > 1:
                raise CaseError(f"{self.path}: every case needs a unique sentence as name")
            yield RuleCase.from_parent(self, name=case["name"], case=case, number=n)

    def program(self) -> Program:
        return load_program(self.path.parents[1].name, self.path.parents[2])

    def approval_cases(self, cases: list[dict[str, Any]]) -> Iterator[pytest.Item]:
        """Yield the release-approval cases: a run's total in won -> approvers it needs."""
        names = [c.get("name") for c in cases]
        for case in cases:
            if not case.get("name") or names.count(case["name"]) > 1:
                raise CaseError(f"{self.path}: every case needs a unique sentence as name")
            if set(case) != {"name", "run_total_krw", "approvers"}:
                raise CaseError(
                    f"{self.path}: {case['name']}: an approval case has exactly name, "
                    "run_total_krw and approvers"
                )
            yield ApprovalCase.from_parent(self, name=case["name"], case=case)

    def decisions_for(self, case: dict[str, Any]) -> dict[str, pl.DataFrame]:
        """Return the decisions of the batch of valid cases sharing this case's snapshot date."""
        key = str(case.get("as_of", ""))
        if key not in self.decided:
            batch = []
            for n, other in enumerate(self.cases):
                try:
                    validate_case(other, "")
                except CaseError:
                    continue  # that case fails on its own
                if str(other.get("as_of", "")) == key:
                    batch.append((n, other))
            self.decided[key] = run_case(merge_cases(batch), self.program(), self.path.name)
        return self.decided[key]


class RuleCase(pytest.Item):
    """One case: a sentence about a program's behaviour, checked on the real data path."""

    def __init__(self, *, case: dict[str, Any], number: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.number = number

    def runtest(self) -> None:
        where = f"{self.path.name}: {self.name}"
        validate_case(self.case, where)
        assert isinstance(self.parent, RuleCaseFile)
        decided = self.parent.decisions_for(self.case)
        for person, expected in (self.case.get("expect") or {}).items():
            check(decided["registry"], f"{self.number}:{person}", expected, where)
        for person, expected in (self.case.get("expect_applications") or {}).items():
            check(decided["enrollment"], f"{self.number}:{person}", expected, where)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, AssertionError | CaseError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"rule case: {self.name}"


class ApprovalCase(pytest.Item):
    """One release-approval case: how many distinct approvers a run of a total needs."""

    def __init__(self, *, case: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        assert isinstance(self.parent, RuleCaseFile)
        approval = self.parent.program().approval
        got = approval.approvers_needed(int(self.case["run_total_krw"]))
        assert got == self.case["approvers"], (
            f"{self.path.name}: {self.name}: a run of {self.case['run_total_krw']:,} won needs "
            f"{got} approver(s), the case expects {self.case['approvers']}"
        )

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"approval case: {self.name}"


def collect_rule_cases(file_path: Path, parent: pytest.Collector) -> RuleCaseFile | None:
    """Collect `<programs>/<id>/tests/*.yaml` when `<id>/program.yaml` exists beside it."""
    if (
        file_path.suffix == ".yaml"
        and file_path.parent.name == "tests"
        and (file_path.parents[1] / "program.yaml").is_file()
    ):
        return RuleCaseFile.from_parent(parent, path=file_path)
    return None
