"""Start real `jiwon` processes against the test session's Prefect API, and kill them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JIWON = Path(sys.executable).parent / "jiwon"
WAIT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def api_url() -> str:
    """Return the URL of the Prefect API the test session runs (prefect_test_harness)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    assert url, "needs the prefect_backend fixture"
    return str(url)


def env(key: str, home: Path) -> dict[str, str]:
    """Return the environment of a `jiwon` process that uses the session's Prefect API."""
    return os.environ | {
        "JIWON_PII_KEY": key,
        "PREFECT_API_URL": api_url(),
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def run_args(data: Path, out: Path, *extra: str) -> list[str]:
    """Return the command line of a `jiwon run` of the livelihood program on `data`."""
    return [
        str(JIWON),
        "run",
        "--program",
        "paju-livelihood-2025",
        "--registry",
        str(data / "registry"),
        "--enrollments",
        str(data / "enrollments"),
        "--out",
        str(out),
        "--run-month",
        "2025-03",
        *extra,
    ]


def start(args: list[str], environ: dict[str, str]) -> subprocess.Popen[str]:
    """Start a process in its own session, so it and anything it started can be killed at once."""
    return subprocess.Popen(
        args,
        env=environ,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill(process: subprocess.Popen[str]) -> str:
    """SIGKILL the process and its session (no handler, no cleanup can run), reap it, and
    return what it wrote to stderr (to say why, when a test expected it elsewhere)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.communicate(timeout=30)[1] or ""


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    """Wait for the process; kill it if it overruns. Return its status, stdout and stderr."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(process)
        raise
    return process.returncode, stdout, stderr


def own_server_env(home: Path, key: str, **extra: str) -> dict[str, str]:
    """Return the environment of a `jiwon` process that starts its own temporary Prefect server.

    Drops what the test session set for itself (the wait, any API or database URL), so the
    process sees what an operator's shell would give it.
    """
    environ = {
        k: v
        for k, v in os.environ.items()
        if k != WAIT and not k.startswith(("PREFECT_API_", "PREFECT_SERVER_DATABASE"))
    }
    return environ | {"PREFECT_HOME": str(home), "JIWON_PII_KEY": key} | extra
