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
from typing import Any

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
    # gettext's order; one string, not a list: tests/test_docs.py takes such quoted names for codes
    for name in "LC_ALL LC_MESSAGES LANG LANGUAGE".split():  # noqa: SIM905
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


# The messages of click and typer (help panels, usage errors) an operator sees around ours: they
# look them up with the stdlib's gettext, which `translate_click` points at this catalog.
CLICK_MESSAGES = [
    N_("Show this message and exit."),
    N_("Usage:"),
    N_("Options"),
    N_("Commands"),
    N_("Arguments"),
    N_("Error"),
    N_("Aborted."),
    N_("Aborted!"),
    N_("Try [blue]'{command_path} {help_option}'[/] for help."),
    N_("Try '{command} {option}' for help."),
    N_("Error: {message}"),
    N_("Missing option"),
    N_("Missing argument"),
    N_("Missing parameter"),
    N_("Missing parameter: {param_name}"),
    N_("Missing command."),
    N_("No such option {name!r}."),
    N_("No such command {name!r}."),
    N_("Invalid value: {message}"),
    N_("Invalid value for {param_hint}: {message}"),
    N_("{value!r} is not a valid {number_type}."),
    N_("{value!r} is not one of {choices}."),
    N_("default: {default}"),
    N_("env var: {var}"),
    N_("required"),
    N_("(deprecated) "),
    N_("[required]"),
    N_("[default: {}]"),
    N_("[env var: {}]"),
    N_("Missing {param_type} {param_hint}."),
    N_("No such option: {name}"),
    N_("(Possible options: {options})"),
    N_("option"),
    N_("argument"),
    N_("parameter"),
]
TYPER_PANELS = {  # typer.rich_utils' constants, lower case
    "arguments_panel_title": "Arguments",
    "options_panel_title": "Options",
    "commands_panel_title": "Commands",
    "errors_panel_title": "Error",
    "aborted_text": "Aborted.",
    "rich_help": "Try [blue]'{command_path} {help_option}'[/] for help.",
    "deprecated_string": "(deprecated) ",
    "required_long_string": "[required]",
    "default_string": "[default: {}]",
    "envvar_string": "[env var: {}]",
}


def translate_click() -> None:
    """Show click's and typer's own texts (help panels, usage errors) in the chosen language."""
    import importlib

    for name in ("core", "exceptions", "formatting", "parser", "types", "decorators"):
        module = importlib.import_module(f"click.{name}")
        if hasattr(module, "_"):
            module._ = _  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = ngettext  # type: ignore[attr-defined]
    panels = importlib.import_module("typer.rich_utils")
    for constant, english in TYPER_PANELS.items():
        setattr(panels, constant.upper(), _(english))
    _translate_typer_click(language() == "ko")


_TYPER_CLICK: dict[str, Any] = {}  # typer's own methods, kept to put back for English


def _translate_typer_click(korean: bool) -> None:
    """Word the usage errors and the help option of typer's own copy of click in Korean.

    typer (0.29) carries click inside it (typer._click) with its texts as f-strings, not
    gettext: its three common usage errors and the `--help` line are worded here instead.
    """
    from typer._click import core, exceptions, formatting

    if not _TYPER_CLICK:
        _TYPER_CLICK.update(
            missing=exceptions.MissingParameter.format_message,
            bad=exceptions.BadParameter.format_message,
            no_such=exceptions.NoSuchOption.format_message,
            help=core.Command.get_help_option,
            usage=formatting.HelpFormatter.write_usage,
        )
    if not korean:  # typer's own English, exactly as it words it
        formatting.HelpFormatter.write_usage = _TYPER_CLICK["usage"]  # type: ignore[method-assign]
        exceptions.MissingParameter.format_message = _TYPER_CLICK["missing"]  # type: ignore[method-assign]
        exceptions.BadParameter.format_message = _TYPER_CLICK["bad"]  # type: ignore[method-assign]
        exceptions.NoSuchOption.format_message = _TYPER_CLICK["no_such"]  # type: ignore[method-assign]
        core.Command.get_help_option = _TYPER_CLICK["help"]  # type: ignore[method-assign]
        return

    def missing(self: Any) -> str:
        hint = exceptions._join_param_hints(
            self.param_hint if self.param_hint is not None else self.param.get_error_hint()
        )
        kind = self.param_type or (self.param.param_type_name if self.param else "parameter")
        return _("Missing {param_type} {param_hint}.").format(
            param_type=_(str(kind)), param_hint=hint
        )

    def bad(self: Any) -> str:
        hint = self.param_hint if self.param_hint is not None else None
        if hint is None and self.param is not None:
            hint = self.param.get_error_hint()
        if hint is None:
            return _("Invalid value: {message}").format(message=self.message)
        return _("Invalid value for {param_hint}: {message}").format(
            param_hint=exceptions._join_param_hints(hint),
            message=self.message,
        )

    def no_such(self: Any) -> str:
        text = _("No such option: {name}").format(name=self.option_name)
        if self.possibilities:
            options = ", ".join(sorted(self.possibilities))
            text += " " + _("(Possible options: {options})").format(options=options)
        return text

    exceptions.MissingParameter.format_message = missing  # type: ignore[method-assign]
    exceptions.BadParameter.format_message = bad  # type: ignore[method-assign]
    exceptions.NoSuchOption.format_message = no_such  # type: ignore[method-assign]
    help_option = _TYPER_CLICK["help"]

    def translated_help(self: Any, ctx: Any) -> Any:
        option = help_option(self, ctx)
        if option is not None:
            option.help = _("Show this message and exit.")
        return option

    core.Command.get_help_option = translated_help  # type: ignore[method-assign]
    write_usage = _TYPER_CLICK["usage"]

    def translated_usage(self: Any, prog: str, args: str = "", prefix: str | None = None) -> None:
        write_usage(self, prog, args, _("Usage:") + " " if prefix is None else prefix)

    formatting.HelpFormatter.write_usage = translated_usage  # type: ignore[method-assign]
