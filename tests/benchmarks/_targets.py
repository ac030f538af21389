"""The servers under test: this hub, the platform limits, and the peers.

Each target is started by the suite in the same run, on a free loopback
port, with its open-file soft limit raised to the hard limit.  Peers live
in a git-ignored directory (``tests/benchmarks/.peers/``): a virtual
environment for the Python ones and a ``node_modules`` for the npm one,
created by ``setup_peers`` so that the project's own environment stays
clean.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import jwt

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PEERS = HERE / ".peers"
SERVERS = HERE / "servers"
KEY = "!BenchmarkOnlyKeyNotASecret-0123456789!"
#: One draft-07 style token every target accepts: publish and subscribe all.
TOKEN = jwt.encode({"mercure": {"publish": ["*"], "subscribe": ["*"]}}, KEY, algorithm="HS256")
TOPIC = "https://example.com/books/1"
PYTHON_PEERS = ["flask-mercure-sse", "sse-starlette", "uvicorn", "httptools", "uvloop", "gevent", "pyjwt"]
NODE_PEERS = ["mercure@0.1.0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raise_limits() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.setpgrp()


def setup_peers(log: Callable[[str], None]) -> dict[str, str]:
    """Install the peers (once); returns {peer: error} for those that failed."""
    errors: dict[str, str] = {}
    PEERS.mkdir(exist_ok=True)
    venv = PEERS / "venv"
    if not (venv / "bin" / "python").exists():
        log("creating the peers' virtual environment")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    missing = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import flask_mercure_sse, sse_starlette, uvicorn, httptools, uvloop, gevent, jwt"],
        capture_output=True,
    ).returncode
    if missing:
        log("installing " + " ".join(PYTHON_PEERS))
        r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PYTHON_PEERS],
                           capture_output=True, text=True)
        if r.returncode:
            errors["python peers"] = r.stderr.strip()[-800:]
    if not (PEERS / "node_modules" / "mercure").exists():
        if shutil.which("npm") is None:
            errors["mercure (npm)"] = "npm not found"
        else:
            log("installing the mercure npm package")
            r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PEERS),
                                *NODE_PEERS], capture_output=True, text=True)
            if r.returncode:
                errors["mercure (npm)"] = r.stderr.strip()[-800:]
    return errors


@dataclass
class Spec:
    """A target to start: one or more processes behind one or more ports."""

    name: str
    kind: str  # "hub", "baseline" or "peer"
    argv: Callable[[int], list[str]]
    subscribe_path: Callable[[str], str]
    publish_path: str
    count_path: str | None = None  # GET answering the subscriber count
    templates: bool = False  # understands URI-template subscriptions
    topics: bool = True  # routes by exact topic
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    processes: int = 1
    note: str = ""
    max_rounds: int | None = None  # for a target too slow to repeat


@dataclass
class Running:
    spec: Spec
    ports: list[int]
    procs: list[subprocess.Popen[bytes]]
    log_paths: list[Path]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def rss_bytes(self) -> int:
        """Resident memory of the target's processes (and their children)."""
        total = 0
        for pid in self.pids:
            for p in [pid, *_children(pid)]:
                try:
                    for line in Path(f"/proc/{p}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) * 1024
                except OSError:
                    pass
        return total

    def cpu_seconds(self) -> float:
        """User and system CPU time of the target's processes (and children) so far."""
        return sum(cpu_seconds(p) for pid in self.pids for p in [pid, *_children(pid)])

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def server_count(self) -> tuple[int | None, str]:
        """The servers' own subscriber count, and where it came from."""
        if self.spec.kind == "hub":
            total = 0
            for port in self.ports:
                n = _hub_metric(port)
                if n is None:
                    break
                total += n
            else:
                return total, "/metrics"
        if self.spec.count_path:
            total = 0
            for port in self.ports:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{self.spec.count_path}", timeout=30) as r:
                    total += int(r.read())
            return total, self.spec.count_path
        return sum(established(port) for port in self.ports), "ss (established)"

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # stat fields 14 and 15


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / _TICKS, total / _TICKS


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


_METRIC = re.compile(rb"^mercure_subscribers_connected(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)


def _hub_metric(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            m = _METRIC.search(r.read())
    except OSError:
        return None
    return int(float(m.group(1))) if m else None


def established(port: int) -> int:
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def start(spec: Spec, workdir: Path, redis_url: str | None = None) -> Running:
    ports, procs, logs = [], [], []
    for i in range(spec.processes):
        port = free_port()
        log_path = workdir / f"{spec.name}-{i}.log"
        argv = spec.argv(port)
        env = {**os.environ, **spec.env}
        out = open(log_path, "wb")
        procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                      cwd=spec.cwd, preexec_fn=_raise_limits))
        ports.append(port)
        logs.append(log_path)
    running = Running(spec, ports, procs, logs)
    for port, proc, log_path in zip(ports, procs, logs):
        _wait_listening(port, proc, log_path)
    return running


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {log_path.read_text()[-1500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"not listening on {port} after {timeout}s: {log_path.read_text()[-1500:]}")


# -- the specs --------------------------------------------------------------


def _hub_argv(transport: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return [
            str(ROOT / ".venv" / "bin" / "twistd"), "-n", "--pidfile=", "mercure",
            "--listen", f"tcp:{port}:interface=127.0.0.1",
            "--transport", transport, "--publisher-jwt-key", KEY, "--anonymous",
        ]
    return argv


def _hub_sub(topic: str) -> str:
    return "/.well-known/mercure?topic=" + quote(topic, safe="")


def hub_spec(name: str, transport: str, processes: int = 1, note: str = "",
             source: Path | None = None) -> Spec:
    """This hub; ``source`` runs another tree's ``src`` (a before/after run)."""
    env = {"PYTHONPATH": str(source / "src")} if source is not None else {}
    return Spec(name, "hub", _hub_argv(transport), _hub_sub, "/.well-known/mercure",
                templates=True, processes=processes, cwd=ROOT, note=note, env=env)


def export_revision(revision: str) -> Path:
    """``src`` of a git revision, exported (read-only use of the repository)."""
    sha = subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    target = PEERS / f"rev-{sha}"
    if not (target / "src").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "src"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def baseline_specs() -> list[Spec]:
    node = shutil.which("node") or "/usr/bin/node"
    return [
        Spec("raw-twisted", "baseline",
             lambda port: [str(ROOT / ".venv" / "bin" / "python"), str(SERVERS / "raw_twisted.py"), str(port), KEY],
             lambda t: "/sub?topic=" + quote(t, safe=""), "/pub", count_path="/count",
             note="bare twisted.web Resource: SSE broadcast + HS256-checked POST"),
        Spec("raw-node", "baseline",
             lambda port: [node, str(SERVERS / "raw_node.js"), str(port), KEY],
             lambda t: "/sub?topic=" + quote(t, safe=""), "/pub", count_path="/count",
             note=f"node {subprocess.run([node, '--version'], capture_output=True, text=True).stdout.strip()} http module"),
    ]


def peer_specs() -> list[Spec]:
    venv_python = str(PEERS / "venv" / "bin" / "python")
    node = shutil.which("node") or "/usr/bin/node"
    return [
        Spec("flask-mercure-sse", "peer",
             lambda port: [venv_python, "-m", "flask_mercure_sse.server", "--host", "127.0.0.1",
                           "--port", str(port), "--publisher-secret", KEY, "--subscriber-secret", KEY,
                           "--allow-anonymous", "--no-subscriptions"],
             _hub_sub, "/.well-known/mercure", max_rounds=1,
             note="its own server (gevent WSGIServer), exact topics only; one round only: it "
                  "opens about 16 subscriptions a second, so each phase waits for the budget"),
        Spec("mercure-npm", "peer",
             lambda port: [node, str(SERVERS / "node_mercure.js"), str(port), KEY],
             lambda t: "/hub?topic=" + quote(t, safe=""), "/hub", templates=True,
             env={"NODE_PATH": str(PEERS / "node_modules")},
             note="mercure 0.1.0 (older draft: topic + data, targets) on Express, with two "
                  "bugs of that only release worked around in the runner from outside its "
                  "source (as published it answers 401 to everything): the SSE connection "
                  "handler bound to its hub, and the verified token's payload handed to the "
                  "grant checks (servers/node_mercure.js says which lines)"),
        Spec("sse-starlette", "peer",
             lambda port: [venv_python, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                           "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
                           "--backlog", "4096", "--app-dir", str(SERVERS), "starlette_app:app"],
             lambda t: "/sub?topic=" + quote(t, safe=""), "/pub", count_path="/count",
             env={"BENCH_KEY": KEY}, note="sse-starlette EventSourceResponse on uvicorn (uvloop, httptools)"),
    ]


def peer_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    python = PEERS / "venv" / "bin" / "python"
    if python.exists():
        out = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) "
             "for n in ['flask-mercure-sse', 'sse-starlette', 'starlette', 'uvicorn', 'gevent', 'flask']}))"],
            capture_output=True, text=True)
        if out.returncode == 0:
            versions.update(json.loads(out.stdout))
    package = PEERS / "node_modules" / "mercure" / "package.json"
    if package.exists():
        versions["mercure (npm)"] = json.loads(package.read_text())["version"]
    return versions


@dataclass
class Redis:
    """A redis-server of the suite's own, on a free loopback port."""

    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "flushall"], capture_output=True, check=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def start_redis(workdir: Path) -> Redis:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found (apt-get install redis-server)")
    port = free_port()
    log_path = workdir / "redis.log"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--maxclients", "1000"],
        stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, preexec_fn=_raise_limits)
    _wait_listening(port, proc, log_path)
    return Redis(port, proc)
