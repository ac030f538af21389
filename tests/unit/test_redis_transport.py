"""What only the Redis transport does: several nodes on one Redis, bounded
keys, trimming, presence of a dead node, Redis going away and coming back.

Every test runs against a real ``redis-server`` of its own (the
``redis_server`` fixture, tests/redis_server.py) on the real reactor.  What
Redis holds is read with the fixture's own RESP client, never through the
client under test.  The contract every transport keeps is in
test_transport_contract.py, which runs on Redis too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.logger import globalLogPublisher, formatEvent

from mercure_twisted.config import ConfigError, HubConfig
from mercure_twisted.transports import SubscriptionRecord, TransportUnavailable, transport_from_url
from mercure_twisted.transports._redis import RedisTransport
from mercure_twisted.transports._redis_url import parse_redis_url
from mercure_twisted.update import Update

from ..redis_server import RedisServer
from ._transport_backends import WAIT_BOUND, sleep, wait_until


def update(id: str, topic: str = "https://example.com/t", **fields: Any) -> Update:
    return Update(topics=(topic,), id=id, **fields)


class Nodes:
    """Transports (cluster nodes) made for one test, stopped at its end."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.transports: list[RedisTransport] = []

    async def start(self, query: str = "", **settings: Any) -> tuple[RedisTransport, list[Update]]:
        url = self.server.url(query=query)
        transport = RedisTransport(parse_redis_url(url), reactor=reactor, **settings)
        self.transports.append(transport)
        dispatched: list[Update] = []
        await transport.start(dispatched.append)
        return transport, dispatched


@pytest.fixture
def nodes(redis_server: RedisServer) -> Iterator[Nodes]:
    n = Nodes(redis_server)
    yield n
    for transport in n.transports:
        pytest_twisted.blockon(transport.stop())


def ids(updates: Any) -> list[str]:
    return [u.id for u in updates]


async def until_reachable(transport: RedisTransport) -> None:
    deadline = reactor.seconds() + WAIT_BOUND
    while True:
        try:
            await transport.ping()
            return
        except TransportUnavailable:
            if reactor.seconds() > deadline:
                raise AssertionError(f"Redis still unreachable after {WAIT_BOUND}s")
            await sleep(0.02)


# -- the URL -----------------------------------------------------------------------


def test_url_settings() -> None:
    s = parse_redis_url(
        "rediss://user:p%40ss@redis.example:6380/3?prefix=shop.hub&presence_ttl=12&timeout=2.5"
    )
    assert (s.host, s.port, s.db, s.username, s.password, s.tls) == (
        "redis.example", 6380, 3, "user", "p@ss", True)
    assert (s.prefix, s.presence_ttl, s.timeout) == ("shop.hub", 12.0, 2.5)
    assert "p@ss" not in repr(s) and s.address == "rediss://redis.example:6380/3"
    d = parse_redis_url("redis://127.0.0.1")
    assert (d.port, d.db, d.password, d.tls, d.prefix) == (6379, 0, None, False, "mercure")
    assert parse_redis_url("redis://:secret@[::1]:7000/0").host == "::1"


@pytest.mark.parametrize("url, message", [
    ("redis://", "has no host"),
    ("redis://:secret@/0", "has no host"),
    ("redis://h:port/0", "invalid redis transport URL"),
    ("redis://h:6379/zero", "must be a database number"),
    ("redis://h/0?prefix=", "prefix '' must be"),
    ("redis://h/0?prefix=a%20b", "prefix 'a b' must be"),
    ("redis://h/0?presence_ttl=0.5", "presence_ttl must be at least 1"),
    ("redis://h/0?timeout=soon", "timeout='soon' is not a number"),
    ("redis://h/0?ca=/etc/hosts", "ca= only applies to rediss://"),
    ("rediss://h/0?ca=/nonexistent.pem", "does not exist"),
    ("redis://h/0?db=1", "unknown option 'db'"),
    ("redis://h/0?prefix=a&prefix=b", "given twice"),
])
def test_a_url_that_cannot_work_is_one_config_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        transport_from_url(HubConfig(transport=url), reactor=reactor)
    assert "\n" not in str(raised.value)
    assert "secret" not in str(raised.value)


