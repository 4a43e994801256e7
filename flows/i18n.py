"""Messages in the operator's language: Korean or English, through gettext catalogs.

Every line an operator reads is written as `_("English text with {name}")`, formatted after the
lookup (`.format(name=...)`), never an f-string inside `_()`. The catalog is
flows/locale/ko/LC_MESSAGES/jiwon.po (compiled to jiwon.mo, both committed; `make messages`
extracts, updates and compiles them). The language is the `--lang` option or `JIWON_LANG`, else
the locale (`LC_ALL`, `LC_MESSAGES`, `LANG`, `LANGUAGE`): Korean when it starts with `ko`,
English otherwise. Data (reason codes, outcomes, columns, the audit trail) never changes with it.
"""

from __future__ import annotations

import datetime as dt
import gettext
import os
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

LOCALEDIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "jiwon"
LANGUAGES = ("en", "ko")
_current: gettext.NullTranslations | None = None
_language = "en"


def language_from(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """Return "ko" or "en": `--lang X` / `--lang=X` in argv, else JIWON_LANG, else the locale."""
    args = list(argv or [])
    for i, arg in enumerate(args):
        if arg == "--lang" and i + 1 < len(args):
            return normalise(args[i + 1])
        if arg.startswith("--lang="):
            return normalise(arg.split("=", 1)[1])
    env = os.environ if environ is None else environ
    if env.get("JIWON_LANG"):
        return normalise(env["JIWON_LANG"])
    for name in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        if env.get(name):
            return normalise(env[name])
    return "en"


def normalise(value: str) -> str:
    """Return "ko" for a Korean language or locale name (ko, ko_KR.UTF-8, korean), else "en"."""
    return "ko" if value.strip().lower().startswith("ko") else "en"


def use(language: str) -> None:
    """Show every message from now on in `language` ("ko" or "en")."""
    global _current, _language
    _language = normalise(language)
    _current = gettext.translation(
        DOMAIN, localedir=str(LOCALEDIR), languages=[_language], fallback=True
    )


def language() -> str:
    """Return the language messages are shown in ("ko" or "en")."""
    if _current is None:
        use(language_from(None))
    return _language


def _translations() -> gettext.NullTranslations:
    if _current is None:
        use(language_from(None))
    assert _current is not None
    return _current


def _(message: str) -> str:
    """Return `message` (English, the catalog's msgid) in the operator's language."""
    return _translations().gettext(message)


def N_(message: str) -> str:
    """Mark `message` for the catalog and return it unchanged: translate it where it is shown."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    """Return the singular or plural form of a message for `n`, in the operator's language."""
    return _translations().ngettext(singular, plural, n)


def format_won(amount: int) -> str:
    """Return an amount of won for people: "100,000원" in Korean, "100,000 won" in English."""
    if isinstance(amount, float):
        raise TypeError("amounts are whole won: pass an int")
    return f"{int(amount):,}원" if language() == "ko" else f"{int(amount):,} won"


def format_date(day: dt.date | str) -> str:
    """Return a date for people: "2025년 3월 1일" in Korean, "2025-03-01" in English."""
    if isinstance(day, str):
        day = dt.date.fromisoformat(day[:10])
    if language() == "ko":
        return korean_date(day)
    return day.isoformat()


def korean_date(day: dt.date) -> str:
    """Return a date as Korean readers expect it: "2025년 3월 1일"."""
    return f"{day.year}년 {day.month}월 {day.day}일"


def format_month(month: object) -> str:
    """Return a run month ("2025-03") for people: "2025년 3월" in Korean, unchanged in English."""
    month = str(month)
    if language() == "ko" and len(month) == 7 and month[4] == "-":
        return f"{int(month[:4])}년 {int(month[5:])}월"
    return month


def ljust(text: str, width: int) -> str:
    """Return `text` padded with spaces to `width` terminal columns (Hangul takes two)."""
    wide = sum(unicodedata.east_asian_width(c) in ("W", "F") for c in text)
    return text + " " * max(0, width - len(text) - wide)


def pick(ko: str, en: str) -> str:
    """Return the data files' Korean or English text (titles, rule and code descriptions)."""
    return ko if language() == "ko" and ko else en


def rjust(text: str, width: int) -> str:
    """Return `text` right-aligned in `width` terminal columns (Hangul takes two)."""
    wide = sum(unicodedata.east_asian_width(c) in ("W", "F") for c in text)
    return " " * max(0, width - len(text) - wide) + text
