"""The Korean operator guide (docs/ko/) says what the English one says; kept in step here.

docs/ko/operators.md translates docs/operators.md and docs/ko/README.md the README's operator
part. Both must name the same `jiwon` commands and `--flags`, have the same sections in the same
order with the same code blocks (only their comments translated) and table rows, and list every
message of the English exit 3 and exit 4 tables beside its Korean: once the Korean catalog
(flows/locale/ko/LC_MESSAGES/jiwon.po) exists, the Korean cell is its msgstr exactly
(placeholders as `…`, as the English shows them), and the Korean "what to do" holds the action
the Korean CLI prints.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EN_GUIDE = ROOT / "docs" / "operators.md"
KO_GUIDE = ROOT / "docs" / "ko" / "operators.md"
EN_README = ROOT / "README.md"
KO_README = ROOT / "docs" / "ko" / "README.md"
CATALOG = ROOT / "flows" / "locale" / "ko" / "LC_MESSAGES" / "jiwon.po"

# The sections test_operator_doc keeps in step with the code (their ### parts included).
REFUSAL_HEADINGS = ("## Input rejected (exit 3)", "## Halted by a safety check (exit 4)")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
JIWON = re.compile(r"\bjiwon ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")
COMMENT = re.compile(r"(?:^|\s)#\s.*$")  # a shell comment in a code block
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{[^{}]*\}")
# A halt is one catalog message: "<problem>; nothing was paid. <action>" (recorded, released).
HALT = re.compile(r"; nothing was (?:paid|recorded|released)\. ")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def readme_operator_part() -> str:
    """Return the README up to its developers' part, which the Korean README links to."""
    return read(EN_README).split("\n## Developers", 1)[0]


def cli_commands() -> dict[str, set[str]]:
    """Return {command: its subcommands} of the `jiwon` CLI."""
    import typer

    from flows.cli import app

    root = typer.main.get_command(app)
    groups = getattr(root, "commands", {})
    return {name: set(getattr(cmd, "commands", {})) for name, cmd in groups.items()}


def commands(text: str, cli: dict[str, set[str]]) -> set[str]:
    """Return every `jiwon <command> [<subcommand>]` the text names ("jiwon reads" is prose)."""
    found = set()
    for command, sub in JIWON.findall(text):
        if command in cli:
            found.add(f"jiwon {command} {sub}" if sub in cli[command] else f"jiwon {command}")
    return found


def flags(text: str) -> set[str]:
    return set(FLAG.findall(text))


def sections(text: str) -> list[str]:
    """Return the text before the first `## ` heading, then each `## ` section."""
    return re.split(r"^(?=## )", text, flags=re.M)


def headings(text: str) -> list[str]:
    """Return the level (`#`, `##`, `###`) of every heading outside code blocks, in order."""
    return [line.split(" ", 1)[0] for line in outside_code(text) if re.match(r"#+ ", line)]


def outside_code(text: str) -> list[str]:
    lines, inside = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
        elif not inside:
            lines.append(line)
    return lines


def code_blocks(text: str) -> list[str]:
    """Return each fenced code block, fences included, without indentation or `# comments`.

    The commands, flags, paths and variables of a block stay as they are; its comments are
    translated.
    """
    blocks, current = [], None
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if current is None:
                current = [line.strip()]
            else:
                current.append(line.strip())
                blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(COMMENT.sub("", line).strip())
    return blocks


def table_rows(text: str) -> list[list[str]]:
    """Return the cells of every table row but the separator lines (`|---|`)."""
    rows = []
    for line in outside_code(text):
        if line.startswith("|") and not re.fullmatch(r"\|[\s|:-]+\|", line.strip()):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def unquote(cell: str) -> str:
    """Return a table cell's code span without its backticks (`x` or ``x``)."""
    fence = "``" if cell.startswith("``") else "`"
    return cell.removeprefix(fence).removesuffix(fence).strip()


def refusal_sections(text: str) -> list[int]:
    """Return the indexes (see `sections`) of the exit 3 and exit 4 refusal sections."""
    return [i for i, s in enumerate(sections(text)) if s.startswith(REFUSAL_HEADINGS)]


def english_refusals() -> list[tuple[int, str, str]]:
    """Return (section index, message, what to do) of every row of the English refusal tables."""
    parts = sections(read(EN_GUIDE))
    return [
        (i, unquote(row[0]), row[-1])
        for i in refusal_sections(read(EN_GUIDE))
        for row in table_rows(parts[i])
        if row[0].startswith("`")
    ]


def korean_refusals() -> dict[str, list[str]]:
    """Return {English message: the row's cells} of the Korean guide's refusal tables.

    A Korean row is `| Korean message | English message | what is wrong | what to do |`; the
    sections are found by position, the same as the English guide's (the structure is tested).
    """
    parts = sections(read(KO_GUIDE))
    rows: dict[str, list[str]] = {}
    for i in refusal_sections(read(EN_GUIDE)):
        for row in table_rows(parts[i]):
            if len(row) >= 4 and row[1].startswith("`"):
                rows[unquote(row[1])] = row
    return rows


def as_shown(message: str) -> str:
    """Return a catalog message (`str.format` template) as the guides show it: `…` per value."""
    return PLACEHOLDER.sub(lambda m: m[0][0] if m[0] in ("{{", "}}") else "…", message)


def catalog() -> dict[str, str]:
    """Return {msgid: msgstr} of the translated, not fuzzy, entries of the Korean catalog."""
    entries: dict[str, str] = {}
    for block in re.split(r"\n\s*\n", read(CATALOG)):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            line = line.strip()
            if match := re.match(r"(msgid|msgstr) (\".*\")$", line):
                key = match[1]
                fields[key] = ast.literal_eval(match[2])
            elif line.startswith('"') and key:
                fields[key] += ast.literal_eval(line)
        fuzzy = re.search(r"^#,.*\bfuzzy\b", block, flags=re.M)
        if fields.get("msgid") and fields.get("msgstr") and not fuzzy:
            entries[fields["msgid"]] = fields["msgstr"]
    return entries