# -- several nodes ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_every_node_dispatches_every_update_once_in_the_same_order(nodes: Nodes) -> None:
    a, seen_by_a = await nodes.start()
    b, seen_by_b = await nodes.start()
    # Both nodes publish at once, interleaved, without waiting.
    published = await gatherResults(
        [(a if i % 2 else b).publish(update(f"u{i}")) for i in range(100)]
    )
    order = sorted(published, key=lambda u: u.position)
    await wait_until(lambda: len(seen_by_a) == len(seen_by_b) == 100, "100 dispatches on each")
    assert ids(seen_by_a) == ids(seen_by_b) == ids(order)
    assert [u.position for u in seen_by_a] == [u.position for u in order]
    # And each node's history is the same shared one.
    assert ids((await b.history("u1")).updates) == ids(order[ids(order).index("u1") + 1:])
    assert a.last_event_id() == b.last_event_id() == order[-1].id


@pytest_twisted.ensureDeferred
async def test_a_node_started_later_dispatches_only_what_comes_after(nodes: Nodes) -> None:
    a, _ = await nodes.start()
    await a.publish(update("before"))
    b, seen_by_b = await nodes.start()
    assert b.last_event_id() == "before"
    await a.publish(update("after"))
    await wait_until(lambda: len(seen_by_b) == 1, "one dispatch on the new node")
    assert ids(seen_by_b) == ["after"]


@pytest_twisted.ensureDeferred
async def test_key_prefixes_keep_hubs_apart(nodes: Nodes) -> None:
    shop, seen_by_shop = await nodes.start(query="prefix=shop")
    blog, seen_by_blog = await nodes.start(query="prefix=blog")
    await shop.publish(update("s1"))
    await blog.publish(update("b1"))
    await wait_until(lambda: len(seen_by_shop) == len(seen_by_blog) == 1, "one each")
    assert ids(seen_by_shop) == ["s1"] and ids(seen_by_blog) == ["b1"]
    assert not (await shop.history("b1")).found


# -- bounded keys ---------------------------------------------------------------------


def key_sizes(server: RedisServer, prefix: str = "mercure") -> tuple[int, int, int]:
    return (
        server.command("XLEN", f"{prefix}:updates"),
        server.command("HLEN", f"{prefix}:ids"),
        server.command("LLEN", f"{prefix}:order"),
    )


@pytest_twisted.ensureDeferred
async def test_stream_and_id_index_stay_bounded(nodes: Nodes) -> None:
    transport, _ = await nodes.start(history_size=5, min_stream_length=50)
    for start in range(0, 1000, 100):
        await gatherResults([transport.publish(update(f"u{i}")) for i in range(start, start + 100)])
    stream, index, order = key_sizes(nodes.server)
    # MAXLEN ~ trims whole stream nodes (100 entries): never far above the bound.
    assert 50 <= stream <= 50 + 100
    assert index == order == stream
    # History is exactly the newest history_size, whatever MAXLEN ~ left.
    assert ids((await transport.history("earliest")).updates) == [f"u{i}" for i in range(995, 1000)]
    assert not (await transport.history("u994")).found
    assert transport.history_length() == 5


@pytest_twisted.ensureDeferred
async def test_a_reused_id_moves_to_its_next_occurrence_when_trimmed(nodes: Nodes) -> None:
    transport, _ = await nodes.start(history_size=1000, min_stream_length=1)
    await transport.publish(update("x"))
    await gatherResults([transport.publish(update(f"a{i}")) for i in range(150)])
    for i in range(20):
        await transport.publish(update("x"))
        await transport.publish(update(f"b{i}"))
    assert ids((await transport.history("x")).updates)[0] == "a0"
    # A node with a small bound trims the stream (MAXLEN ~ drops whole
    # stream nodes, so which "x" survive is read back from Redis).
    small = RedisTransport(parse_redis_url(nodes.server.url()), reactor=reactor,
                           history_size=1, min_stream_length=1)
    nodes.transports.append(small)
    await small.start(lambda u: None)
    await small.publish(update("trigger"))
    left = [(sid, dict(zip(f[::2], f[1::2]))[b"i"].decode())
            for sid, f in nodes.server.command("XRANGE", "mercure:updates", "-", "+")]
    assert ("a0" not in [i for _, i in left]) and left[-1][1] == "trigger"
    stream, index, order = key_sizes(nodes.server)
    assert order == stream == len(left) and index == len({i for _, i in left})
    xs = [sid for sid, i in left if i == "x"]
    assert xs, "the trim is expected to keep some of the last x's"
    assert nodes.server.command("HGET", "mercure:ids", "x") == xs[0] + b" %d" % len(xs)
    after_first_x = [i for _, i in left][[sid for sid, _ in left].index(xs[0]) + 1:]
    history = await transport.history("x")
    assert history.found and ids(history.updates) == after_first_x


