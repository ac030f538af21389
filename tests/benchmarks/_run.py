"""The benchmark run: every target, every figure, several rounds.

One round of one target starts a fresh process (or cluster), then:

1. warms up, measures authenticated publishes/s with no subscriber and
   takes the resident memory as the baseline;
2. opens ``large`` idle subscribers of one topic (probes spread among
   them), checks the server's own count, takes the memory again (memory per
   idle subscriber) and times ``publishes`` updates;
3. opens more idle subscribers up to ``max_held``: how many one process
   holds, and the memory per subscriber there;
4. after closing all, opens ``small`` subscribers, times the publishes,
   then lets every subscriber read and measures publishes/s and delivered
   events/s with them;
5. (matching) ``large`` subscribers on distinct topics plus ``templates``
   URI-template subscribers plus ``small`` on the published topic, and times
   the publishes again.

The round's figures are medians over rounds with min and max.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import _load, _targets
from ._load import Crowd, Latencies, SourceAddresses, Target


@dataclass
class Settings:
    rounds: int = 3
    small: int = 1_000
    large: int = 10_000
    max_held: int = 19_000
    templates: int = 1_000
    probes: int = 100
    publishes: int = 20
    seconds: float = 5.0
    publishers: int = 8
    connect_budget: float = 180.0  # seconds to open one phase's subscriptions
    phases: tuple[str, ...] = ("rate", "large", "max", "small", "matching")


@dataclass
class Report:
    settings: Settings
    rounds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


async def _settle_count(running: _targets.Running, expected: int, timeout: float = 20.0,
                        exact: bool = False) -> tuple[int | None, str]:
    """Wait for the server to report ``expected`` subscribers (at least, or at most 0)."""
    deadline = time.monotonic() + timeout
    while True:
        count, source = await asyncio.to_thread(running.server_count)
        if count is None:
            return None, source
        if (expected == 0 and count <= 0) or (expected and count >= expected) or time.monotonic() > deadline:
            return count, source
        await asyncio.sleep(0.5)


async def _close(crowd: Crowd, running: _targets.Running, addresses: SourceAddresses) -> None:
    crowd.close()
    addresses.skip()
    await _settle_count(running, 0, timeout=30)
    await asyncio.sleep(0.5)


def _stats(samples: list[int]) -> dict[str, float]:
    return {
        "p50": _load.percentile(samples, 0.50) / 1e6,
        "p99": _load.percentile(samples, 0.99) / 1e6,
        "max": max(samples) / 1e6 if samples else float("nan"),
    }


_SPIN = (
    "import time,sys\n"
    "end=time.perf_counter()+float(sys.argv[1]);n=0\n"
    "while time.perf_counter()<end:\n"
    "    for _ in range(10000): n+=1\n"
    "print(n)\n"
)


def parallel_speedup(seconds: float = 1.0) -> float:
    """How much more CPU-bound work two processes do at once than one alone.

    2.0 on two idle cores; less when the machine's cores are shared (other
    users' load, or virtual cores that are one physical core's threads).
    It bounds what a second hub process can add.
    """
    def spin(n: int) -> int:
        procs = [subprocess.Popen([sys.executable, "-c", _SPIN, str(seconds)],
                                  stdout=subprocess.PIPE, text=True) for _ in range(n)]
        return sum(int(p.communicate()[0]) for p in procs)

    before = spin(1)
    two = spin(2)
    one = (before + spin(1)) / 2  # one alone before and after: the load may change
    return two / one if one else 0.0


#: SO_RCVLOWAT of the subscribers counted in the throughput phase.
LOW_WATER = 16 * 1024


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU used during a phase, in cores: the target, the services it uses
    (Redis), this load client, and the whole machine (other users' load
    included, on a shared machine)."""

    def __init__(self, running: _targets.Running, helpers: list[int]) -> None:
        self.running, self.helpers = running, helpers

    def _read(self) -> tuple[float, float, float, float, float]:
        busy, total = _targets.machine_busy_seconds()
        return (time.monotonic(), self.running.cpu_seconds(),
                sum(_targets.cpu_seconds(p) for p in self.helpers), _client_cpu(), busy)

    def start(self) -> None:
        self._start = self._read()

    def stop(self, out: dict[str, Any], prefix: str) -> None:
        end = self._read()
        elapsed = end[0] - self._start[0]
        for i, name in enumerate(("server", "helpers", "client", "machine"), start=1):
            out[f"{prefix}_cpu_{name}"] = (end[i] - self._start[i]) / elapsed


