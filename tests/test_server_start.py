"""`jiwon` starts Prefect's temporary server itself, early, and never leaves it behind (issue 16).

Without a configured server, a command that runs a flow spawns Prefect's temporary server
before importing Prefect (flows.run.server), so the two start together. These tests run real
`jiwon` processes with their own PREFECT_HOME, as an operator's shell would.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from flows.run.server import configured_elsewhere
from tests.conftest import TEST_KEY
from tests.support.processes import finish, own_server_env, run_args, start


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
    assert servers[0] != servers[1]
    for i, process in enumerate(processes):
        code, stdout, err = finish(process, timeout=300)
        assert code == 0, err
        assert "[committed]" in stdout
        # Prefect did not start a second server of its own: it used the one jiwon started.
        assert "Starting temporary server" not in err
        assert (tmp_path / f"home-{i}" / "prefect.db").is_file()  # each run's own database
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
