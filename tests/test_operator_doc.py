"""docs/operators.md lists every refusal the code can print, with its fix; kept in step here.

Every `InputRejected(file, problem, action)` and `RunHalted(message)` in flows/ is read from the
source (f-string parts become `…`), and the guide's refusal tables must hold exactly those
messages, each on a row whose "what to do" cell contains the action the code prints.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "operators.md"


PLACEHOLDER = re.compile(r"\{\{|\}\}|\{[^{}]*\}")


def english(msgid: str) -> str:
    """Return a catalog message (`str.format` template) as text, each placeholder as `…`."""
    return PLACEHOLDER.sub(lambda m: m.group(0)[0] if m.group(0) in ("{{", "}}") else "…", msgid)


def template(node: ast.expr) -> str:
    """Return a message as text, each interpolated value as `…`.

    A message is `_("… {name} …").format(name=…)` or `_("…")` (flows/i18n.py: the English
    msgid of the catalog), or a string literal or f-string.
    """
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        return english(template(node.func.value))  # _("… {name} …").format(name=…)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_":
        inner = node.args[0]
        assert isinstance(inner, ast.Constant) and isinstance(inner.value, str), node.lineno
        return inner.value
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "…" for v in node.values)
    raise AssertionError(f"message is not a literal at line {node.lineno}: keep it one")


def refusals_in_code() -> dict[str, str]:
    """Return {problem template: action template} for every refusal raised in flows/."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "flows").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id == "InputRejected" and len(node.args) >= 3:
                found[template(node.args[1])] = template(node.args[2])
            elif node.func.id in ("RunHalted", "LedgerUntrusted") and node.args:
                # "<problem>; nothing was paid. <action>" (recorded, released: approvals)
                text = template(node.args[0])
                parts = re.split(r"(; nothing was (?:paid|recorded|released)\.) ", text, maxsplit=1)
                if len(parts) == 3:
                    found[parts[0] + parts[1]] = parts[2]
                else:
                    found[text + "; nothing was paid."] = ""
    return found


KOREAN_CATALOG = ROOT / "flows" / "locale" / "ko" / "LC_MESSAGES" / "jiwon.po"
# The Korean of "; nothing was paid|recorded|released." in the catalog's halts.
KOREAN_NOTHING = r"(; 아무것도 (?:지급|기록|송출)하지 않았습니다\.) "


def msgid(node: ast.expr) -> str:
    """Return the catalog message (msgid) of `_("…").format(…)` or `_("…")`."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return msgid(node.func.value)
    assert isinstance(node, ast.Call) and isinstance(node.args[0], ast.Constant), node.lineno
    return str(node.args[0].value)


def refusals_in_korean() -> dict[str, tuple[str, str]]:
    """Return {problem template, as `refusals_in_code` keys it: (Korean problem, Korean action)}.

    The Korean comes from the catalog (flows/locale/ko/LC_MESSAGES/jiwon.po), its placeholders
    shown as `…` like the English: what docs/ko/operators.md's refusal tables must show.
    """
    from babel.messages.pofile import read_po

    with KOREAN_CATALOG.open("rb") as f:
        korean = {m.id: m.string for m in read_po(f) if m.id}
    found: dict[str, tuple[str, str]] = {}
    for path in sorted((ROOT / "flows").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id == "InputRejected" and len(node.args) >= 3:
                problem, action = (english(korean[msgid(a)]) for a in node.args[1:3])
                found[template(node.args[1])] = (problem, action)
            elif node.func.id in ("RunHalted", "LedgerUntrusted") and node.args:
                text, ko = template(node.args[0]), english(korean[msgid(node.args[0])])
                parts = re.split(r"(; nothing was (?:paid|recorded|released)\.) ", text, maxsplit=1)
                if len(parts) == 3:
                    ko_parts = re.split(KOREAN_NOTHING, ko, maxsplit=1)
                    assert len(ko_parts) == 3, f"the Korean of {text!r} keeps its '; nothing…'"
                    found[parts[0] + parts[1]] = (ko_parts[0] + ko_parts[1], ko_parts[2])
                else:
                    found[text + "; nothing was paid."] = (
                        ko + "; 아무것도 지급하지 않았습니다.",
                        "",
                    )
    return found


def refusals_in_guide() -> dict[str, str]:
    """Return {message: what-to-do cell} of the guide's exit 3 and exit 4 tables."""
    text = GUIDE.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)
    rows: dict[str, str] = {}
    for section in sections:
        if not section.startswith(("Input rejected (exit 3)", "Halted by a safety check (exit 4)")):
            continue
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 2 and cells[0].startswith("`") and cells[0].endswith("`"):
                rows[cells[0].strip("`")] = cells[-1]
    return rows


def test_every_refusal_in_the_code_is_in_the_operator_guide_with_its_fix() -> None:
    code, guide = refusals_in_code(), refusals_in_guide()
    missing = sorted(set(code) - set(guide))
    assert not missing, f"add to docs/operators.md: {missing}"
    for problem, action in code.items():
        assert action in guide[problem], f"the fix for {problem!r} should say: {action}"


def test_every_refusal_in_the_operator_guide_exists_in_the_code() -> None:
    stale = sorted(set(refusals_in_guide()) - set(refusals_in_code()))
    assert not stale, f"docs/operators.md lists messages the code no longer prints: {stale}"


def test_the_damaged_trail_message_is_in_the_operator_guide_with_its_fix() -> None:
    from flows.errors import TrailDamaged
    from flows.inputs.ledger import unreadable

    message = str(TrailDamaged("…", unreadable(ValueError("…"))))
    problem, _, action = message.partition("; nothing was paid or answered from the trail. ")
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("## Audit trail damaged (exit 4)", 1)[-1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith(f"| ``{problem};")]
    assert rows, f"add to docs/operators.md, section 'Audit trail damaged (exit 4)': {message}"
    assert message in rows[0] and "Restore that file from backup" in rows[0]
    assert action.startswith("Restore the file from backup (do not delete it")


def test_every_refusal_has_its_korean_with_as_many_values() -> None:
    korean = refusals_in_korean()
    assert set(korean) == set(refusals_in_code())
    for problem, (ko_problem, ko_action) in korean.items():
        assert ko_problem.count("…") == problem.count("…"), problem
        assert ko_problem and (ko_action or not refusals_in_code()[problem])