@pytest_twisted.ensureDeferred
async def test_retention_by_age_in_history_and_in_redis(nodes: Nodes) -> None:
    transport, _ = await nodes.start(history_max_age=1.0, min_stream_age=0.0)
    await transport.publish(update("old"))
    (stored,) = nodes.server.command("XRANGE", "mercure:updates", "-", "+")
    old_ms = int(stored[0].split(b"-")[0])

    def redis_ms() -> int:
        seconds, micros = nodes.server.command("TIME")
        return int(seconds) * 1000 + int(micros) // 1000

    await wait_until(lambda: redis_ms() > old_ms + 1100, "'old' to be over 1 s old")
    await transport.publish(update("young"))
    history = await transport.history("earliest")
    assert "old" not in ids(history.updates)
    assert not (await transport.history("old")).found
    # The periodic trim (every second here) removes it from Redis too, index included.
    await wait_until(
        lambda: nodes.server.command("HGET", "mercure:ids", "old") is None, "'old' trimmed")
    assert key_sizes(nodes.server)[1:] == (
        nodes.server.command("XLEN", "mercure:updates"),) * 2


# -- presence --------------------------------------------------------------------------


RECORD = SubscriptionRecord("urn:uuid:ghost", "08", "exact", "https://example.com/ghost", {"u": 1})

GHOST_NODE = textwrap.dedent("""
    import sys
    from twisted.internet import reactor
    from mercure_twisted.transports import SubscriptionRecord
    from mercure_twisted.transports._redis import RedisTransport
    from mercure_twisted.transports._redis_url import parse_redis_url

    transport = RedisTransport(parse_redis_url(sys.argv[1]), reactor=reactor)

    def started(_):
        transport.presence.add("urn:uuid:ghost", (SubscriptionRecord(
            "urn:uuid:ghost", "08", "exact", "https://example.com/ghost", {"u": 1}),))
        print("ready", flush=True)

    reactor.callWhenRunning(lambda: transport.start(lambda u: None).addCallback(started))
    reactor.run()
""")


@pytest_twisted.ensureDeferred
async def test_a_killed_node_leaves_no_ghost_subscribers(nodes: Nodes, tmp_path: Path) -> None:
    observer, _ = await nodes.start(query="presence_ttl=1")
    ghost = subprocess.Popen(
        [sys.executable, "-c", GHOST_NODE, nodes.server.url(query="presence_ttl=1")],
        stdout=subprocess.PIPE, cwd=tmp_path,
    )
    try:
        assert ghost.stdout is not None
        assert ghost.stdout.readline() == b"ready\n"
        await wait_until_listed(observer, [RECORD])
        os.kill(ghost.pid, signal.SIGKILL)  # no stop(), no cleanup
        ghost.wait(WAIT_BOUND)
        # Gone within the TTL (1 s here), by expiry alone.
        await wait_until_listed(observer, [])
    finally:
        if ghost.poll() is None:
            ghost.kill()
            ghost.wait()


async def wait_until_listed(transport: RedisTransport, expected: list[SubscriptionRecord]) -> None:
    deadline = reactor.seconds() + WAIT_BOUND
    while (active := await transport.presence.active()) != expected:
        if reactor.seconds() > deadline:
            raise AssertionError(f"presence is {active}, not {expected}, after {WAIT_BOUND}s")
        await sleep(0.02)


@pytest_twisted.ensureDeferred
async def test_a_stopped_node_withdraws_its_subscribers_at_once(nodes: Nodes) -> None:
    a, _ = await nodes.start()
    b, _ = await nodes.start()
    b.presence.add(RECORD.subscriber, (RECORD,))
    await wait_until_listed(a, [RECORD])
    await b.stop()
    nodes.transports.remove(b)
    assert await a.presence.active() == []


# -- Redis goes away and comes back ------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_redis_restart_publish_fails_fast_then_recovers(nodes: Nodes) -> None:
    a, seen_by_a = await nodes.start()
    b, seen_by_b = await nodes.start()
    a.presence.add(RECORD.subscriber, (RECORD,))
    await a.publish(update("before"))
    await wait_until(lambda: len(seen_by_b) == 1, "'before' on b")
    nodes.server.stop()
    await wait_until(lambda: not a._main.connected, "a to notice")
    with pytest.raises(TransportUnavailable):
        await a.publish(update("lost"))
    with pytest.raises(TransportUnavailable):
        await b.ping()
    with pytest.raises(TransportUnavailable):
        await b.history("before")
    with pytest.raises(TransportUnavailable):
        await b.presence.active()
    nodes.server.start()  # same port, empty (no persistence)
    await until_reachable(a)
    await until_reachable(b)
    # Presence is written again from each node's own records.
    await wait_until_listed(b, [RECORD])
    # Readers reconnect by themselves: updates published now reach both.
    await wait_until(lambda: b._reader.connected and a._reader.connected, "readers back")
    await b.publish(update("after"))
    await wait_until(lambda: len(seen_by_a) == len(seen_by_b) == 2, "'after' on both")
    assert ids(seen_by_a) == ids(seen_by_b) == ["before", "after"]
    assert a.missed == b.missed == 0  # an emptied log is a restart, not a gap