async def one_round(spec: _targets.Spec, settings: Settings, workdir: Path, report: Report,
                    addresses: SourceAddresses, helpers: list[int] | None = None) -> dict[str, Any]:
    for stale in workdir.glob(f"{spec.name}.db*"):
        stale.unlink()
    running = await asyncio.to_thread(_targets.start, spec, workdir)
    out: dict[str, Any] = {}
    targets = [Target(spec.name, port, spec.subscribe_path, spec.publish_path, _targets.TOKEN)
               for port in running.ports]
    topic = _targets.TOPIC
    latencies = Latencies()
    crowd = Crowd()

    def check(phase: str, held: int, count: int | None, source: str) -> None:
        entry = {"target": spec.name, "phase": phase, "client": held, "server": count,
                 "source": source, "failed": crowd.failed, "statuses": dict(crowd.statuses)}
        entry["lost"] = count is not None and count < held
        report.checks.append(entry)
        if entry["lost"]:
            log(f"  !! {spec.name} {phase}: client holds {held}, server counts {count}")

    async def open_crowd(n: int, topics: Callable[[int], str], probes: int, phase: str) -> int:
        crowd.failed = 0
        crowd.statuses = {}
        t0 = time.monotonic()
        before = crowd.open_count()
        await _load.connect(targets, crowd, n, topics, addresses, probes=probes, latencies=latencies,
                            budget=settings.connect_budget)
        held = crowd.open_count()
        count, source = await _settle_count(running, held)
        log(f"  {phase}: opened {held - before}/{n} in {time.monotonic() - t0:.1f}s, holding {held}, "
            f"server counts {count} ({source})")
        check(phase, held, count, source)
        return held

    async def timed(prefix: str) -> None:
        publisher = _load.Publisher(targets[0])
        samples, missing = await _load.timed_publishes(
            publisher, topic, latencies, len(crowd.probes), settings.publishes)
        publisher.close()
        for key, value in _stats(samples).items():
            out[f"{prefix}_{key}"] = value
        out[f"{prefix}_missing"] = missing
        out[f"{prefix}_probes"] = len(crowd.probes)
        log(f"  {prefix}: p50 {out[prefix + '_p50']:.1f} ms, p99 {out[prefix + '_p99']:.1f} ms, "
            f"max {out[prefix + '_max']:.1f} ms, {missing} probe arrivals missing")

    try:
        # 0. warm up
        await _load.connect(targets, crowd, 10, lambda i: topic, addresses, drain=True)
        if not crowd.open_count():
            raise RuntimeError(f"every subscription refused (HTTP status: count) {crowd.statuses}")
        publisher = _load.Publisher(targets[0])
        deadline = time.monotonic() + 15  # a hub may answer 503 until its transport is up
        ok = 0
        while ok < 5:
            status = await publisher.publish(topic, _load.event_data()[1])
            if status == 200:
                ok += 1
            elif status != 503 or time.monotonic() > deadline:
                raise RuntimeError(f"an authenticated publish answered {status}")
            else:
                await asyncio.sleep(0.5)
        publisher.close()
        await _close(crowd, running, addresses)
        if "rate" in settings.phases:
            rate, errors = await _load.publish_rate(targets, topic, settings.seconds, settings.publishers)
            out["rate_0"], out["rate_0_errors"] = rate, errors
            log(f"  publishes/s with no subscriber: {rate:.0f} ({errors} errors)")
        await asyncio.sleep(1)
        rss0 = running.rss_bytes()
        out["rss_base"] = rss0
        if "large" in settings.phases:
            held = await open_crowd(settings.large, lambda i: topic, settings.probes, "large")
            await asyncio.sleep(1)
            rss1 = running.rss_bytes()
            out["held_large"] = held
            out["mem_per_sub"] = (rss1 - rss0) / max(1, held)
            log(f"  memory per idle subscriber at {held}: {out['mem_per_sub'] / 1024:.2f} KB")
            await timed("large")
            complete = held >= settings.large * 0.99
            if not complete:
                out["incomplete"] = f"opened {held} of {settings.large} subscribers"
                log(f"  {spec.name} could not open {settings.large}: skipping the larger phases")
            if "max" in settings.phases and settings.max_held > settings.large and complete:
                await open_crowd(settings.max_held - settings.large, lambda i: topic, 0, "max")
                await asyncio.sleep(1)
                count, _ = await asyncio.to_thread(running.server_count)
                held = crowd.open_count()
                out["held_max"] = min(held, count) if count is not None else held
                out["mem_per_sub_max"] = (running.rss_bytes() - rss0) / max(1, held)
                log(f"  held {out['held_max']} of {settings.max_held}, "
                    f"{out['mem_per_sub_max'] / 1024:.2f} KB each")
            await _close(crowd, running, addresses)
        if "small" in settings.phases:
            await open_crowd(settings.small, lambda i: topic, settings.probes, "small")
            await timed("small")
            for holder in crowd.holders:
                # Probes keep reading each event as it comes; the others
                # read in 16 KiB gulps (see Holder.start_draining).
                holder.start_draining(1 if isinstance(holder, _load.Probe) else LOW_WATER)
                holder.received = 0
            if len(running.procs) > 1:
                # Right before the phase that a second process should speed up.
                out["parallel_speedup"] = await asyncio.to_thread(parallel_speedup)
                log(f"  two CPU-bound processes do {out['parallel_speedup']:.2f}x the work of one")
            start = time.monotonic()
            meter = CpuMeter(running, helpers or [])
            meter.start()
            rate, errors = await _load.publish_rate(targets, topic, settings.seconds, settings.publishers)
            meter.stop(out, "small")
            for holder in crowd.holders:
                holder.finish_draining()
            await asyncio.sleep(0.5)  # let the last deliveries arrive
            elapsed = time.monotonic() - start
            delivered = sum(h.received for h in crowd.holders if not isinstance(h, _load.Probe))
            out["rate_small"], out["rate_small_errors"] = rate, errors
            out["delivered_small"] = delivered / elapsed
            still = crowd.open_count()
            out["rate_small_dropped"] = settings.small - still
            latencies.samples.clear()
            log(f"  with {settings.small} subscribers: {rate:.0f} publishes/s ({errors} errors), "
                f"{out['delivered_small']:.0f} events/s delivered, {settings.small - still} dropped; "
                f"CPU cores: server {out['small_cpu_server']:.2f}, services "
                f"{out['small_cpu_helpers']:.2f}, client {out['small_cpu_client']:.2f}, "
                f"machine {out['small_cpu_machine']:.2f}")
            await _close(crowd, running, addresses)
        if "matching" in settings.phases and spec.topics and "incomplete" not in out:
            templates = settings.templates if spec.templates else 0
            await open_crowd(settings.large, lambda i: f"https://example.com/items/{i}", 0, "matching-distinct")
            if templates:
                await open_crowd(templates, lambda i: f"https://example.com/feeds/{i}/{{id}}", 0,
                                 "matching-templates")
            else:
                await open_crowd(settings.templates,
                                 lambda i: f"https://example.com/feeds/{i}/1", 0, "matching-exact-extra")
            await open_crowd(settings.small, lambda i: topic, settings.probes, "matching-topic")
            await timed("matching")
            out["matching_templates"] = templates
            await _close(crowd, running, addresses)
    finally:
        crowd.close()
        alive = running.alive()
        running.stop()
        if not alive:
            out["crashed"] = True
            log(f"  !! {spec.name} died: " + running.log_paths[0].read_text()[-800:])
    return out


