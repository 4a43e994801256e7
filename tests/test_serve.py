"""`jiwon serve` on a real Prefect server: the monthly schedule and an operator's rerun."""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import TEST_KEY
from tests.support.processes import JIWON, finish, kill, start

pytestmark = [pytest.mark.slow]
PREFECT = JIWON.parent / "prefect"
SEOUL = ZoneInfo("Asia/Seoul")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, server: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"prefect server exited: {finish(server)[2][-2000:]}"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"prefect server at {url} not healthy after {timeout}s")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A real `prefect server start` on a free loopback port with its own SQLite home."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")} | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
    }
    process = start(
        [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)], environ
    )
    try:
        wait_healthy(url, process)
        yield url, environ | {"PREFECT_API_URL": url}
    finally:
        kill(process)


def test_serve_schedules_monthly_runs_at_six_in_seoul_and_runs_an_operators_rerun(
    server: tuple[str, dict[str, str]], story: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, FlowRunFilter
    from prefect.deployments import run_deployment
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url, environ = server
    out = tmp_path / "out"
    serving = start(
        [
            str(JIWON),
            "serve",
            "--registry",
            str(story / "registry"),
            "--enrollments",
            str(story / "enrollments"),
            "--out",
            str(out),
        ],
        environ | {"JIWON_PII_KEY": TEST_KEY, "PREFECT_RUNNER_POLL_FREQUENCY": "1"},
    )
    try:
        with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
            monthly = wait_for(lambda: client.read_deployment_by_name("disburse/monthly"), serving)
            schedule = monthly.schedules[0].schedule
            assert (schedule.cron, schedule.timezone) == ("0 6 1 * *", "Asia/Seoul")
            scheduled = wait_for(
                lambda: (
                    client.read_flow_runs(
                        deployment_filter=DeploymentFilter(id={"any_": [monthly.id]}),
                        flow_run_filter=FlowRunFilter(state={"type": {"any_": ["SCHEDULED"]}}),
                    )
                    or None
                ),
                serving,
            )
            starts = sorted(r.expected_start_time.astimezone(SEOUL) for r in scheduled)
            now = dt.datetime.now(SEOUL)
            assert len(starts) >= 3 and starts[0] > now
            assert all((s.day, s.hour, s.minute, s.second) == (1, 6, 0, 0) for s in starts)
            months = [(s.year, s.month) for s in starts]
            assert len(set(months)) == len(months)  # one a month
            rerun = wait_for(lambda: client.read_deployment_by_name("disburse/rerun"), serving)
            assert not rerun.schedules
            params = dict(rerun.parameters["params"])

            done = run_deployment(
                "disburse/rerun",
                parameters={
                    "params": params
                    | {
                        "reason": "bank rejected the file",
                        "operator": "kim",
                        "run_month": "2025-03",
                    }
                },
                timeout=240,
            )
            assert done.state is not None and done.state.is_completed(), done.state
            refused = run_deployment("disburse/rerun", timeout=240)  # no reason given
            assert refused.state is not None and refused.state.is_failed()
            assert "Validation of flow parameters failed" in (refused.state.message or "")
            # refused by the server's schema check before any flow run exists
            with pytest.raises(PrefectHTTPStatusError, match=r"field 'params\.run_month'"):
                run_deployment(
                    "disburse/rerun",
                    parameters={"params": params | {"reason": "x", "run_month": "2025-13"}},
                    timeout=0,
                )
    finally:
        kill(serving)

    import polars as pl

    runs = pl.read_parquet(out / "audit/runs/**/*.parquet")
    assert runs.select("trigger", "operator", "reason", "status", "total_paid_krw").rows() == [
        ("rerun", "kim", "bank rejected the file", "committed", 31_400_000)
    ]


def wait_for(probe: Any, serving: Any, timeout: float = 120) -> Any:
    """Return the first truthy result of `probe()`, failing if `jiwon serve` died meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert serving.poll() is None, f"jiwon serve exited: {finish(serving)[2][-2000:]}"
        try:
            found = probe()
            if found:
                return found
        except Exception:
            pass
        time.sleep(0.5)
    raise TimeoutError("timed out waiting on the Prefect server")