@pytest_twisted.ensureDeferred
async def test_a_log_started_again_behind_the_reader_is_read_from_its_beginning(
    nodes: Nodes,
) -> None:
    """Redis back empty with a clock behind the old one: new stream ids are
    smaller than the last one a reader saw, and must still be delivered."""
    a, seen_by_a = await nodes.start()
    await a.publish(update("before"))
    await wait_until(lambda: ids(seen_by_a) == ["before"], "'before'")
    nodes.server.stop()
    nodes.server.start()
    # An entry as a node writes them, but with the smallest possible id.
    nodes.server.command("XADD", "mercure:updates", "1-1", "i", "behind", "n", "1",
                         "u", '{"t":["https://example.com/t"],"d":"x"}')
    await wait_until(lambda: ids(seen_by_a) == ["before", "behind"], "the entry behind")
    await until_reachable(a)
    published = await a.publish(update("after"))
    await wait_until(lambda: ids(seen_by_a) == ["before", "behind", "after"], "'after'")
    assert published.position > seen_by_a[1].position == (1, 1)
    assert a.last_event_id() == "after" and a.missed == 0


@pytest_twisted.ensureDeferred
async def test_a_reader_that_lost_its_connection_resumes_without_missing_updates(
    nodes: Nodes,
) -> None:
    a, seen_by_a = await nodes.start()
    b, _ = await nodes.start()
    await b.publish(update("first"))
    await wait_until(lambda: len(seen_by_a) == 1, "'first' on a")
    # Cut a's reader connection (only that one) while b keeps publishing.
    (reader,) = [
        line for line in nodes.server.command("CLIENT", "LIST").decode().splitlines()
        if f"name=mercure:{a.node}:reader " in line
    ]
    client_id = reader.split()[0].removeprefix("id=")
    assert nodes.server.command("CLIENT", "KILL", "ID", client_id) == 1
    published = [await b.publish(update(f"m{i}")) for i in range(50)]
    await wait_until(lambda: len(seen_by_a) == 51, "50 more on a")
    assert ids(seen_by_a) == ["first"] + ids(published)
    assert a.missed == 0


@pytest_twisted.ensureDeferred
async def test_a_reader_that_falls_behind_the_trim_says_exactly_how_many_it_missed(
    nodes: Nodes,
) -> None:
    a, _ = await nodes.start(history_size=1, min_stream_length=1)
    b, seen_by_b = await nodes.start(history_size=1, min_stream_length=1)
    await a.publish(update("first"))
    await wait_until(lambda: ids(seen_by_b) == ["first"], "'first' on b")
    # b's reader stops reading (a stalled node) while a publishes far more
    # than the stream keeps (MAXLEN ~ 1).
    assert b._reader.protocol is not None
    b._reader.protocol.transport.pauseProducing()
    names = [f"u{i}" for i in range(600)]
    for start in range(0, 600, 100):
        await gatherResults([a.publish(update(n)) for n in names[start:start + 100]])
    b._reader.protocol.transport.resumeProducing()
    await wait_until(lambda: seen_by_b and seen_by_b[-1].id == "u599", "b to catch up")
    delivered = ids(seen_by_b)[1:]
    assert b.missed > 0 and len(delivered) + b.missed == 600
    # What b delivered is in order, without duplicates; the rest was reported.
    assert delivered == [n for n in names if n in set(delivered)]


@pytest_twisted.ensureDeferred
async def test_redis_unreachable_at_start_the_node_starts_and_connects_later(
    redis_server: RedisServer,
) -> None:
    redis_server.stop()
    transport = RedisTransport(parse_redis_url(redis_server.url(query="timeout=0.5")),
                               reactor=reactor)
    dispatched: list[Update] = []
    try:
        await transport.start(dispatched.append)  # does not hang, does not fail
        with pytest.raises(TransportUnavailable):
            await transport.publish(update("refused"))
        redis_server.start()
        await until_reachable(transport)
        await transport.publish(update("stored"))
        await wait_until(lambda: ids(dispatched) == ["stored"], "the dispatch")
    finally:
        await transport.stop()


