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
    """A real `prefect server start` on a free loopback port with its own SQLite home.

    With JIWON_TEST_PREFECT_DATABASE_URL (`.ci/postgres-test`), its database is that PostgreSQL
    one instead: the set-up a city runs in production.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")} | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
    }
    database = os.environ.get("JIWON_TEST_PREFECT_DATABASE_URL")
    if database:
        environ["PREFECT_API_DATABASE_CONNECTION_URL"] = database
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
    serving = serve_story(story, out, environ)
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
                        "await_approval": False,  # the release waits: see the test below
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


def serve_story(story: Path, out: Path, environ: dict[str, str]) -> Any:
    """Start `jiwon serve` on the story delivery (its runs' output root: `out`)."""
    return start(
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
        environ
        | {
            "JIWON_PII_KEY": TEST_KEY,
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "JIWON_PAUSE_POLL_S": "1",
        },
    )


def test_a_served_run_waits_for_release_and_an_approver_decides_it_in_the_prefect_ui(
    server: tuple[str, dict[str, str]], story: Path, tmp_path: Path
) -> None:
    """The Prefect UI's Resume form posts the approver's input to the paused flow run
    (`resume_flow_run` is the same API call): the run's operator is refused and the run waits
    again; another person releases the files, writing the approval event `jiwon approve` does."""
    import polars as pl
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.audit import release
    from flows.inputs.ledger import run_records

    url, environ = server
    out = tmp_path / "out"
    serving = serve_story(story, out, environ)
    program = "paju-livelihood-2025"
    try:
        with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
            rerun = wait_for(lambda: client.read_deployment_by_name("disburse/rerun"), serving)
            params = dict(rerun.parameters["params"])
            assert params["await_approval"] is True
            started = run_deployment(
                "disburse/rerun",
                parameters={
                    "params": params
                    | {"reason": "the month's run", "operator": "kim", "run_month": "2025-03"}
                },
                timeout=0,
            )

            def paused(after: str | None = None) -> Any:
                state = client.read_flow_run(started.id).state
                ok = state is not None and state.is_paused() and str(state.id) != after
                return state if ok else None

            first = wait_for(paused, serving, timeout=240)
            runs = run_records(out.resolve(), program)
            (waiting,) = [r for r in release.walk(runs).values()]
            assert waiting.release == release.PENDING and waiting.operator == "kim"
            assert not (out / "outbox").exists()
            # the run's own operator answers the form: refused, nothing recorded, it waits again
            resume_flow_run(started.id, run_input={"approver": "kim", "decision": "approve"})
            wait_for(lambda: paused(str(first.id)), serving, timeout=120)
            assert run_records(out.resolve(), program).height == runs.height
            resume_flow_run(started.id, run_input={"approver": "park", "decision": "approve"})
            done = wait_for(
                lambda: (s := client.read_flow_run(started.id).state) and s.is_final() and s,
                serving,
                timeout=120,
            )
            assert done.is_completed(), done
    finally:
        kill(serving)
    runs = run_records(out.resolve(), program)
    assert runs.select("trigger", "operator", "status").rows() == [
        ("rerun", "kim", "committed"),
        ("approval", "park", "committed"),
    ]
    released = release.walk(runs)[waiting.run_id]
    assert released.release == release.RELEASED and released.approvers == ["park"]
    sent = sorted(p.name for p in (out / "outbox" / program / waiting.run_id).iterdir())
    assert sent == sorted(p.name for p in (out / "payments" / program / waiting.run_id).iterdir())
    assert pl.read_parquet(out / "audit/runs/**/*.parquet").height == 2
