"""No per-row Python in the data path (issue 16): polars does the work, Python never loops rows.

A lint over flows/ with `ast`: `map_elements`, `map_rows` and `apply` are refused anywhere (they
call Python once per row or group), and in the modules every row of a delivery passes through
(DATA_PATH) a call that brings rows into Python (`iter_rows`, `rows`, `to_dicts`, `to_list`),
a Python loop over a column (`for x in frame["c"]`, over `.to_series()` or `.get_column()`), a
column handed to a builtin that iterates it (`zip`, `list`, `sum`, ...) and a `.row()` inside a
loop must say on their own lines, after `# bounded:`, why the frame they read is small (one row
per file, per outcome, per distinct character); a mark on a loop's line does not cover a
`.row()` below it. A single `.row(0)` or `.item()` outside a loop reads one value or row:
allowed. What it cannot see: a column first given a name (`col = frame["c"]`, then `for v in
col`), and `d["key"]` of a dict looks like a column (say why on its line, or name it first).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PER_ROW = {"map_elements", "map_rows", "apply"}
TO_PYTHON = {"iter_rows", "rows", "to_dicts", "to_list"}
COLUMN_OF = {"to_series", "get_column"}  # a column a Python loop would iterate
# builtins that iterate what they are given in Python
ITERATING = {
    "zip",
    "enumerate",
    "list",
    "tuple",
    "set",
    "sorted",
    "sum",
    "min",
    "max",
    "dict",
    "iter",
}
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


def is_column(node: ast.expr) -> bool:
    """Return whether `node` looks like one column of a frame: `frame["c"]`, `.to_series()`."""
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in COLUMN_OF
    )


def loops(tree: ast.AST) -> list[ast.AST]:
    """Return every loop and comprehension of `tree`."""
    kinds = (
        ast.For,
        ast.AsyncFor,
        ast.While,
        ast.ListComp,
        ast.SetComp,
        ast.DictComp,
        ast.GeneratorExp,
    )
    return [node for node in ast.walk(tree) if isinstance(node, kinds)]


def findings(source: str, data_path: bool) -> list[tuple[int, str]]:
    """Return (line, method) of every per-row call, and of unmarked row reads on the data path."""
    lines = source.splitlines()
    tree = ast.parse(source)

    def unmarked(node: ast.AST) -> bool:
        first = getattr(node, "lineno", 1)
        last = getattr(node, "end_lineno", None) or first
        return not any(MARK in text for text in lines[first - 1 : last])

    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name, line = node.func.attr, node.func.end_lineno or node.lineno
        if name in PER_ROW or (data_path and name in TO_PYTHON and unmarked(node)):
            found.append((line, name))
    if not data_path:
        return sorted(found)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ITERATING
            and any(is_column(arg) for arg in node.args)
            and unmarked(node)
        ):
            found.append((node.lineno, node.func.id))
    for loop in loops(tree):
        iterated = (
            [loop.iter]
            if isinstance(loop, ast.For | ast.AsyncFor)
            else [g.iter for g in getattr(loop, "generators", [])]
        )
        for it in iterated:
            if is_column(it) and unmarked(it):
                found.append((it.lineno, "for"))
        body = [n for n in ast.walk(loop) if n is not loop]
        for node in body:
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "row"
                and unmarked(node)
            ):
                found.append((node.func.end_lineno or node.lineno, "row"))
    return sorted(set(found))


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
        "total = sum(v for v in frame['amount'])\n"
        "for v in frame.get_column('x'):\n    pass\n"
        "for i in range(frame.height):\n    print(frame.row(i))\n"
        "first = frame.row(0, named=True)\n"
        "for name in frame['source_file']:  # bounded: one row per file\n    pass\n"
        "count = frame.select(pl.len()).item()\n"
        "pairs = dict(zip(frame['a'], frame['b']))\n"
        "for v in frame.select('x').to_series():\n    pass\n"
        "for i in range(3):  # bounded: three rows\n    print(frame.row(i))\n"
        "for i in range(3):\n    print(frame.row(i))  # bounded: three rows\n"
        "async def f():\n    async for v in frame['x']:\n        pass\n"
    )
    assert findings(code, data_path=True) == [
        (1, "map_elements"),
        (2, "iter_rows"),
        (5, "for"),
        (6, "for"),
        (9, "row"),
        (14, "zip"),
        (15, "for"),
        (18, "row"),
        (22, "for"),
    ]
    assert findings(code, data_path=False) == [(1, "map_elements")]
    for path in DATA_PATH:
        assert (ROOT / path).exists(), path