def available_specs(include_peers: bool, report: Report, before: str | None = None) -> list[_targets.Spec]:
    specs = [_targets.hub_spec("hub-memory", "memory://")]
    if before:
        source = _targets.export_revision(before)
        specs.append(_targets.hub_spec(f"hub-memory@{source.name[4:]}", "memory://", source=source,
                                       note=f"this hub at revision {source.name[4:]} ({before}), memory://"))
    transports = (_targets.ROOT / "src" / "mercure_twisted" / "transports")
    names = {p.name for p in transports.iterdir()}
    if "_sqlite.py" in names:
        specs.append(_targets.hub_spec("hub-sqlite", "sqlite:///{db}"))
        if before and (source / "src" / "mercure_twisted" / "transports" / "_sqlite.py").exists():
            specs.append(_targets.hub_spec(
                f"hub-sqlite@{source.name[4:]}", "sqlite:///{db}", source=source,
                note=f"this hub at revision {source.name[4:]} ({before}), SQLite"))
    else:
        report.errors["hub-sqlite"] = "no SQLite transport in src/mercure_twisted/transports yet"
    if "_redis.py" in names:
        specs.append(_targets.hub_spec("hub-redis-1", "{redis}"))
        specs.append(_targets.hub_spec("hub-redis-2", "{redis}", processes=2))
    else:
        report.errors["hub-redis"] = "no Redis transport in src/mercure_twisted/transports yet"
    specs += _targets.baseline_specs()
    if include_peers:
        specs += _targets.peer_specs()
    return specs