@pytest_twisted.ensureDeferred
async def test_a_password_works_and_is_never_logged(tmp_path: Path) -> None:
    secret = "s3cret-Redis-pass"
    server = RedisServer(tmp_path / "auth", password=secret).start()
    logged: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        logged.append(formatEvent(event) + repr(event))

    globalLogPublisher.addObserver(observe)
    try:
        good = RedisTransport(parse_redis_url(server.url()), reactor=reactor)
        await good.start(lambda u: None)
        assert (await good.publish(update("ok"))).position is not None
        await good.stop()
        wrong = RedisTransport(
            parse_redis_url(f"redis://:wrong-{secret}@127.0.0.1:{server.port}/0?timeout=0.5"),
            reactor=reactor,
        )
        await wrong.start(lambda u: None)
        with pytest.raises(TransportUnavailable):
            await wrong.ping()
        await wrong.stop()
    finally:
        globalLogPublisher.removeObserver(observe)
        server.stop()
    assert any("WRONGPASS" in line or "invalid password" in line for line in logged)
    assert not [line for line in logged if secret in line]


@pytest_twisted.ensureDeferred
async def test_a_foreign_stream_entry_is_skipped_not_fatal(nodes: Nodes) -> None:
    transport, dispatched = await nodes.start()
    nodes.server.command("XADD", "mercure:updates", "*", "garbage", "1")
    nodes.server.command("XADD", "mercure:updates", "*", "i", "x", "u", "{not json")
    await transport.publish(update("good"))
    await wait_until(lambda: len(dispatched) == 1, "the good update")
    assert ids(dispatched) == ["good"]
    assert ids((await transport.history("earliest")).updates) == ["good"]


# -- the example ------------------------------------------------------------------------


def test_the_cluster_example_names_a_redis_and_a_shared_port_that_work() -> None:
    from twisted.internet.endpoints import serverFromString

    from mercure_twisted.config import load_config

    conf = Path(__file__).resolve().parents[2] / "conf" / "cluster.toml"
    config = load_config(flags={}, environ={}, toml_path=str(conf))
    settings = parse_redis_url(config.transport)
    assert (settings.prefix, settings.presence_ttl) == ("mercure", 30.0)
    (listen,) = config.listen
    assert type(serverFromString(reactor, listen)).__name__ == "ReusePortEndpoint"


# -- TLS (rediss://) ----------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost`` (and 127.0.0.1) and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "redis.crt", directory / "redis.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


@pytest_twisted.ensureDeferred
async def test_rediss_with_a_pinned_ca(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls")
    server = RedisServer(tmp_path / "tls-redis", tls=(cert, key)).start()
    try:
        trusted = RedisTransport(parse_redis_url(server.url(query=f"ca={cert}")), reactor=reactor)
        dispatched: list[Update] = []
        await trusted.start(dispatched.append)
        await trusted.publish(update("over TLS"))
        await wait_until(lambda: ids(dispatched) == ["over TLS"], "the dispatch over TLS")
        await trusted.stop()
        # Without the CA, the system's trust refuses the certificate: the
        # node runs but refuses publishes, as when Redis is unreachable.
        untrusted = RedisTransport(parse_redis_url(server.url(query="timeout=0.5")),
                                   reactor=reactor)
        await untrusted.start(lambda u: None)
        with pytest.raises(TransportUnavailable):
            await untrusted.publish(update("refused"))
        await untrusted.stop()
    finally:
        server.stop()


def xread_calls(server: RedisServer) -> int:
    stats = server.command("INFO", "commandstats")
    text = stats.decode() if isinstance(stats, bytes) else str(stats)
    for line in text.splitlines():
        if line.startswith("cmdstat_xread:"):
            return int(line.split("calls=", 1)[1].split(",", 1)[0])
    return 0


@pytest_twisted.ensureDeferred
async def test_a_busy_stream_is_read_once_per_delay_and_its_updates_dispatched_together(
    nodes: Nodes,
) -> None:
    transport, dispatched = await nodes.start(busy_read_delay=1.0)
    await transport.publish(update("first"))
    await wait_until(lambda: len(dispatched) == 1, "the first update")
    # The reader is now waiting out the delay (its read found an update):
    # the five published meanwhile come back in one read.
    before = xread_calls(nodes.server)
    for i in range(5):
        await transport.publish(update(f"u{i}"))
    await wait_until(lambda: len(dispatched) == 6, "the five others")
    assert ids(dispatched) == ["first", "u0", "u1", "u2", "u3", "u4"]
    assert xread_calls(nodes.server) - before <= 1
