"""Shared fixtures: a session-wide Prefect test backend, the story files, a test key."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_TASKS_DEFAULT_NO_CACHE", "true")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# The same start-up wait as the `jiwon` command (flows/cli.py): the test server builds a fresh
# database on cores the other tests keep busy.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

ROOT = Path(__file__).resolve().parents[1]
STORY = ROOT / "fixtures" / "story"
TEST_KEY = "test-key-0123456789abcdef"
# The tests' Ed25519 signing key (64 hex digits). Set for the whole session, as a deployment sets
# it once: every run signs its record, and `jiwon` processes the tests start inherit it.
TEST_SIGNING_KEY = "7465737473207369676e696e67206b65793a206e6f7420666f72207265616c21"
os.environ["JIWON_SIGNING_KEY"] = TEST_SIGNING_KEY
os.environ.pop("JIWON_SIGNING_KEY_BLOCK", None)
# Anchors (flows/run/anchor.py) of the session's trails, outside every output root.
os.environ["JIWON_ANCHOR_DIR"] = tempfile.mkdtemp(prefix="jiwon-anchors-")
# Messages in English whatever the machine's locale (flows/i18n.py): the tests compare English
# text, here and in the `jiwon` processes they start; tests/test_korean.py asks for Korean itself.
os.environ["JIWON_LANG"] = "en"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect rule cases of programs kept only in the test folder (tests/programs)."""
    from tests.support.rulecases import collect_rule_cases

    return collect_rule_cases(file_path, parent)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")
    parser.addoption(
        "--kill-reps",
        type=int,
        default=0,
        help="runs to SIGKILL (default: 1, slow test 12)",
    )
    parser.addoption(
        "--kill-rows", type=int, default=0, help="population of the slow kill test (20,000)"
    )
    parser.addoption("--kill-seed", type=int, default=5, help="seed of the kill moments")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow scale test: run with make test-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def prefect_backend() -> Iterator[None]:
    """Run flows against a temporary Prefect API with its own SQLite database."""
    from prefect.testing.utilities import prefect_test_harness

    wait = int(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])
    with prefect_test_harness(server_startup_timeout=wait):
        yield


@pytest.fixture
def pii_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Set JIWON_PII_KEY for the test."""
    monkeypatch.setenv("JIWON_PII_KEY", TEST_KEY)
    return TEST_KEY


@pytest.fixture
def story(tmp_path: Path) -> Path:
    """Copy the story delivery into a fresh folder (tests may add or break files)."""
    target = tmp_path / "story"
    shutil.copytree(STORY / "registry", target / "registry")
    shutil.copytree(STORY / "enrollments", target / "enrollments")
    return target


@pytest.fixture(scope="session")
def bank_trail(tmp_path_factory: pytest.TempPathFactory, prefect_backend: None) -> Any:
    """Two committed runs of the story with 40 bank payees, shared read-only: copy to tamper."""
    from tests.support.banktrail import write_bank_trail

    return write_bank_trail(tmp_path_factory)
