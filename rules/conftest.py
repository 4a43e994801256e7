"""Collect the rule cases of every program under rules/programs (see tests/support/rulecases.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.rulecases import collect_rule_cases


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    return collect_rule_cases(file_path, parent)
