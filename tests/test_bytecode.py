"""Every way the project builds its environment compiles bytecode (issue 12).

Our machines set PYTHONDONTWRITEBYTECODE=1, so Python never writes .pyc files itself: a `.venv`
installed without compiling them spends 11 s instead of 6 s importing Prefect's server on every
run. `[tool.uv] compile-bytecode = true` makes every uv install in the project compile, and each
install command the project runs or documents says `--compile-bytecode` as well.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Where the project builds environments or tells people how to.
SOURCES = ["Makefile", ".ci/run", "README.md", "CONTRIBUTING.md", "docs/**/*.md", "bench/*.py"]
UV = r"(?:\buv|\$\(UV\)|\$\{?UV\}?)"  # uv itself, or the Makefile's / a script's $(UV)
UV_INSTALL = re.compile(UV + r"\s+(?:sync|pip\s+install|pip\s+sync)\b")
PIP_INSTALL = re.compile(r"(?<!uv )\bpip3?\s+install\b(?P<rest>.*)")
NOT_COMPILED = re.compile(
    r"--no-compile|UV_COMPILE_BYTECODE=(?:0|false)|compile-bytecode\s*=\s*false", re.I
)


def project_lines() -> list[tuple[str, str]]:
    """Return (file:line, text) of every line of the files that build or document the build."""
    lines = []
    for pattern in SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                lines.append((f"{path.relative_to(ROOT)}:{n}", text))
    return lines


def test_uv_compiles_bytecode_for_every_install_in_the_project() -> None:
    uv = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["uv"]
    assert uv.get("compile-bytecode") is True, "pyproject.toml [tool.uv]: compile-bytecode = true"


def test_every_uv_install_command_of_the_project_compiles_bytecode() -> None:
    installs = [(where, text) for where, text in project_lines() if UV_INSTALL.search(text)]
    assert any(where.startswith("Makefile:") for where, _ in installs), "found no `uv sync`"
    missing = [
        f"{where}: {text.strip()}" for where, text in installs if "--compile-bytecode" not in text
    ]
    assert not missing, "add --compile-bytecode:\n" + "\n".join(missing)


def test_no_build_command_turns_compiling_off_or_installs_the_project_with_plain_pip() -> None:
    off = [f"{w}: {t.strip()}" for w, t in project_lines() if NOT_COMPILED.search(t)]
    assert not off, "bytecode compiling turned off:\n" + "\n".join(off)
    pip = [
        f"{w}: {t.strip()}"
        for w, t in project_lines()
        if (m := PIP_INSTALL.search(t)) and m["rest"].replace("--quiet", "").split() != ["uv"]
    ]  # plain pip may install only uv itself (docs/decisions/0001: pip resolves wrong versions)
    assert not pip, "install the project with `make sync` (uv, compiled), not pip:\n" + "\n".join(
        pip
    )


def test_the_makefile_builds_with_make_sync_and_ci_with_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    sync = re.search(r"^sync:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert sync and "--compile-bytecode" in sync[1], "make sync must compile bytecode"
    ci = (ROOT / ".ci/run").read_text(encoding="utf-8")
    assert re.search(r"^make sync$", ci, re.M), "CI must build with make sync"
    # Targets run after sync use the environment as built: `uv run` without --no-sync would
    # re-sync it (compiled too, through pyproject.toml, but not what CI checked).
    runs = [t for t in makefile.splitlines() if re.search(UV + r"\s+run\b", t)]
    assert runs and all("--no-sync" in t for t in runs), runs
