"""What only the Redis hub store does: several nodes on one Redis, keys kept
under the store's prefix, Redis going away, not answering, coming back.

Every test runs against a real ``redis-server`` of its own (the
``redis_server`` fixture, tests/redis_server.py) on the real reactor.  What
Redis holds is read with the fixture's own RESP client, never through the
client under test.  The contract both stores keep is test_hub_store.py,
which runs on Redis too.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults

from mercure_twisted.config import ConfigError
from mercure_twisted.transports._redis import RedisTransport
from mercure_twisted.transports._redis_url import parse_redis_url
from mercure_twisted.update import Update
from websub_bridge.hub._redis_store import ENQUEUED_RETENTION, RedisHubStore
from websub_bridge.hub._store import HubStoreUnavailable, Subscription

from ...redis_server import RedisServer
from .._transport_backends import WAIT_BOUND, wait_until

T = "http://pub.example/topic"
R = TypeVar("R")


def sub(callback: str, topic: str = T, lease: float = 1e9) -> Subscription:
    return Subscription(topic=topic, callback=callback, secret="s", lease_expires=lease,
                        created_at=1.0)


async def bounded(d: Deferred[R]) -> R:
    """``await d``, failing after ``WAIT_BOUND`` instead of hanging."""
    d.addTimeout(WAIT_BOUND, reactor)
    return await d


async def unavailable(d: Deferred[Any]) -> HubStoreUnavailable:
    """The `HubStoreUnavailable` ``d`` fails with (any other outcome, or a
    hang, fails the test); its message is one line."""
    with pytest.raises(HubStoreUnavailable) as raised:
        await bounded(d)
    assert "\n" not in str(raised.value)
    return raised.value


class Nodes:
    """Stores on one Redis (each one a cluster node), closed at the test's end."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.stores: list[RedisHubStore] = []

    async def start(self, query: str = "", key_prefix: str | None = "t:websub:",
                    server: RedisServer | None = None) -> RedisHubStore:
        url = (server or self.server).url(query=query)
        store = RedisHubStore.from_url(url, reactor, key_prefix=key_prefix)
        self.stores.append(store)
        await bounded(store.start())
        return store


@pytest.fixture
def nodes(redis_server: RedisServer) -> Iterator[Nodes]:
    n = Nodes(redis_server)
    yield n
    for store in n.stores:
        pytest_twisted.blockon(store.close())


def keys(server: RedisServer) -> list[str]:
    return sorted(k.decode() for k in server.command("KEYS", "*"))


# -- several nodes ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_two_nodes_enqueuing_the_same_updates_at_once_queue_each_once(nodes: Nodes) -> None:
    a = await nodes.start()
    b = await nodes.start()
    callbacks = [f"http://s{i}.example/" for i in range(3)]
    for cb in callbacks:
        await a.put_subscription(sub(cb))
    # Every update is offered by both nodes, all calls in flight at once.
    counts = await bounded(gatherResults([
        node.enqueue(f"u{i}", T, b"x", "text/plain", 10.0)
        for i in range(20) for node in (a, b, b, a)
    ]))
    assert sum(counts) == 20 * 3
    assert sorted(set(counts)) == [0, 3]  # each update queued whole by one call
    assert await a.queue_depth() == await b.queue_depth() == 60
    claimed = await b.claim(10.0, 100, 30.0)
    assert sorted((d.update_id, d.callback) for d in claimed) == sorted(
        (f"u{i}", cb) for i in range(20) for cb in callbacks)


@pytest_twisted.ensureDeferred
async def test_two_nodes_claiming_at_once_never_get_the_same_delivery(nodes: Nodes) -> None:
    a = await nodes.start()
    b = await nodes.start()
    for i in range(3):
        await a.put_subscription(sub(f"http://s{i}.example/"))
    for i in range(40):
        await (a, b)[i % 2].enqueue(f"u{i}", T, b"x", "text/plain", float(i))
    batches = await bounded(gatherResults([
        (a, b)[i % 2].claim(100.0, 3, 30.0) for i in range(50)
    ]))
    ids = [d.id for batch in batches for d in batch]
    assert len(ids) == len(set(ids)) == 120
    assert await a.claim(100.0, 10, 30.0) == await b.claim(100.0, 10, 30.0) == []


