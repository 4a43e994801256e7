"""No per-row Python in the data path (issue 16): polars does the work, Python never loops rows.

A lint over flows/ with `ast`: `map_elements`, `map_rows` and `apply` are refused anywhere (they
call Python once per row or group), and in the modules every row of a delivery passes through
(DATA_PATH) a call that brings rows into Python (`iter_rows`, `rows`, `to_dicts`, `to_list`)
must say on its line, after `# bounded:`, why the frame it reads is small (one row per file,
per outcome, per distinct character).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PER_ROW = {"map_elements", "map_rows", "apply"}
TO_PYTHON = {"iter_rows", "rows", "to_dicts", "to_list"}
DATA_PATH = (
    "flows/checks",
    "flows/decide",
    "flows/pay",
    "flows/inputs/ingest.py",
    "flows/inputs/excel.py",
    "flows/inputs/welfare.py",
    "flows/audit/records.py",
    "flows/audit/payouts.py",
    "flows/audit/tally.py",
    "flows/run/steps.py",
    "flows/run/stores.py",
    "flows/run/runners.py",
)
MARK = "# bounded:"


def findings(source: str, data_path: bool) -> list[tuple[int, str]]:
    """Return (line, method) of every per-row call, and of unmarked row reads on the data path."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name, line = node.func.attr, node.func.end_lineno or node.lineno
        if name in PER_ROW:
            found.append((line, name))
        elif data_path and name in TO_PYTHON:
            span = lines[node.lineno - 1 : (node.end_lineno or node.lineno)]
            if not any(MARK in text for text in span):
                found.append((line, name))
    return sorted(found)


def on_data_path(path: Path) -> bool:
    relative = path.relative_to(ROOT).as_posix()
    return any(relative == p or relative.startswith(p + "/") for p in DATA_PATH)


def test_no_module_in_flows_calls_python_per_row_of_a_frame() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{line}: .{name}()"
        for path in sorted((ROOT / "flows").rglob("*.py"))
        for line, name in findings(path.read_text(encoding="utf-8"), on_data_path(path))
    ]
    assert not problems, (
        "per-row Python in flows/ (use polars expressions; on the data path, a small frame "
        f"read into Python says why on its line with '{MARK} ...'):\n" + "\n".join(problems)
    )


def test_the_lint_finds_what_it_refuses() -> None:
    code = (
        "frame.with_columns(pl.col('x').map_elements(f))\n"
        "for row in frame.iter_rows():\n    pass\n"
        "names = frame['x'].to_list()  # bounded: one row per file\n"
    )
    assert findings(code, data_path=True) == [(1, "map_elements"), (2, "iter_rows")]
    assert findings(code, data_path=False) == [(1, "map_elements")]
    for path in DATA_PATH:
        assert (ROOT / path).exists(), path
