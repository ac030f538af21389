"""A real ``redis-server`` for the tests, started on a free loopback port.

Never the machine's shared Redis: every test that needs Redis gets its own
server, in its own directory, with persistence off, and it can be stopped
and started again on the same port (outage tests).  ``command()`` is a tiny
RESP client of its own, so that assertions about what is stored in Redis do
not go through the client library under test.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

REDIS_SERVER = "/usr/bin/redis-server"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def redis_server_executable() -> str:
    """The ``redis-server`` to run; a missing one fails the test (CI installs it)."""
    found = shutil.which("redis-server") or (REDIS_SERVER if Path(REDIS_SERVER).exists() else None)
    if found is None:
        raise RuntimeError(
            "redis-server not found: install it (apt-get install redis-server; .ci/run does)"
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _encode(*args: Any) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis-server closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self._buffer) < n + 2:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis-server closed the connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n + 2:]
        return data

    def reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisReplyError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exactly(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ConnectionError(f"unexpected RESP reply {line!r}")


class RedisReplyError(Exception):
    """Redis answered with an error."""


class RedisServer:
    """One ``redis-server`` process; ``start()``, ``stop()``, ``start()`` again."""

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        password: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """``tls=(certificate, key)``: TLS only, on ``port`` (clients need no certificate)."""
        self.directory = directory
        self.port = port or _free_port()
        self.password = password
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "redis.log"

    def url(self, db: int = 0, query: str = "") -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}localhost:{self.port}/{db}" + (f"?{query}" if query else "")
        return f"redis://{auth}127.0.0.1:{self.port}/{db}" + (f"?{query}" if query else "")

    def start(self) -> RedisServer:
        command = [
            redis_server_executable(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.directory),
            "--logfile", str(self.log_path),
        ]
        if self.tls:
            certificate, key = self.tls
            command += [
                "--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(certificate),
                "--tls-key-file", str(key), "--tls-auth-clients", "no",
            ]
        if self.password:
            command += ["--requirepass", self.password]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.command("PING")
                return self
            except RedisReplyError as e:
                if "NOAUTH" in str(e) or "LOADING" not in str(e):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT}s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (SIGTERM; SIGKILL after a bound): clients see it gone."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self, *args: Any) -> Any:
        """Run one command on a fresh connection and return its decoded reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5.0) as plain:
            sock = plain
            if self.tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # the test's own server
                sock = context.wrap_socket(plain)
            reader = _Reader(sock)
            if self.password:
                sock.sendall(_encode("AUTH", self.password))
                reader.reply()
            sock.sendall(_encode(*args))
            return reader.reply()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no log: {e})"