@pytest_twisted.ensureDeferred
async def test_a_claim_that_expires_is_claimable_by_the_other_node(nodes: Nodes) -> None:
    a = await nodes.start()
    b = await nodes.start()
    await a.put_subscription(sub("http://s.example/"))
    await a.enqueue("u1", T, b"x", "text/plain", 10.0)
    [held] = await a.claim(10.0, 10, 30.0)  # a "dies" holding it until 40
    assert await b.claim(39.0, 10, 30.0) == []
    [taken] = await b.claim(40.0, 10, 30.0)
    assert (taken.id, taken.update_id) == (held.id, "u1")
    assert await a.claim(40.0, 10, 30.0) == []
    await b.complete(taken.id)
    assert await a.queue_depth() == 0


# -- what Redis holds ------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_binary_body_is_stored_and_returned_byte_for_byte(nodes: Nodes) -> None:
    a = await nodes.start()
    await a.put_subscription(sub("http://s.example/"))
    body = os.urandom(1 << 20) + b"\xff\xfe\x00\xc3("
    await a.enqueue("u1", T, body, "application/octet-stream", 1.0)
    [d] = await a.claim(1.0, 1, 30.0)
    assert d.body == body
    # Stored as the bytes themselves (no base64, no re-encoding).
    assert nodes.server.command("HGET", f"t:websub:delivery:{d.id}", "body") == body


@pytest_twisted.ensureDeferred
async def test_keys_stay_under_the_prefix_and_apart_from_the_transport(nodes: Nodes) -> None:
    transport = RedisTransport(parse_redis_url(nodes.server.url()), reactor=reactor)
    await bounded(transport.start(lambda update: None))
    try:
        await transport.publish(Update(topics=(T,), id="u1", data="hello"))
        store = await nodes.start(key_prefix=None)
        assert store.key_prefix == "mercure:websub:"  # the URL's prefix, then websub:
        await store.put_subscription(sub("http://s.example/"))
        await store.enqueue("u1", T, b"x", "text/plain", 1.0)
        ours = [k for k in keys(nodes.server) if k.startswith("mercure:websub:")]
        theirs = [k for k in keys(nodes.server) if not k.startswith("mercure:websub:")]
        assert {k.split(":")[2] for k in ours} == {
            "sub", "subs", "topic", "host", "delivery", "due", "enqueued"}
        assert "mercure:updates" in theirs and all(k.startswith("mercure:") for k in theirs)
        assert len((await transport.history("earliest")).updates) == 1
        assert await store.queue_depth() == 1
    finally:
        await bounded(transport.stop())
    other = await nodes.start("prefix=shop", key_prefix=None)
    assert other.key_prefix == "shop:websub:"
    assert await other.queue_depth() == 0  # another hub's queue


@pytest_twisted.ensureDeferred
async def test_removed_and_expired_subscriptions_leave_no_keys_behind(nodes: Nodes) -> None:
    a = await nodes.start()
    await a.put_subscription(sub("http://a.example/", lease=100.0))
    await a.put_subscription(sub("http://b.example/", topic="t2", lease=5.0))
    await a.enqueue("u1", T, b"x", "text/plain", 1.0)
    await a.enqueue("u1", "t2", b"x", "text/plain", 1.0)
    [claimed, _] = await a.claim(1.0, 10, 30.0)
    await a.retry(claimed.id, 2.0, 1)
    assert await a.remove_subscription(T, "http://a.example/") is True
    assert [s.callback for s in await a.expire(5.0)] == ["http://b.example/"]
    # Only the day-long enqueue markers are left.
    assert [k.rsplit(":", 1)[0] for k in keys(nodes.server)] == ["t:websub:enqueued"] * 2
    await a.retry(claimed.id, 3.0, 2)  # a forgotten delivery stays forgotten
    assert await a.queue_depth() == 0 and await a.next_due() is None


@pytest_twisted.ensureDeferred
async def test_the_enqueue_marker_lives_a_day_on_redis(nodes: Nodes) -> None:
    a = await nodes.start()
    await a.put_subscription(sub("http://s.example/"))
    assert await a.enqueue("u1", T, b"x", "text/plain", 1.0) == 1
    [marker] = [k for k in keys(nodes.server) if k.startswith("t:websub:enqueued:")]
    assert ENQUEUED_RETENTION - 5 <= nodes.server.command("TTL", marker) <= ENQUEUED_RETENTION
    nodes.server.command("DEL", marker)  # as Redis does once the day is over
    assert await a.enqueue("u1", T, b"x", "text/plain", 2.0) == 1


