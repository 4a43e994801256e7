"""Reference data a run reads besides its extracts: bank file layouts, payer account, districts.

Loaded here, at the edge, so that the packages that render (`pay/`, `report/`) take values and
touch no files.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import polars as pl
import yaml

from flows.pay.bankfile import (
    LAYOUT_SCHEMA,
    BankFileError,
    BankSettings,
    Field,
    Layout,
    check_layout,
)
from rules.program import CITIES_DIR

ROOT = Path(__file__).resolve().parents[2]
LAYOUTS_DIR = ROOT / "schemas" / "payment_layouts"
BANK_SETTINGS = ROOT / "rules" / "bank.yaml"


def load_layout(
    name: str, layouts_dir: Path = LAYOUTS_DIR, known: dict[str, set[str]] | None = None
) -> Layout:
    """Load and check `layouts_dir/<name>.csv` (`known`: its field names, see `check_layout`)."""
    path = layouts_dir / f"{name}.csv"
    if not path.is_file():
        raise BankFileError(f"no bank file layout {name!r} at {path}")
    try:
        frame = pl.read_csv(path, schema=LAYOUT_SCHEMA)
    except pl.exceptions.PolarsError as e:
        raise BankFileError(
            f"{path}: not a layout CSV with columns {', '.join(LAYOUT_SCHEMA)} "
            f"(start and length whole numbers): {str(e).splitlines()[0]}"
        ) from None
    fields = [
        Field(r["record"], r["field"], r["start"], r["length"], r["kind"])
        for r in frame.iter_rows(named=True)
    ]
    return Layout(name, tuple(fields), check_layout(fields, str(path), known))


@cache
def bank_settings(path: Path = BANK_SETTINGS) -> BankSettings:
    """Load rules/bank.yaml: the paying account and the layout name."""
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    payer = data.get("payer") if isinstance(data, dict) else None
    if not isinstance(payer, dict) or not isinstance(data.get("layout"), str):
        raise BankFileError(f"{path}: needs `payer` (name, bank_code, account_no) and `layout`")
    missing = [k for k in ("name", "bank_code", "account_no") if not payer.get(k)]
    if missing:
        raise BankFileError(f"{path}: payer lacks {', '.join(missing)}")
    account = str(payer["account_no"])
    if not re.fullmatch(r"\d{10,14}", account) or not re.fullmatch(
        r"\d{3}", str(payer["bank_code"])
    ):
        raise BankFileError(
            f"{path}: payer bank_code must be 3 digits and account_no 10-14 digits (no hyphens)"
        )
    return BankSettings(
        str(payer["name"]), str(payer["bank_code"]), account, load_layout(data["layout"])
    )


def district_names(city: str) -> dict[str, str]:
    """Return admin code -> Korean district name from rules/cities/<city>.csv (empty if absent)."""
    path = CITIES_DIR / f"{city}.csv"
    if not path.is_file():
        return {}
    frame = pl.read_csv(path, schema_overrides={"admin_code": pl.String})
    return dict(zip(frame["admin_code"], frame["name_ko"], strict=True))
