"""`jiwon serve` refuses to start where its schedule could never run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import TEST_KEY
from tests.support.processes import JIWON


def test_serve_without_a_prefect_server_exits_2_saying_how_to_start_one(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    environ |= {"JIWON_PII_KEY": TEST_KEY, "PREFECT_HOME": str(tmp_path)}
    args = ["serve", "--registry", tmp_path, "--enrollments", tmp_path, "--out", tmp_path / "o"]
    done = subprocess.run(
        [str(JIWON), *map(str, args)], env=environ, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("jiwon serve needs a Prefect server: start one with `prefect server start`")
    )
