"""Load a program file from `rules/programs/<id>/program.yaml` strictly.

Unknown keys, duplicate keys and bad dates are errors that name the file and the key. The loader
only describes a program; `flows/decide/eligibility.py` turns it into polars expressions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from flows.i18n import _

PROGRAMS_DIR = Path(__file__).parent / "programs"
CITIES_DIR = Path(__file__).parent / "cities"


class ProgramError(ValueError):
    """A program file that cannot be used; the message names the file and what is wrong."""


def _iso_day(value: Any) -> dt.date:
    """Accept only `YYYY-MM-DD` text (pydantic alone would read 20241226 as a Unix time)."""
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or len(value) != 10 or value[4] != "-" or value[7] != "-":
        raise ValueError(f"write dates as YYYY-MM-DD, not {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a real date") from None


# A day written YYYY-MM-DD; money in whole won (an integer in the file: 100000.0 is refused).
Day = Annotated[dt.date, BeforeValidator(_iso_day)]

# What a real program can pay, with room to spare (docs/programs.md, "Amount limits"): the largest
# Korean transfer per person is a few million won (birth grants), the largest programme ever paid
# 14.3 trillion won (2020), and the whole national budget is about 670 trillion won. With these
# bounds no sum of a run's payments can leave int64 (1e8 won x 1e9 rows < 9.2e18).
MAX_PAYMENT_KRW = 100_000_000  # 1억 원 to one person for one instalment, base and add-ons together
MAX_BUDGET_KRW = 100_000_000_000_000  # 100조 원
Won = Annotated[int, Field(strict=True, ge=0, le=MAX_PAYMENT_KRW)]
BudgetWon = Annotated[int, Field(strict=True, ge=0, le=MAX_BUDGET_KRW)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    ko: str
    en: str


class Window(_Strict):
    start: Day
    end: Day

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")
        return self


# Attributes a condition or an amount may read, and their kind. `flows/decide/attributes.py`
# computes each from the registry row (and the welfare extract); a test checks the two lists agree.
ATTRIBUTES: dict[str, Literal["text", "number", "date"]] = {
    "status": "text",
    "nationality": "text",
    "visa_type": "text",
    "relation": "text",
    "admin_code": "text",
    "sido_code": "text",
    "sigungu_code": "text",
    "welfare_status": "text",
    "age": "number",
    "birth_order": "number",
    "household_size": "number",
    "birth_date": "date",
    "registered_on": "date",
}
# Counted from the eligible members of a household, so eligibility cannot depend on them.
HOUSEHOLD_ATTRIBUTES = frozenset({"household_size"})
LISTS_DIR = Path(__file__).parent / "lists"


class Population(_Strict):
    id: str
    title: Text
    nationality: Literal["내국인", "외국인"]
    visa_types: tuple[str, ...] | None = None
    window: Window


TESTS = ("one_of", "none_of", "one_of_list", "at_least", "at_most", "on_or_after", "on_or_before")


class Condition(_Strict):
    """A test of one attribute: exactly one of the comparisons below."""

    attribute: str
    one_of: tuple[str, ...] | None = None
    none_of: tuple[str, ...] | None = None
    one_of_list: str | None = None  # rules/lists/<name>.csv, column `code`
    at_least: int | None = None
    at_most: int | None = None
    on_or_after: Day | None = None
    on_or_before: Day | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        if self.attribute not in ATTRIBUTES:
            known = ", ".join(ATTRIBUTES)
            raise ValueError(f"unknown attribute {self.attribute!r}; known: {known}")
        tests = {k: getattr(self, k) for k in TESTS if getattr(self, k) is not None}
        if len(tests) != 1:
            raise ValueError(
                "give exactly one of one_of, none_of, one_of_list, at_least, at_most, "
                f"on_or_after, on_or_before (found {', '.join(tests) or 'none'})"
            )
        (test,) = tests
        kind = ATTRIBUTES[self.attribute]
        wanted = {
            "one_of": "text",
            "none_of": "text",
            "one_of_list": "text",
            "at_least": "number",
            "at_most": "number",
            "on_or_after": "date",
            "on_or_before": "date",
        }[test]
        if kind != wanted:
            raise ValueError(f"{test} needs a {wanted} attribute; {self.attribute} is a {kind}")
        if self.one_of_list is not None:
            list_codes(self.one_of_list)  # fails early, naming the missing file
        return self

    def values(self) -> tuple[str, ...]:
        """Return the text values a one_of / none_of / one_of_list test compares with."""
        if self.one_of_list is not None:
            return tuple(sorted(list_codes(self.one_of_list)))
        return self.one_of or self.none_of or ()


class EligibilityCondition(Condition):
    """A program-specific eligibility rule; a row failing it is INELIGIBLE with its id."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: Text

    @model_validator(mode="after")
    def _not_household(self) -> EligibilityCondition:
        if self.attribute in HOUSEHOLD_ATTRIBUTES:
            raise ValueError(
                f"{self.attribute} is counted from eligible members and cannot decide eligibility"
            )
        return self


