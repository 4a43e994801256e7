"""Load a program file from `rules/programs/<id>/program.yaml` strictly.

Unknown keys, duplicate keys and bad dates are errors that name the file and the key. The loader
only describes a program; `flows/eligibility.py` turns it into polars expressions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PROGRAMS_DIR = Path(__file__).parent / "programs"
CITIES_DIR = Path(__file__).parent / "cities"


class ProgramError(ValueError):
    """A program file that cannot be used; the message names the file and what is wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    ko: str
    en: str


class Window(_Strict):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")
        return self


class Population(_Strict):
    id: str
    title: Text
    nationality: Literal["내국인", "외국인"]
    visa_types: tuple[str, ...] | None = None
    window: Window


class Eligibility(_Strict):
    statuses: tuple[str, ...]
    registered_on_or_before_reference_date: bool = True


class DatedAmount(_Strict):
    effective_from: dt.date
    krw: int = Field(ge=0)
    reference: str


class Amount(_Strict):
    kind: Literal["flat"]
    values: tuple[DatedAmount, ...] = Field(min_length=1)

    def on(self, day: dt.date) -> int:
        """Return the amount in force on `day` (the latest value effective on or before it)."""
        in_force = [v for v in self.values if v.effective_from <= day]
        if not in_force:
            raise ProgramError(f"no amount is in force on {day}")
        return max(in_force, key=lambda v: v.effective_from).krw


class Instalment(_Strict):
    number: int = Field(ge=1)
    share: Literal["all"]


class Program(_Strict):
    id: str
    title: Text
    legal_reference: Text
    city: str
    reference_date: dt.date
    as_of_must_equal_reference_date: bool = True
    unit: Literal["person"]
    quarantine_threshold: float = Field(default=0.01, ge=0, le=1)
    max_records_per_file: int = Field(ge=1)
    budget_krw: int = Field(ge=0)
    payout_channels: tuple[Literal["local_currency", "bank"], ...] = Field(min_length=1)
    eligibility: Eligibility
    populations: tuple[Population, ...] = Field(min_length=1)
    amount: Amount
    instalments: tuple[Instalment, ...] = Field(min_length=1)

    # filled in by the loader, not by the file
    sha256: str = ""
    source: str = ""

    @property
    def amount_krw(self) -> int:
        """Return the per-person amount in force on the reference date."""
        return self.amount.on(self.reference_date)

    def admin_codes(self) -> frozenset[str]:
        """Return the city's administrative codes (rules/cities/<city>.csv)."""
        return load_admin_codes(self.city)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys instead of keeping the last one silently."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
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
    data["sha256"] = hashlib.sha256(text).hexdigest()
    data["source"] = source
    try:
        return Program.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProgramError(f"{source}: {where}: {first['msg']}") from None


def load_program(program_id: str, programs_dir: Path = PROGRAMS_DIR) -> Program:
    """Load `programs_dir/<program_id>/program.yaml`."""
    path = programs_dir / program_id / "program.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in programs_dir.iterdir() if p.is_dir()))
        raise ProgramError(f"unknown program {program_id!r}; known programs: {known}")
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
