"""The house follows a row: which packages of flows/ import Prefect and touch files (issue 13)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

FLOWS = ROOT / "flows"
# flows/locale holds the message catalogs (flows/i18n.py), no code.
SKIP = {"__pycache__", "locale"}
PACKAGES = ["inputs", "checks", "decide", "pay", "audit", "report", "results", "run"]
# Calls that read or write files; a module that makes one touches the file system.
FILE_CALLS = {
    "open",
    "read_text",
    "read_bytes",
    "write_text",
    "write_bytes",
    "read_parquet",
    "scan_parquet",
    "write_parquet",
    "sink_parquet",
    "read_csv",
    "scan_csv",
    "mkdir",
    "glob",
    "rglob",
    "unlink",
    "rmtree",
    "iterdir",
}


def modules(package: str) -> list[Path]:
    return sorted((FLOWS / package).glob("*.py"))


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def file_calls(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            if name in FILE_CALLS:
                found.add(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


def test_flows_is_grouped_into_the_stage_packages_and_the_commands() -> None:
    top = sorted(p.name for p in FLOWS.glob("*.py"))
    shared = ["__init__.py", "errors.py", "i18n.py", "money.py"]  # used by every stage
    commands = ["cli.py", "describe.py", "docgen.py", "serve.py"]
    assert top == sorted(shared + commands)
    assert sorted(p.name for p in FLOWS.iterdir() if p.is_dir() and p.name not in SKIP) == (
        sorted(PACKAGES)
    )


def test_only_the_run_package_and_the_commands_import_prefect() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for package in PACKAGES
        if package != "run"
        for path in modules(package)
        for name in imports(path)
        if name == "prefect" or name.startswith(("prefect.", "prefect_dask"))
    ]
    assert offenders == []


def test_only_inputs_audit_and_run_touch_files() -> None:
    offenders = sorted(
        call
        for package in ("checks", "decide", "pay", "report")
        for path in modules(package)
        for call in file_calls(path)
    )
    assert offenders == []


def test_every_package_names_its_public_modules() -> None:
    for package in PACKAGES:
        init = FLOWS / package / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{package}/__init__.py says what the package holds"
        names = next(
            ast.literal_eval(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__all__"
        )
        assert sorted(names) == sorted(p.stem for p in modules(package) if p.stem != "__init__")


def test_tests_patch_no_private_name_of_flows() -> None:
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        ours = {  # names bound to flows modules or objects in this test file
            alias.asname or alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            and (getattr(node, "module", None) or node.names[0].name).startswith("flows")
            for alias in node.names
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "setattr"):
                continue
            args = node.args
            target = args[0] if args else None
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                dotted = target.value
            elif len(args) > 1 and isinstance(args[1], ast.Constant):
                dotted = f"{ast.unparse(target).split('.')[0] if target else ''}.{args[1].value}"
                if dotted.split(".")[0] not in ours:
                    continue
            else:
                continue
            if dotted.startswith(("flows", *ours)) and dotted.split(".")[-1].startswith("_"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {dotted}")
    assert offenders == []
