# Two commands on a fresh machine with only Python 3.11 and pip:
#   make demo   - runs the main job on built-in demo data
#   make test   - runs the test suite
# uv is installed into .tools/ if it is not on PATH; the locked environment goes to .venv/.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: demo test test-slow lint format bench bench-scale sync docs messages clean browser

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
	$(UV) run --no-sync jiwon docs programs docs/programs.md > docs/programs.md.new
	mv docs/programs.md.new docs/programs.md

# The message catalog (flows/i18n.py): extract every _() of flows/ into jiwon.pot, merge it into
# the Korean jiwon.po (translate what is new there: tests/test_messages.py fails until it is), and
# compile jiwon.mo. The .pot, .po and .mo are committed; the running code reads only the .mo.
BABEL_EXTRACT := -F babel.cfg -k _ -k N_ -k ngettext:1,2 --no-location --sort-output --omit-header --no-wrap
messages: sync
	$(UV) run --no-sync pybabel extract $(BABEL_EXTRACT) -o flows/locale/jiwon.pot .
	$(UV) run --no-sync pybabel update -D jiwon -d flows/locale -i flows/locale/jiwon.pot -l ko \
		--no-fuzzy-matching --ignore-obsolete --ignore-pot-creation-date --no-wrap
	$(UV) run --no-sync pybabel compile -D jiwon -d flows/locale -l ko --statistics

# Headless Chromium from Debian for the report screenshot test (never `playwright install`),
# with a Hangul font so the screenshot shows district names. Needs root or sudo.
BROWSER_PACKAGES := chromium fonts-nanum
browser:
	@if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi nanum; then \
		echo "browser: /usr/bin/chromium present"; \
	else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BROWSER_PACKAGES); \
	fi

# Issue 16's table at 540,000 residents (about 4 min), and at 5,400,000 and 52,000,000 (hours:
# generated data is kept under /tmp/jiwon-bench for the next time). Never part of the tests.
bench: sync
	$(UV) run --no-sync python -m bench.run --rows 540000

bench-scale: sync
	$(UV) run --no-sync python -m bench.scale --rows 5400000 52000000

clean:
	rm -rf .venv .tools demo-output .pytest_cache .mypy_cache .ruff_cache