@pytest_twisted.ensureDeferred
async def test_a_claim_held_across_a_redis_restart_cannot_complete_a_new_delivery(
    nodes: Nodes,
) -> None:
    a = await nodes.start()
    await a.put_subscription(sub("http://s.example/"))
    await a.enqueue("u1", T, b"x", "text/plain", 1.0)
    [old] = await a.claim(1.0, 1, 30.0)
    nodes.server.stop()
    await wait_until(lambda: not a.connected, "the store to notice")
    nodes.server.start()  # empty: no persistence
    await wait_until(lambda: a.connected, "the store to reconnect")
    await a.put_subscription(sub("http://s.example/"))
    await a.enqueue("u1", T, b"x", "text/plain", 2.0)
    await a.complete(old.id)
    [new] = await a.claim(2.0, 1, 30.0)
    assert new.id != old.id


# -- Redis away ------------------------------------------------------------------------


def calls(store: RedisHubStore) -> list[Deferred[Any]]:
    """One call of every method of the store."""
    return [
        store.put_subscription(sub("http://s.example/")),
        store.remove_subscription(T, "http://s.example/"),
        store.subscription(T, "http://s.example/"),
        store.subscriptions(),
        store.topics(1.0),
        store.count_for_host("s.example", 1.0),
        store.expire(1.0),
        store.enqueue("u1", T, b"x", "text/plain", 1.0),
        store.claim(1.0, 10, 30.0),
        store.claim(1.0, 0, 30.0),
        store.next_due(),
        store.complete("x"),
        store.retry("x", 1.0, 1),
        store.queue_depth(),
    ]


@pytest_twisted.ensureDeferred
async def test_redis_stopped_makes_every_method_unavailable_then_it_recovers(
    nodes: Nodes,
) -> None:
    a = await nodes.start()
    await a.put_subscription(sub("http://s.example/"))
    in_flight = a.subscriptions()  # sent, perhaps not yet answered
    nodes.server.stop()
    try:
        await bounded(in_flight)
    except HubStoreUnavailable:
        pass  # lost with the connection: unavailable, not another error
    for call in calls(a):
        error = await unavailable(call)
        assert str(error).startswith(f"redis redis://127.0.0.1:{nodes.server.port}/0")
    nodes.server.start()
    await wait_until(lambda: a.connected, "the store to reconnect")
    assert await a.subscriptions() == []  # Redis came back empty
    await a.put_subscription(sub("http://s.example/"))
    assert await a.enqueue("u1", T, b"x", "text/plain", 1.0) == 1


@pytest_twisted.ensureDeferred
async def test_a_redis_that_does_not_answer_is_unavailable_after_the_timeout(
    nodes: Nodes,
) -> None:
    a = await nodes.start("timeout=0.5")
    await a.put_subscription(sub("http://s.example/"))
    assert nodes.server.proc is not None
    pid = nodes.server.proc.pid
    os.kill(pid, signal.SIGSTOP)  # connected, but silent
    try:
        started = reactor.seconds()
        await unavailable(a.claim(1.0, 10, 30.0))
        assert reactor.seconds() - started < 3.0
        # The silent connection is dropped: the link makes a new one.
        await wait_until(lambda: not a.connected, "the store to drop it")
    finally:
        os.kill(pid, signal.SIGCONT)
    await wait_until(lambda: a.connected, "the store to reconnect")
    assert [s.callback for s in await a.subscriptions()] == ["http://s.example/"]


@pytest_twisted.ensureDeferred
async def test_redis_unreachable_at_start_then_reachable(nodes: Nodes) -> None:
    nodes.server.stop()
    store = RedisHubStore.from_url(nodes.server.url(query="timeout=0.5"), reactor)
    nodes.stores.append(store)
    error = await unavailable(store.start())
    assert str(error) == f"redis redis://127.0.0.1:{nodes.server.port}/0 is unreachable"
    await unavailable(store.queue_depth())  # at once, not queued until Redis is back
    nodes.server.start()
    await wait_until(lambda: store.connected, "the store to connect")
    assert await store.queue_depth() == 0


@pytest_twisted.ensureDeferred
async def test_the_password_is_never_in_an_error(nodes: Nodes, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "locked", password="hunter2-secret").start()
    try:
        a = await nodes.start(server=server)
        await a.put_subscription(sub("http://s.example/"))
        wrong = RedisHubStore.from_url(
            f"redis://:wrong-secret@127.0.0.1:{server.port}/0?timeout=0.5", reactor)
        nodes.stores.append(wrong)
        refused = await unavailable(wrong.start())
        server.stop()
        lost = await unavailable(a.queue_depth())
        for error in (refused, lost):
            assert "secret" not in str(error)
    finally:
        server.stop()


def test_a_url_that_cannot_work_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must be a database number"):
        RedisHubStore.from_url("redis://127.0.0.1:6379/zero", reactor)
    with pytest.raises(ValueError, match="key_prefix"):
        RedisHubStore.from_url("redis://127.0.0.1:6379/0", reactor, key_prefix="")
