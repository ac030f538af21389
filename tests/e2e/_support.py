"""Shared by the e2e tests: tokens, and the hub as a real ``twistd`` process."""

from __future__ import annotations

import ctypes
import shutil
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pytest

from tests import tokens

DEV_SECRET = "!ChangeThisMercureHubJWTSecretKey!"
SECRET = "e2e-secret-that-is-long-enough-for-hs256!!"
KEY_FLAGS = ("--publisher-jwt-key", SECRET, "--subscriber-jwt-key", SECRET)
HUB_PATH = "/.well-known/mercure"

START_TIMEOUT = 20.0

#: Debian's Chromium, driven by Playwright (never downloaded), with the flags
#: this sandboxed, offline machine needs.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
STOP_TIMEOUT = 5.0


# -- tokens (pyjwt, HS256, as tests/unit/_web.py) ---------------------------


def draft07_token(
    publish: list[str] | None = None,
    subscribe: list[str] | None = None,
    key: str = SECRET,
    exp: float | None = None,
) -> str:
    return tokens.draft07_token(key, publish, subscribe, exp=exp)


def draft08_token(
    hub_url: str,
    *details: dict[str, Any],
    key: str = SECRET,
    iss: str = "https://app.example",
) -> str:
    return tokens.draft08_token(key, hub_url, *details, iss=iss)


# -- the hub process ----------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def twistd_command() -> list[str]:
    """The ``twistd`` of the running interpreter's environment."""
    bindir = Path(sys.executable).parent
    for name in ("twistd", "twistd.exe"):
        script = bindir / name
        if script.is_file():
            return [str(script)]
    # No script next to the interpreter (unusual layouts): run twistd's
    # entry point with this very interpreter.  ``python -m twisted`` is
    # ``twist``, which has no -n/--pidfile, so it is not an option.
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: SIGTERM the hub if pytest dies, so no hub outlives the run."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


class HubProcess:
    """A ``twistd`` daemon of this project on a loopback port.

    ``subcommand`` is the twistd plugin (``mercure``, the hub, by default;
    ``websub-bridge`` for the standalone bridge, `start_websub_bridge`), and
    ``env`` extra environment variables for it (a token, say): the rest of
    the environment is the test run's, without any ``MERCURE_*`` setting
    (nor ``WEBSUB_BRIDGE_*`` for the bridge) from the developer's shell.
    """

    def __init__(self, port: int, flags: tuple[str, ...], log_path: Path,
                 host: str = "127.0.0.1", *, subcommand: str = "mercure",
                 env: dict[str, str] | None = None) -> None:
        self.port = port
        self.host = host
        self.flags = flags
        self.log_path = log_path
        self.subcommand = subcommand
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        """What error messages call the process."""
        return "hub" if self.subcommand == "mercure" else self.subcommand

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The hub endpoint, ``http://127.0.0.1:PORT/.well-known/mercure``."""
        return self.base_url + HUB_PATH

    def start(self) -> None:
        command = twistd_command() + [
            "-n", "--pidfile=", self.subcommand,
            "--listen", f"tcp:{self.port}:interface={self.host}",
            *self.flags,
        ]
        if "--data-dir" not in self.flags:
            # The default SQLite history goes next to the log, never into
            # the developer's own data directory.
            command += ["--data-dir", str(self.log_path.parent / f"data-{self.port}")]
        env = dict(os.environ)
        # Settings come from the flags only, never from the developer's shell.
        for name in list(env):
            if name.startswith("MERCURE_") or (
                self.subcommand != "mercure" and name.startswith("WEBSUB_BRIDGE_")
            ):
                del env[name]
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "ab") as log:
            log.write(("$ " + " ".join(command) + "\n").encode())
            log.flush()
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=str(self.log_path.parent),
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"{self.name} exited with {code} before listening:\n{self.log()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.subcommand} did not listen on {self.port} within {START_TIMEOUT}s:\n{self.log()}"
                )
            time.sleep(0.05)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM; returns the exit code, or None if it had to be SIGKILLed."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no log: {e})"


def start_websub_bridge(
    request: pytest.FixtureRequest,
    log_dir: Path,
    *flags: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> HubProcess:
    """Start ``twistd -n --pidfile= websub-bridge --listen tcp:PORT:... *flags``.

    Use it from a test that also uses the ``start_hub`` fixture: the bridge
    joins that fixture's processes, so it is stopped at teardown (SIGTERM,
    then SIGKILL after a bound) and its log is attached to a failed test's
    report like a hub's.  ``env`` carries the tokens
    (``WEBSUB_BRIDGE_PUBLISHER_TOKEN``, ``WEBSUB_BRIDGE_SUBSCRIBER_TOKEN``).
    Its data directory is ``log_dir/data-PORT`` unless ``--data-dir`` is given.
    """
    processes: list[HubProcess] | None = getattr(request.node, "_mercure_hubs", None)
    if processes is None:
        raise RuntimeError("start_websub_bridge needs the start_hub fixture in the same test")
    port = port or free_port()
    bridge = HubProcess(
        port, tuple(flags), log_dir / f"bridge-{len(processes)}.log",
        subcommand="websub-bridge", env=env,
    )
    processes.append(bridge)
    bridge.start()
    return bridge


def require_executable(path: str) -> str:
    found = shutil.which(path)
    if not found:
        pytest.fail(f"{path} not found: install it (CI installs it); this test does not skip")
    return found


def until(
    predicate: Callable[[], Any],
    what: str | Callable[[], str],
    timeout: float = 20.0,
    *,
    context: Callable[[], str] | None = None,
    interval: float = 0.05,
) -> Any:
    """Poll ``predicate`` until it returns something true (returned), or
    fail after ``timeout`` seconds saying what was awaited (``what`` may be
    a function, for a description of the state reached) and ``context()``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            detail = f"\n{context()}" if context is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {text}{detail}")
        time.sleep(interval)
