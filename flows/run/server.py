"""Prefect's temporary API server, started by `jiwon` itself while it imports (issue 16).

Without `PREFECT_API_URL`, Prefect starts a temporary server the first time a flow runs: it
imports its server code in the command's own process (about 1.9 s here), then starts the same
code in a child process and waits for it (about 4 s). Both happen after jiwon has imported
Prefect and its flows (about 1.5 s), one after the other.

`start()` spawns that child the moment a command knows it will run a flow, before Prefect is
imported, so the child's start-up runs alongside the command's imports and checks, and the
command's process never imports the server. It is the command Prefect runs (uvicorn over
`prefect.server.api.server:create_app` with Prefect's ephemeral settings), serving a local
socket this process bound (`--fd`), whose address `PREFECT_API_URL` then names for every flow
the command runs. `ready()` waits for it before
the first flow; it is stopped when the command exits, as Prefect stops its own.

Prefect decides, as before, whether a temporary server is wanted: `ready()` reads Prefect's
own settings once Prefect is imported (every source: environment, profile, `.env`,
`prefect.toml`, `pyproject.toml`) and stops the child, unused, when they name a server or
forbid a temporary one; only then does `PREFECT_API_URL` name the child, for this process and
what it starts. `configured_elsewhere` is a cheap first look that spares the spawn in the
common cases of a configured server. Prefect already imported (tests, `jiwon serve`), or a
caller other than the `jiwon` command (`enable()`): nothing is spawned.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Prefect's own words when its temporary server does not answer (the CLI maps them to exit 1).
START_FAILED = "Timed out while attempting to connect to ephemeral Prefect API server"
URL = "PREFECT_API_URL"
# What Prefect's SubprocessASGIServer sets for its child: no UI, ephemeral, final settings.
CHILD_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class _Child:
    enabled = False
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    url_set = False  # PREFECT_API_URL names it (`prepare`)
    healthy = False


_child = _Child()


def configured_elsewhere(environ: Mapping[str, str], cwd: Path) -> bool:
    """Return whether Prefect's settings name an API server: the environment, the active
    profile, or the working folder's `.env`, `prefect.toml` or `pyproject.toml`."""
    if environ.get(URL):
        return True
    home = Path(environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    profiles = toml(Path(environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")))
    active = environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    named = [
        profiles.get("profiles", {}).get(active, {}).get(URL),
        toml(cwd / "prefect.toml").get("api", {}).get("url"),
        toml(cwd / "pyproject.toml").get("tool", {}).get("prefect", {}).get("api", {}).get("url"),
    ]
    with contextlib.suppress(OSError, UnicodeDecodeError):
        lines = (cwd / ".env").read_text(encoding="utf-8").splitlines()
        named += [line for line in lines if line.strip().startswith(URL)]
    return any(named)


def toml(path: Path) -> dict[str, Any]:
    """Return a TOML file's tables, or nothing if it is missing or unreadable."""
    try:
        return tomllib.loads(path.expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def start() -> None:
    """Spawn Prefect's temporary server now, unless one is configured or Prefect is imported.

    Only in the `jiwon` command (`enable()`, from its `main`), on POSIX, on the main thread: a
    test or a library calling the CLI in its own process keeps Prefect's own behaviour.
    """
    if (
        not _child.enabled
        or os.name != "posix"
        or _child.process is not None
        or "prefect" in sys.modules
        or configured_elsewhere(os.environ, Path.cwd())
    ):
        return
    spec = importlib.util.find_spec("prefect")
    if spec is None or not spec.submodule_search_locations:
        return  # let Prefect itself say what is missing
    try:
        _child.process, port = spawn(Path(next(iter(spec.submodule_search_locations))).parent)
    except OSError:  # cannot spawn it: Prefect starts its own when the flow runs
        return
    _child.url = f"http://127.0.0.1:{port}/api"
    atexit.register(stop)


def spawn(app_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start Prefect's server command on a local socket bound here; return it and its port.

    The child serves the socket this process bound, so no other process can take its port
    meanwhile (two commands at once each get their own), and the port is known at once.
    """
    with listening_socket() as listening:
        port = listening.getsockname()[1]
        parent = os.getpid()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(app_dir),
                "--factory",
                "prefect.server.api.server:create_app",
                "--fd",
                str(listening.fileno()),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env=os.environ | CHILD_ENV,
            pass_fds=(listening.fileno(),),
            preexec_fn=(lambda: die_with_parent(parent)) if sys.platform == "linux" else None,
        )
    return process, port


def listening_socket() -> socket.socket:
    """Return a local TCP socket listening on a free port, for the child to serve."""
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Accepted connections inherit TCP_NODELAY; uvicorn's --fd takes the socket for AF_UNIX
        # and never sets it, so each response would wait ~40 ms for a delayed ACK.
        listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listening.bind(("127.0.0.1", 0))
        listening.listen(128)
    except OSError:
        listening.close()
        raise
    return listening


def die_with_parent(parent: int) -> None:
    """In the child before it runs: ask Linux to stop it when the command dies, even killed.

    Linux signals the child when the thread that spawned it ends: `start` runs on the main
    thread, before any other. A command that died before the request leaves it to this check.
    """
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def enable() -> None:
    """Let `start` spawn the server: called by the `jiwon` command's entry point only."""
    _child.enabled = True


def prepare() -> None:
    """Let Prefect's own settings decide whether the server `start()` spawned is used.

    If so, `PREFECT_API_URL` names it from now on; if not, it is stopped. Call after Prefect is
    imported. The command's last change to the environment before a flow: a thread that works
    with polars meanwhile (`flows.run.prefetch`) must not run while the environment changes
    (glibc's setenv and polars' getenv in another thread may crash the process).
    """
    if _child.process is None or _child.healthy or _child.url_set:
        return
    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    settings = get_current_settings()  # Prefect's own reading of every source, without ours
    if settings.api.url or not settings.server.ephemeral.enabled:
        stop()  # Prefect would not start a temporary server here: it decides, as before
        return
    os.environ[URL] = _child.url  # for this process's flows and the processes it starts
    refresh_global_settings_context()
    _child.url_set = True


def starting() -> bool:
    """Return whether the command uses a server `start()` spawned that has not answered yet."""
    return _child.process is not None and not _child.healthy


def ready() -> None:
    """Wait until the server `start()` spawned answers; raise Prefect's own error if it does not.

    Call after Prefect is imported and before the first flow (it calls `prepare` first).
    """
    prepare()
    if _child.process is None or _child.healthy:
        return
    import httpx
    from prefect.settings import get_current_settings

    wait = get_current_settings().server.ephemeral.startup_timeout_seconds
    deadline = time.monotonic() + wait
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            code = _child.process.poll()
            if code is not None:
                stop()
                raise RuntimeError(
                    f"{START_FAILED}. Ephemeral server process exited with code {code}."
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{_child.url}/health", timeout=2).status_code == 200:
                    _child.healthy = True
                    return
            time.sleep(0.05)
    stop()
    raise RuntimeError(f"{START_FAILED}.")


def stop() -> None:
    """Stop the child server (at exit, after Prefect has sent its last logs and events)."""
    process, _child.process, _child.healthy = _child.process, None, False
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
