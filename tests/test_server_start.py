"""`jiwon` starts Prefect's temporary server itself, early, and never leaves it behind (issue 16).

Without a configured server, a command that runs a flow spawns Prefect's temporary server
before importing Prefect (flows.run.server), so the two start together. These tests run real
`jiwon` processes with their own PREFECT_HOME, as an operator's shell would.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.run.server import configured_elsewhere, listening_socket
from tests.conftest import TEST_KEY
from tests.support.processes import ROOT, finish, own_server_env, run_args, start


def server_children(pid: int) -> list[int]:
    """Return the pids of the Prefect server processes `pid` started (Linux /proc)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    found = []
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"prefect.server.api.server:create_app" in command:
            found.append(int(child))
    return found


def wait_for_server_child(pid: int, timeout: float = 60) -> int:
    """Return the pid of the server `pid` spawned, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := server_children(pid):
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"process {pid} started no Prefect server in {timeout} s")


def gone(pid: int, timeout: float) -> bool:
    """Return whether process `pid` ended (or is a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux /proc")
def test_two_runs_at_once_each_start_their_own_server_before_prefect_does_and_stop_it(
    story: Path, tmp_path: Path
) -> None:
    processes = [
        start(
            run_args(story, tmp_path / f"out-{i}"),
            own_server_env(tmp_path / f"home-{i}", TEST_KEY, PREFECT_LOGGING_LEVEL="INFO"),
        )
        for i in range(2)
    ]
    servers = [wait_for_server_child(p.pid) for p in processes]
    for i, process in enumerate(processes):
        code, stdout, err = finish(process, timeout=300)
        assert code == 0, err
        assert "[committed]" in stdout
        # Prefect did not start a second server of its own: it used the one jiwon started.
        assert "Starting temporary server" not in err
        # each run's flow run is in its own server's database, not in the other's
        with sqlite3.connect(tmp_path / f"home-{i}" / "prefect.db") as db:
            names = [
                r[0]
                for r in db.execute(
                    "select flow.name from flow join flow_run on flow.id = flow_run.flow_id"
                )
            ]
        assert names == ["disburse"], names
    assert all(gone(server, timeout=10) for server in servers)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux /proc")
def test_a_killed_run_takes_its_temporary_server_with_it(story: Path, tmp_path: Path) -> None:
    process = start(run_args(story, tmp_path / "out"), own_server_env(tmp_path, TEST_KEY))
    server = wait_for_server_child(process.pid)
    os.kill(process.pid, signal.SIGKILL)  # only the command: no atexit, no cleanup runs
    process.communicate(timeout=30)
    try:
        assert gone(server, timeout=15), "the temporary server outlived the killed command"
    finally:
        if not gone(server, timeout=0):
            os.kill(server, signal.SIGKILL)


def test_a_server_the_operator_configured_anywhere_prefect_reads_is_left_to_prefect(
    tmp_path: Path,
) -> None:
    home, cwd = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    cwd.mkdir()
    environ = {"PREFECT_HOME": str(home)}
    assert not configured_elsewhere(environ, cwd)
    assert configured_elsewhere(environ | {"PREFECT_API_URL": "http://h:4200/api"}, cwd)

    profiles = home / "profiles.toml"
    profiles.write_text(
        'active = "city"\n[profiles.city]\nPREFECT_API_URL = "http://h:4200/api"\n'
        "[profiles.other]\n",
        encoding="utf-8",
    )
    assert configured_elsewhere(environ, cwd)
    assert not configured_elsewhere(environ | {"PREFECT_PROFILE": "other"}, cwd)
    profiles.write_text("not toml [", encoding="utf-8")
    assert not configured_elsewhere(environ, cwd)

    for name, text in (
        ("prefect.toml", '[api]\nurl = "http://h:4200/api"\n'),
        ("pyproject.toml", '[tool.prefect.api]\nurl = "http://h:4200/api"\n'),
        (".env", "PREFECT_API_URL=http://h:4200/api\n"),
    ):
        (cwd / name).write_text(text, encoding="utf-8")
        assert configured_elsewhere(environ, cwd), name
        (cwd / name).unlink()
    (cwd / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    assert not configured_elsewhere(environ, cwd)


# What Prefect alone makes of a folder's settings, and what it makes of them in a `jiwon`
# process after jiwon started its server early and checked Prefect's settings (`ready`).
PREFECT_ALONE = (
    "from prefect.settings import get_current_settings as s\n"
    "print(s().api.url or ('temporary' if s().server.ephemeral.enabled else 'refused'))\n"
)
AFTER_JIWON = (
    "from flows.run import server\n"
    "server.enable()\n"
    "server.start()\n"
    "spawned = server._child.process is not None\n"
    "server.ready()\n"
    "from prefect.settings import get_current_settings as s\n"
    "url = s().api.url\n"
    "ours = server._child.process is not None and url == server._child.url\n"
    "print('temporary' if ours else url or 'refused', spawned)\n"
)


def settle(code: str, cwd: Path, environ: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=environ, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "files, extra",
    [
        ({}, {}),
        ({".env": "export PREFECT_API_URL=http://city:4200/api\n"}, {}),
        ({}, {"prefect_api_url": "http://city:4200/api"}),
        ({}, {"PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false"}),
        (
            {
                "prefect.toml": 'profiles_path = "city-profiles.toml"\n',
                "city-profiles.toml": 'active = "city"\n[profiles.city]\n'
                'PREFECT_API_URL = "http://city:4200/api"\n',
            },
            {},
        ),
    ],
    ids=["nothing", "dotenv-export", "lower-case-env", "ephemeral-refused", "profiles-path"],
)
def test_the_server_a_command_talks_to_is_the_one_prefect_alone_would_choose(
    tmp_path: Path, files: dict[str, str], extra: dict[str, str]
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    environ = own_server_env(tmp_path / "home", TEST_KEY, **extra)
    environ["PYTHONPATH"] = str(ROOT)
    alone = settle(PREFECT_ALONE, tmp_path, environ)
    chosen, spawned = settle(AFTER_JIWON, tmp_path, environ).split()
    assert chosen == alone
    if alone == "temporary":
        assert spawned == "True"  # and the command's flows talk to jiwon's early server


def test_the_servers_socket_answers_without_waiting_for_delayed_acks() -> None:
    """uvicorn's --fd takes the socket for a Unix one and never sets TCP_NODELAY itself."""
    with listening_socket() as listening:
        assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert listening.getsockname()[0] == "127.0.0.1"


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_backend")
def test_the_fast_exit_loses_none_of_the_runs_last_logs_or_its_final_state(
    story: Path, tmp_path: Path
) -> None:
    """`end_without_teardown` ends the process with os._exit: Prefect's last log lines (the run's
    committed line, written just before the flow ends) and its final state reach the server."""
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    from tests.support.processes import env

    environ = env(TEST_KEY, tmp_path) | {"PREFECT_LOGGING_LEVEL": "INFO"}
    code, stdout, err = finish(start(run_args(story, tmp_path / "out"), environ), timeout=300)
    assert code == 0, err
    run_id = stdout.split(" run ", 1)[1].split()[0]
    with get_client(sync_client=True) as client:
        newest = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=10)
        runs = [r for r in newest if r.state and r.name]  # the session's server has many
        mine = [
            r
            for r in runs
            if any(
                run_id in log.message
                for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[r.id])))
            )
        ]
        assert len(mine) == 1, f"no flow run on the server logged {run_id}"
        assert mine[0].state is not None and mine[0].state.is_completed()
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[mine[0].id])))
    assert any(f"run {run_id} committed" in log.message for log in logs)
