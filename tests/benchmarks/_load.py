"""The load client: cheap idle SSE holders, timing probes, publishers.

Everything runs on one asyncio loop (uvloop when installed).  A holder sends
its GET, waits for the response headers and then pauses reading (or, in
drain mode, reads and drops every byte); the client keeps a strong
reference to every transport so that none is collected.  About a hundred
probes, spread across the connection order, parse the stream and time each
benchmark event: a publish carries its send time (``time.monotonic_ns`` of
this process) in its data, and a probe subtracts it from its own clock when
the event arrives.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import resource
import socket
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote

_EVENT = re.compile(rb"data: B(\d+) (\d+) ")


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class SourceAddresses:
    """Loopback source addresses from 127.0.0.2 upward, ``per`` connections each.

    Every phase opens and closes thousands of connections to the same
    server port; a fresh source address per ``per`` connections keeps the
    closed ones' TIME_WAIT ports out of the way.
    """

    def __init__(self, per: int = 10_000) -> None:
        self.per = per
        self._n = 0

    def next(self) -> tuple[str, int]:
        index = 2 + (self._n // self.per) % 250
        self._n += 1
        return (f"127.0.0.{index}", 0)

    def skip(self) -> None:
        """Start the next connections on a new address."""
        self._n = (self._n // self.per + 1) * self.per


class Holder(asyncio.Protocol):
    __slots__ = ("transport", "status", "_buf", "ready", "drain", "closed", "received")

    def __init__(self, request: bytes, ready: asyncio.Future[int], drain: bool) -> None:
        self._buf: bytes | None = request
        self.ready = ready
        self.drain = drain
        self.status = 0
        self.closed = False
        self.received = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        assert self._buf is not None
        self.transport.write(self._buf)  # type: ignore[union-attr]
        self._buf = b""

    def data_received(self, data: bytes) -> None:
        if self._buf is not None:
            self._buf += data
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, rest = self._buf[:end], self._buf[end + 4:]
            self._buf = None
            try:
                self.status = int(head.split(b" ", 2)[1])
            except (IndexError, ValueError):
                self.status = -1
            if not self.ready.done():
                self.ready.set_result(self.status)
            if not self.drain and self.status == 200:
                assert self.transport is not None
                self.transport.pause_reading()
            data = rest
        self.on_body(data)

    def on_body(self, data: bytes) -> None:
        self.received += data.count(b"data: B")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_result(-2)

    def start_draining(self, low_water: int = 1) -> None:
        """Read and count from now on; with ``low_water``, in reads of at least that many bytes.

        ``SO_RCVLOWAT``: the kernel reports the socket readable only once
        that much has arrived, so a throughput phase costs the client one
        read per many events instead of one per event (the client shares
        the machine's cores with the servers it measures).
        ``finish_draining`` reads what is left below the mark.
        """
        self.drain = True
        self._set_low_water(low_water)
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def finish_draining(self) -> None:
        """Back to a read per arrival, picking up what waits below the mark."""
        self._set_low_water(1)
        if self.transport is not None and not self.closed:
            # Re-registers the socket with the loop, which then sees what
            # the new mark makes readable.
            self.transport.pause_reading()
            self.transport.resume_reading()

    def _set_low_water(self, size: int) -> None:
        if self.transport is None or self.closed:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, size)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()


class Probe(Holder):
    __slots__ = ("tail", "on_event")

    def __init__(self, request: bytes, ready: asyncio.Future[int],
                 on_event: Callable[[int, int], None]) -> None:
        super().__init__(request, ready, drain=True)
        self.tail = b""
        self.on_event = on_event

    def on_body(self, data: bytes) -> None:
        now = time.monotonic_ns()
        data = self.tail + data
        last = 0
        for m in _EVENT.finditer(data):
            self.on_event(int(m.group(1)), now - int(m.group(2)))
            last = m.end()
        # Keep an unfinished event line for the next read.
        self.tail = data[max(last, len(data) - 64):]


@dataclass
class Target:
    """How to talk to one server."""

    name: str
    port: int
    subscribe_path: Callable[[str], str]  # topic (or template) -> path with query
    publish_path: str
    token: str
    host: str = "127.0.0.1"


def subscribe_request(target: Target, topic: str) -> bytes:
    return (
        f"GET {target.subscribe_path(topic)} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    ).encode()


@dataclass
class Crowd:
    """Every connection the client holds to one target."""

    holders: list[Holder] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.holders)

    def open_count(self) -> int:
        return sum(1 for h in self.holders if not h.closed and h.status == 200)

    def close(self) -> None:
        for h in self.holders:
            h.close()
        self.holders.clear()
        self.probes.clear()


class Latencies:
    """Arrival times of benchmark events at the probes."""

    def __init__(self) -> None:
        self.samples: dict[int, list[int]] = {}
        self.waiters: dict[int, tuple[int, asyncio.Future[None]]] = {}

    def on_event(self, seq: int, latency_ns: int) -> None:
        got = self.samples.setdefault(seq, [])
        got.append(latency_ns)
        waiter = self.waiters.get(seq)
        if waiter is not None and len(got) >= waiter[0] and not waiter[1].done():
            waiter[1].set_result(None)


async def connect(
    targets: list[Target],
    crowd: Crowd,
    count: int,
    topics: Callable[[int], str],
    addresses: SourceAddresses,
    *,
    probes: int = 0,
    latencies: Latencies | None = None,
    drain: bool = False,
    concurrency: int = 256,
    budget: float = 180.0,
) -> None:
    """Open ``count`` subscriptions; ``probes`` of them, evenly spread, are probes.

    Subscriptions go to ``targets`` in turn (the processes of one cluster).
    Those not open after ``budget`` seconds are given up and counted failed
    (status -4): a server that accepts too slowly is reported, not waited for.
    """
    loop = asyncio.get_running_loop()
    every = count // probes if probes else 0
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            ready: asyncio.Future[int] = loop.create_future()
            target = targets[i % len(targets)]
            request = subscribe_request(target, topics(i))
            protocol: Holder
            if every and i % every == every // 2 and i // every < probes:
                assert latencies is not None
                protocol = Probe(request, ready, latencies.on_event)
            else:
                protocol = Holder(request, ready, drain)
            try:
                await loop.create_connection(
                    lambda: protocol, target.host, target.port, local_addr=addresses.next()
                )
                status = await asyncio.wait_for(ready, 30)
            except (OSError, asyncio.TimeoutError):
                status = -3
            except asyncio.CancelledError:
                protocol.close()
                raise
            crowd.statuses[status] = crowd.statuses.get(status, 0) + 1
            if status == 200:
                crowd.holders.append(protocol)
                if isinstance(protocol, Probe):
                    crowd.probes.append(protocol)
            else:
                crowd.failed += 1
                protocol.close()

    tasks = [asyncio.ensure_future(one(i)) for i in range(count)]
    done, pending = await asyncio.wait(tasks, timeout=budget)
    for task in pending:  # a server that accepts too slowly: report what it held
        task.cancel()
    if pending:
        await asyncio.wait(pending)
        crowd.failed += len(pending)
        crowd.statuses[-4] = crowd.statuses.get(-4, 0) + len(pending)


class Publisher:
    """One keep-alive HTTP/1.1 connection that POSTs updates."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._head = (
            f"POST {target.publish_path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
            f"Authorization: Bearer {target.token}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
        )

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.target.host, self.target.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()

    async def publish(self, topic: str, data: str) -> int:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        body = f"topic={quote(topic, safe='')}&data={quote(data, safe='')}".encode()
        self.writer.write(f"{self._head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        lower = head.lower()
        m = re.search(rb"content-length: *(\d+)", lower)
        if m:
            await self.reader.readexactly(int(m.group(1)))
        elif b"transfer-encoding: chunked" in lower:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        if b"connection: close" in lower:
            self.close()
            self.writer = None
        return status


_sequence = itertools.count(1)
PADDING = "x" * 64  # a payload about the size of a small JSON document


def event_data() -> tuple[int, str]:
    seq = next(_sequence)
    return seq, f"B{seq} {time.monotonic_ns()} {PADDING}"


async def timed_publishes(
    publisher: Publisher, topic: str, latencies: Latencies, probes: int, count: int,
    timeout: float = 10.0, gap: float = 0.05,
) -> tuple[list[int], int]:
    """``count`` publishes one after the other, each awaited at every probe.

    Returns the latency samples (ns) and how many probe arrivals were missing.
    """
    loop = asyncio.get_running_loop()
    samples: list[int] = []
    missing = 0
    for _ in range(count):
        seq, data = event_data()
        done: asyncio.Future[None] = loop.create_future()
        latencies.waiters[seq] = (probes, done)
        status = await publisher.publish(topic, data)
        if status != 200:
            raise RuntimeError(f"publish answered {status}")
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except asyncio.TimeoutError:
            pass
        got = latencies.samples.pop(seq, [])
        latencies.waiters.pop(seq, None)
        missing += max(0, probes - len(got))
        samples.extend(got)
        await asyncio.sleep(gap)
    return samples, missing


async def publish_rate(targets: list[Target], topic: str, seconds: float, connections: int = 8) -> tuple[float, int]:
    """Publishes per second from ``connections`` concurrent keep-alive publishers."""
    publishers = [Publisher(targets[i % len(targets)]) for i in range(connections)]
    await asyncio.gather(*(p.open() for p in publishers))
    for p in publishers:  # warm up each connection
        await p.publish(topic, event_data()[1])
    deadline = time.monotonic() + seconds
    ok = 0
    errors = 0

    async def loop(p: Publisher) -> None:
        nonlocal ok, errors
        while time.monotonic() < deadline:
            status = await p.publish(topic, event_data()[1])
            if status == 200:
                ok += 1
            else:
                errors += 1

    start = time.monotonic()
    await asyncio.gather(*(loop(p) for p in publishers))
    elapsed = time.monotonic() - start
    for p in publishers:
        p.close()
    return ok / elapsed, errors


def percentile(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))
    return float(ordered[index])