class Eligibility(_Strict):
    statuses: tuple[str, ...]
    registered_on_or_before_reference_date: bool = True
    conditions: tuple[EligibilityCondition, ...] = ()


class DatedValue(_Strict):
    """The amount in force from `effective_from`: one of krw (flat), tiers or by."""

    effective_from: Day
    reference: str = Field(min_length=1)
    krw: Won | None = None
    tiers: dict[int, Won] | None = None  # lowest attribute value -> won
    by: dict[str, Won] | None = None  # attribute value -> won


def _in_force(values: tuple[DatedValue, ...], day: dt.date) -> DatedValue:
    in_force = [v for v in values if v.effective_from <= day]
    if not in_force:
        raise ProgramError(f"no amount is in force on {day}")
    return max(in_force, key=lambda v: v.effective_from)


class AddOn(_Strict):
    """An amount added to the base where a condition holds (e.g. a regional top-up)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: Text
    when: Condition
    replaces: tuple[str, ...] = ()  # add-ons this one stands in for where both apply
    values: tuple[DatedValue, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _flat(self) -> AddOn:
        for v in self.values:
            if v.krw is None or v.tiers is not None or v.by is not None:
                raise ValueError(f"add-on {self.id}: each value needs krw only")
        return self

    def on(self, day: dt.date) -> int:
        """Return the add-on in force on `day`."""
        krw = _in_force(self.values, day).krw
        assert krw is not None  # checked by _flat
        return krw


class Amount(_Strict):
    """What one payee gets: a base (flat, tiered or by value) plus add-ons, all dated."""

    kind: Literal["flat", "tiered", "by_value"]
    attribute: str | None = None
    values: tuple[DatedValue, ...] = Field(min_length=1)
    add_ons: tuple[AddOn, ...] = ()

    @model_validator(mode="after")
    def _shape(self) -> Amount:
        need = {"flat": "krw", "tiered": "tiers", "by_value": "by"}[self.kind]
        for v in self.values:
            present = [k for k in ("krw", "tiers", "by") if getattr(v, k) is not None]
            if present != [need]:
                raise ValueError(
                    f"a {self.kind} amount needs `{need}` on every value "
                    f"(value from {v.effective_from} has {', '.join(present) or 'nothing'})"
                )
            if self.kind == "tiered" and v.tiers is not None and 1 not in v.tiers:
                raise ValueError(f"tiers from {v.effective_from} must start at 1")
        if self.kind == "flat":
            if self.attribute is not None:
                raise ValueError("a flat amount has no attribute")
        else:
            wanted = "number" if self.kind == "tiered" else "text"
            if self.attribute is None or ATTRIBUTES.get(self.attribute) != wanted:
                names = [a for a, k in ATTRIBUTES.items() if k == wanted]
                raise ValueError(f"a {self.kind} amount needs attribute: one of {names}")
        ids = [a.id for a in self.add_ons]
        for a in self.add_ons:
            for r in a.replaces:
                if r not in ids or r == a.id:
                    raise ValueError(f"add-on {a.id} replaces unknown add-on {r!r}")
        return self

    def on(self, day: dt.date) -> int:
        """Return the flat amount in force on `day` (the latest value effective on or before it)."""
        value = _in_force(self.values, day)
        if value.krw is None:
            raise ProgramError(f"the amount is {self.kind} by {self.attribute}, not one number")
        return value.krw

    def value_on(self, day: dt.date) -> DatedValue:
        """Return the base value in force on `day`."""
        return _in_force(self.values, day)


class Due(_Strict):
    """When an instalment falls due: at application, or months after an earlier instalment."""

    event: Literal["application", "instalment"]
    instalment: int | None = None
    months: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _pair(self) -> Due:
        if (self.event == "instalment") != (self.instalment is not None):
            raise ValueError("event: instalment needs `instalment:` (and application must not)")
        return self


class Instalment(_Strict):
    number: int = Field(ge=1)
    title: Text
    due: Due
    amount: Amount
    # Checks a later run makes when the instalment falls due (issue 5 runs instalments >= 2).
    requires: tuple[Literal["registered_in_city", "same_household_as_applicant"], ...] = ()

    @model_validator(mode="after")
    def _bounded(self) -> Instalment:
        add_ons = sum(max(v.krw or 0 for v in a.values) for a in self.amount.add_ons)
        for v in self.amount.values:
            base = max([v.krw or 0, *(v.tiers or {}).values(), *(v.by or {}).values()])
            if base + add_ons > MAX_PAYMENT_KRW:
                raise ValueError(
                    f"instalment {self.number} can pay {base + add_ons:,} won to one person "
                    f"(value from {v.effective_from} with every add-on), more than the "
                    f"{MAX_PAYMENT_KRW:,} won a real program pays: check the number of zeros"
                )
        return self


class AdminCodes(_Strict):
    """Which administrative codes a registry row may carry: a city's list, or the nation's."""

    city: str | None = None  # rules/cities/<city>.csv
    nationwide: bool = False  # any 10-digit code whose 시도 prefix is in rules/lists/sido.csv

    @model_validator(mode="after")
    def _one(self) -> AdminCodes:
        if (self.city is None) == (not self.nationwide):
            raise ValueError("give either city: <name> or nationwide: true")
        return self


class Approval(_Strict):
    """Who must approve a committed run before its payment files are released (issue 18).

    Every run needs one approver who is not its operator; a run paying more than
    `two_approvers_above_krw` won in total needs two distinct approvers (lifecycle.md).
    """

    two_approvers_above_krw: BudgetWon | None = None

    def approvers_needed(self, total_krw: int) -> int:
        """Return how many distinct approvers a run paying `total_krw` won needs."""
        limit = self.two_approvers_above_krw
        return 2 if limit is not None and total_krw > limit else 1


class Program(_Strict):
    id: str
    title: Text
    summary: Text
    legal_reference: Text
    admin_codes_from: AdminCodes
    reference_date: Day
    as_of_must_equal_reference_date: bool = True
    unit: Literal["person", "household"]
    quarantine_threshold: float = Field(default=0.01, ge=0, le=1)
    max_records_per_file: int = Field(ge=1)
    # days a released payment may wait for its bank or card result before it is overdue (15)
    result_due_days: int = Field(default=14, ge=1)
    budget_krw: BudgetWon
    approval: Approval = Field(default_factory=Approval)
    payout_channels: tuple[Literal["local_currency", "bank"], ...] = Field(min_length=1)
    needs_welfare_extract: bool = False
    eligibility: Eligibility
    populations: tuple[Population, ...] = Field(min_length=1)
    instalments: tuple[Instalment, ...] = Field(min_length=1)

    # filled in by the loader, not by the file
    sha256: str = ""
    source: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Program:
        numbers = [i.number for i in self.instalments]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"instalments must be numbered 1, 2, ... in order (found {numbers})")
        if self.instalments[0].due.event != "application":
            raise ValueError("instalment 1 falls due on application (due: {event: application})")
        for i in self.instalments[1:]:
            if i.due.instalment is None or i.due.instalment >= i.number:
                raise ValueError(f"instalment {i.number} must fall due after an earlier one")
        ids = [p.id for p in self.populations]
        if len(set(ids)) != len(ids):
            raise ValueError(f"population ids repeat: {ids}")
        uses_welfare = any(a == "welfare_status" for a in self.attributes_used())
        if uses_welfare and not self.needs_welfare_extract:
            raise ValueError("welfare_status is used: set needs_welfare_extract: true")
        return self

    @property
    def city(self) -> str | None:
        """Return the city whose code list the registry is checked against (None: nationwide)."""
        return self.admin_codes_from.city

    @property
    def amount(self) -> Amount:
        """Return the first instalment's amount."""
        return self.instalments[0].amount

    @property
    def amount_krw(self) -> int:
        """Return the flat first-instalment amount in force on the reference date."""
        return self.amount.on(self.reference_date)

    def attributes_used(self) -> list[str]:
        """Return every attribute a condition or amount of this program reads."""
        used = [c.attribute for c in self.eligibility.conditions]
        for i in self.instalments:
            if i.amount.attribute:
                used.append(i.amount.attribute)
            used += [a.when.attribute for a in i.amount.add_ons]
        return used

    def admin_codes(self) -> frozenset[str]:
        """Return the city's administrative codes (empty for a nationwide program)."""
        return load_admin_codes(self.city) if self.city else frozenset()

    def admin_code_prefixes(self) -> frozenset[str]:
        """Return the 시도 codes a nationwide program accepts (empty for a city program)."""
        return list_codes("sido") if self.admin_codes_from.nationwide else frozenset()

    def parameters(self) -> dict[str, Any]:
        """Return the parameter values in force on the reference date (for the run record)."""
        day = self.reference_date
        return {
            "reference_date": str(day),
            "unit": self.unit,
            "budget_krw": self.budget_krw,
            "approval": self.approval.model_dump(mode="json"),
            "quarantine_threshold": self.quarantine_threshold,
            "max_records_per_file": self.max_records_per_file,
            "instalments": [
                {
                    "number": i.number,
                    "amount": i.amount.value_on(day).model_dump(mode="json", exclude_none=True)
                    | {"kind": i.amount.kind, "attribute": i.amount.attribute},
                    "add_ons": {a.id: a.on(day) for a in i.amount.add_ons},
                }
                for i in self.instalments
            ],
            "windows": {p.id: [str(p.window.start), str(p.window.end)] for p in self.populations},
        }


