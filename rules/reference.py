"""Reference lists kept as data: vocabularies (vocabulary.yaml) and bank codes (banks.csv)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml

RULES_DIR = Path(__file__).parent


@cache
def vocabulary() -> dict[str, Any]:
    """Return the accepted value lists of rules/vocabulary.yaml."""
    with (RULES_DIR / "vocabulary.yaml").open(encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


@cache
def bank_codes() -> frozenset[str]:
    """Return the 3-digit bank codes of rules/banks.csv."""
    frame = pl.read_csv(RULES_DIR / "banks.csv", schema_overrides={"bank_code": pl.String})
    return frozenset(frame["bank_code"].to_list())