def test_the_guides_link_to_each_other() -> None:
    assert read(EN_GUIDE).startswith("한국어: [ko/operators.md](ko/operators.md)\n")
    assert read(KO_GUIDE).startswith("English: [../operators.md](../operators.md)\n")
    assert read(EN_README).startswith("한국어: [docs/ko/README.md](docs/ko/README.md)\n")
    assert read(KO_README).startswith("English: [../../README.md](../../README.md)\n")


def test_both_operator_guides_name_the_same_commands_and_flags() -> None:
    cli = cli_commands()
    english, korean = read(EN_GUIDE), read(KO_GUIDE)
    assert commands(english, cli) == commands(korean, cli), (
        f"only in docs/operators.md: {sorted(commands(english, cli) - commands(korean, cli))}; "
        f"only in docs/ko/operators.md: {sorted(commands(korean, cli) - commands(english, cli))}"
    )
    assert flags(english) == flags(korean), (
        f"only in docs/operators.md: {sorted(flags(english) - flags(korean))}; "
        f"only in docs/ko/operators.md: {sorted(flags(korean) - flags(english))}"
    )


def test_both_readmes_name_the_same_commands_and_flags_for_operators() -> None:
    cli = cli_commands()
    english, korean = readme_operator_part(), read(KO_README)
    assert commands(english, cli) == commands(korean, cli), (
        f"only in README.md: {sorted(commands(english, cli) - commands(korean, cli))}; "
        f"only in docs/ko/README.md: {sorted(commands(korean, cli) - commands(english, cli))}"
    )
    assert flags(english) == flags(korean), (
        f"only in README.md: {sorted(flags(english) - flags(korean))}; "
        f"only in docs/ko/README.md: {sorted(flags(korean) - flags(english))}"
    )
    assert set(code_blocks(english)) == set(code_blocks(korean))


def test_the_korean_guide_has_the_english_sections_code_blocks_and_table_rows() -> None:
    english, korean = read(EN_GUIDE), read(KO_GUIDE)
    assert headings(english) == headings(korean), "the same sections, in the same order"
    for n, (en, ko) in enumerate(zip(sections(english), sections(korean), strict=True)):
        title = en.split("\n", 1)[0]
        assert code_blocks(en) == code_blocks(ko), f"section {n} ({title}): code blocks differ"
        assert len(table_rows(en)) == len(table_rows(ko)), f"section {n} ({title}): table rows"
        korean_cells = {cell for row in table_rows(ko) for cell in row}
        for row in table_rows(en):
            if row[0].startswith("`"):
                assert row[0] in korean_cells, f"section {n} ({title}): no Korean row for {row[0]}"


def test_every_refusal_of_the_english_guide_has_a_korean_row_and_no_other() -> None:
    english = {message for _, message, _ in english_refusals()}
    korean = set(korean_refusals())
    assert not english - korean, f"add to docs/ko/operators.md: {sorted(english - korean)}"
    assert not korean - english, f"not in docs/operators.md: {sorted(korean - english)}"


@pytest.mark.skipif(not CATALOG.exists(), reason="no Korean catalog in this checkout yet")
def test_the_korean_refusal_rows_quote_the_catalog_the_korean_cli_prints() -> None:
    shown = {as_shown(msgid): as_shown(msgstr) for msgid, msgstr in catalog().items()}
    rows = korean_refusals()
    for _, message, todo in english_refusals():
        row = rows[message]
        korean, korean_todo = unquote(row[0]), row[-1]
        if message in shown:
            assert korean == shown[message], f"{message!r}: the catalog prints {shown[message]!r}"
            # the action the English row quotes, as the Korean CLI prints it
            actions = [e for e in shown if len(e) > 15 and e != message and e in todo]
            for action in actions:
                if not any(action != other and action in other for other in actions):
                    assert shown[action] in korean_todo, f"{message!r}: say {shown[action]!r}"
            continue
        halts = [e for e in shown if e.startswith(message + " ") and HALT.search(e)]
        assert len(halts) == 1, f"the catalog has no Korean for {message!r}"
        full = shown[halts[0]]
        assert full.startswith(korean + " "), f"{message!r}: the catalog prints {full!r}"
        assert full[len(korean) + 1 :] in korean_todo, f"{message!r}: say {full[len(korean) :]!r}"


@pytest.mark.skipif(not CATALOG.exists(), reason="no Korean catalog in this checkout yet")
def test_the_other_korean_message_rows_quote_the_catalog_where_it_has_the_message() -> None:
    """Exit 2, exit 1 and damaged-trail rows: a message the catalog has is its msgstr, no †.

    (These tables show some messages abridged; a row whose English is a catalog message whole is
    held to the catalog. † marks a Korean the guide wrote because the catalog has none yet.)
    """
    shown = {as_shown(msgid): as_shown(msgstr) for msgid, msgstr in catalog().items()}
    refusals = refusal_sections(read(EN_GUIDE))
    parts = sections(read(KO_GUIDE))
    checked = 0
    for i, part in enumerate(parts):
        for row in table_rows(part) if i not in refusals else []:
            if len(row) >= 3 and re.fullmatch(r"``?[^`]+``?|``.+``", row[1]):
                english = unquote(row[1])
                if english in shown:
                    checked += 1
                    assert row[0] == f"`{shown[english]}`", f"{english!r}: {shown[english]!r}"
    assert checked, "no row of these tables quotes a whole catalog message: check the parsing"
