"""Every message an operator reads has its Korean, with the same placeholders (issue 17).

The messages are extracted from the code itself with Babel (as `make messages` does), not read
from the committed template, so a new `_("...")` without a Korean translation fails here until
`make messages` is run and the new msgstr written in flows/locale/ko/LC_MESSAGES/jiwon.po.
"""

from __future__ import annotations

import io
import re

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from flows.i18n import LOCALEDIR
from tests.conftest import ROOT

PO = LOCALEDIR / "ko" / "LC_MESSAGES" / "jiwon.po"
MO = PO.with_suffix(".mo")
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}  # as in the Makefile's BABEL_EXTRACT
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{[^{}]*\}")


def extracted() -> dict[str, str]:
    """Return {msgid: where} for every message of flows/ (plural forms: both)."""
    found: dict[str, str] = {}
    for folder, pattern in (("flows", "**.py"), ("rules", "program.py")):  # as babel.cfg
        messages = extract_from_dir(
            str(ROOT / folder), method_map=[(pattern, "python")], keywords=KEYWORDS
        )
        for filename, lineno, message, _comments, _context in messages:
            for text in message if isinstance(message, tuple) else (message,):
                found.setdefault(text, f"{folder}/{filename}:{lineno}")
    return found


def korean() -> Catalog:
    with PO.open("rb") as f:
        return read_po(f, locale="ko")


def placeholders(text: str) -> list[str]:
    """Return the `str.format` fields of a message, sorted ({{ and }} are literal braces)."""
    return sorted(p for p in PLACEHOLDER.findall(text) if p not in ("{{", "}}"))


def catalog_map() -> dict[str, str]:
    """Return {English message template: Korean template} of the catalog (docs can check it)."""
    return {m.id: m.string for m in korean() if m.id and isinstance(m.id, str)}


def test_the_code_has_messages_to_extract() -> None:
    messages = extracted()
    assert len(messages) > 400
    assert "input rejected: {where}: {problem}. {action}" in messages


def test_every_message_in_the_code_has_its_korean() -> None:
    catalog = korean()
    missing = []
    for msgid, where in sorted(extracted().items()):
        entry = catalog.get(msgid)
        string = entry.string if entry is not None else ""
        texts = string if isinstance(string, tuple) else (string,)
        if entry is None or entry.fuzzy or not all(t.strip() for t in texts):
            missing.append(f"{where}: {msgid!r}")
    assert not missing, (
        "messages without a Korean translation (run `make messages`, then translate them in "
        f"flows/locale/ko/LC_MESSAGES/jiwon.po): {missing}"
    )


def test_every_korean_message_keeps_the_english_placeholders() -> None:
    wrong = []
    for message in korean():
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in strings:
            if text and placeholders(text) != placeholders(ids[0]):
                wrong.append(f"{ids[0]!r} -> {text!r}")
    assert not wrong, f"Korean messages whose {{placeholders}} differ from the English: {wrong}"


def test_the_compiled_catalog_is_the_po_file_compiled() -> None:
    compiled = io.BytesIO()
    write_mo(compiled, korean())
    assert MO.read_bytes() == compiled.getvalue(), "run `make messages` (compiles jiwon.mo)"


@pytest.mark.parametrize(
    ("english", "korean_text"),
    [
        ("is empty", "비어 있습니다"),
        ("Ask the sender for the file again; do not edit it by hand.", "직접 편집하지"),
    ],
)
def test_the_catalog_map_gives_the_korean_of_an_english_message(
    english: str, korean_text: str
) -> None:
    assert korean_text in catalog_map()[english]