async def run(settings: Settings, only: list[str] | None, include_peers: bool, workdir: Path,
              json_path: Path, before: str | None = None) -> Report:
    report = Report(settings)
    hard = _load.raise_nofile()
    log(f"open-file limit of the client: {hard}")
    if include_peers:
        report.errors.update(await asyncio.to_thread(_targets.setup_peers, log))
    specs = available_specs(include_peers, report, before)
    if only:
        specs = [s for s in specs if s.name in only or (before and "@" in s.name)]
    addresses = SourceAddresses()
    redis = None
    try:
        ready = []
        on_redis: set[str] = set()
        for spec in specs:
            if "{redis}" in " ".join(spec.argv(0)):
                on_redis.add(spec.name)
            spec = await _materialize(spec, workdir, lambda: redis)
            if redis is None and spec.name in on_redis:
                redis = await asyncio.to_thread(_targets.start_redis, workdir)
            ready.append(spec)
            report.notes[spec.name] = spec.note
            report.rounds[spec.name] = []
        # Rounds outermost: each round visits every target, so that the load
        # other users put on a shared machine is spread over all of them.
        for r in range(settings.rounds):
            for spec in ready:
                rounds = min(settings.rounds, spec.max_rounds or settings.rounds)
                if r >= rounds or spec.name in report.errors:
                    continue
                log(f"{spec.name}: round {r + 1}/{rounds}")
                try:
                    if redis is not None:
                        await asyncio.to_thread(redis.flush)
                    helpers = [redis.proc.pid] if redis is not None and spec.name in on_redis else []
                    result = await one_round(spec, settings, workdir, report, addresses, helpers)
                except Exception as e:  # a target that cannot start or answer
                    log(f"  !! {spec.name}: {e!r}")
                    report.errors[spec.name] = repr(e)[:1500]
                    continue
                report.rounds[spec.name].append(result)
                json_path.write_text(json.dumps(_as_json(report), indent=1))
    finally:
        if redis is not None:
            redis.stop()
    json_path.write_text(json.dumps(_as_json(report), indent=1))
    return report


async def _materialize(spec: _targets.Spec, workdir: Path, redis: Callable[[], Any]) -> _targets.Spec:
    """Fill in the SQLite file and Redis URL placeholders of a hub's transport."""
    argv = spec.argv

    def filled(port: int) -> list[str]:
        r = redis()
        out = []
        for a in argv(port):
            a = a.replace("{db}", str(workdir / f"{spec.name}.db"))
            if r is not None:
                a = a.replace("{redis}", r.url)
            out.append(a)
        return out

    from dataclasses import replace
    return replace(spec, argv=filled)


def _as_json(report: Report) -> dict[str, Any]:
    from dataclasses import asdict
    return {"settings": asdict(report.settings), "rounds": report.rounds, "errors": report.errors,
            "checks": report.checks, "notes": report.notes}


def summarize(values: list[float]) -> tuple[float, float, float] | None:
    values = [v for v in values if v == v]  # drop NaN
    if not values:
        return None
    return statistics.median(values), min(values), max(values)
