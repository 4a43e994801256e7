# Two commands on a fresh machine with only Python 3.11 and pip:
#   make demo   - runs the main job on built-in demo data
#   make test   - runs the test suite
# uv is installed into .tools/ if it is not on PATH; the locked environment goes to .venv/.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: demo test test-slow lint format bench sync docs clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

# Precompiled bytecode halves Prefect's start-up (PYTHONDONTWRITEBYTECODE may be set).
sync: $(UV)
	$(UV) sync --locked --quiet --compile-bytecode

demo: sync
	$(UV) run --no-sync jiwon demo

test: sync
	$(UV) run --no-sync pytest -q

test-slow: sync
	$(UV) run --no-sync pytest -q -m slow --runslow

lint: sync
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy

format: sync
	$(UV) run --no-sync ruff format .
	$(UV) run --no-sync ruff check --fix .

docs: sync
	$(UV) run --no-sync jiwon docs codes > docs/codes.md
	$(UV) run --no-sync jiwon docs audit > docs/audit.md

bench: sync
	$(UV) run --no-sync python -m bench.run --rows 540000

clean:
	rm -rf .venv .tools demo-output .pytest_cache .mypy_cache .ruff_cache