def list_codes(name: str) -> frozenset[str]:
    """Return the `code` column of `rules/lists/<name>.csv` (a reference list kept as data)."""
    path = LISTS_DIR / f"{name}.csv"
    if not path.is_file():
        raise ValueError(f"no list {name!r} at rules/lists/{name}.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    if "code" not in header:
        raise ValueError(f"rules/lists/{name}.csv has no `code` column")
    at = header.index("code")
    return frozenset(line.split(",")[at] for line in lines[1:] if line.strip())


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys instead of keeping the last one silently."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ProgramError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
        seen.add(key)
    return loader.construct_mapping(node)


# Dates stay text for pydantic to parse, so a bad date is reported with its key.
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_program(text: bytes, source: str) -> Program:
    """Parse program YAML; raise ProgramError naming `source` and the offending key."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except ProgramError as e:
        raise ProgramError(f"{source}: {e}") from None
    except yaml.YAMLError as e:
        raise ProgramError(f"{source}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ProgramError(f"{source}: expected a mapping of program settings")
    data["source"] = source
    try:
        program = Program.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"]
        money = {"krw", "budget_krw", "tiers", "by"} & {str(p) for p in first["loc"]}
        if first["type"] == "less_than_equal" and money and isinstance(first["input"], int):
            limit = first["ctx"]["le"]
            message = (
                f"{first['input']:,} won is more than the {limit:,} won a real program pays "
                f"(docs/programs.md, amount limits): check the number of zeros"
            )
        raise ProgramError(f"{source}: {where}: {message}") from None
    return program.model_copy(update={"sha256": rule_set_sha256(text, program)})


def rule_files(program: Program) -> list[Path]:
    """Return the data files a program reads besides its own: its city list and named lists."""
    files = [CITIES_DIR / f"{program.city}.csv"] if program.city else [LISTS_DIR / "sido.csv"]
    conditions: list[Condition] = list(program.eligibility.conditions)
    for i in program.instalments:
        conditions += [a.when for a in i.amount.add_ons]
    files += [LISTS_DIR / f"{c.one_of_list}.csv" for c in conditions if c.one_of_list]
    return sorted(set(files))


def rule_set_sha256(text: bytes, program: Program) -> str:
    """Return the SHA-256 of the rule set: the program file, then each data file it reads."""
    digest = hashlib.sha256(text)
    for path in rule_files(program):
        if path.is_file():
            digest.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def load_program(program_id: str, programs_dir: Path = PROGRAMS_DIR) -> Program:
    """Load `programs_dir/<program_id>/program.yaml`."""
    path = programs_dir / program_id / "program.yaml"
    if not path.is_file():
        known = ", ".join(
            sorted(p.name for p in programs_dir.iterdir() if (p / "program.yaml").is_file())
        )
        raise ProgramError(
            _("unknown program {program_id!r}; known programs: {known}").format(
                program_id=program_id, known=known
            )
        )
    program = parse_program(path.read_bytes(), str(path))
    if program.id != program_id:
        raise ProgramError(f"{path}: id {program.id!r} does not match its folder {program_id!r}")
    return program


def load_admin_codes(city: str) -> frozenset[str]:
    """Return the administrative codes listed in `rules/cities/<city>.csv`."""
    import polars as pl

    path = CITIES_DIR / f"{city}.csv"
    if not path.is_file():
        raise ProgramError(f"no administrative code list for city {city!r} at {path}")
    frame = pl.read_csv(path, schema_overrides={"admin_code": pl.String})
    return frozenset(frame["admin_code"].to_list())


def list_programs(programs_dir: Path = PROGRAMS_DIR) -> list[Program]:
    """Load every program under `programs_dir`, sorted by id."""
    if not programs_dir.is_dir():
        raise ProgramError(_("no programs folder at {folder}").format(folder=programs_dir))
    ids = sorted(p.name for p in programs_dir.iterdir() if (p / "program.yaml").is_file())
    return [load_program(i, programs_dir) for i in ids]
