"""The HubStore contract, run against every backend (`hub_store` and
`backend` are parametrized by backend name).

SQLite runs synchronously (``InlineExecutor``: every Deferred has fired when
the call returns).  Redis is a real ``redis-server`` of the test's own (the
``redis_server`` fixture, tests/redis_server.py) on the real reactor, so the
tests are ``async`` (pytest-twisted runs them on the reactor, as
test_redis_transport.py does) and ``await`` each call, which costs SQLite
nothing; every Redis store gets a key prefix of its own.  What only the
Redis store does (several nodes, outages) is in test_hub_store_redis.py.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from websub_bridge.hub._redis_store import RedisHubStore
from websub_bridge.hub._sqlite_store import SQLiteHubStore
from websub_bridge.hub._store import HubStore, HubStoreUnavailable, Subscription
from websub_bridge.store import MIGRATIONS, InlineExecutor, Store
from ._outbound_kit import settle as settled_already
from .._transport_backends import WAIT_BOUND
from ...redis_server import RedisServer

BACKENDS = ["sqlite", "redis"]
T = "http://pub.example/topic"
R = TypeVar("R")


def settle(d: Deferred[R]) -> R:
    """The result of ``d`` (its failure raised), outside the tests' bodies
    (fixtures, the SQLite-only tests).  A Deferred that has fired (SQLite
    on ``InlineExecutor``) is read at once; one waiting for the network
    (Redis) is waited for on the real reactor, bounded so that a hang fails
    the test.  (Test bodies run inside the reactor, where pytest-twisted
    cannot block: they are ``async`` and ``await``.)"""
    if d.called:
        return settled_already(d)
    d.addTimeout(WAIT_BOUND, reactor)
    result: R = pytest_twisted.blockon(d)
    return result


async def bounded(d: Deferred[R]) -> R:
    """``await d``, failing after ``WAIT_BOUND`` instead of hanging."""
    if not d.called:
        d.addTimeout(WAIT_BOUND, reactor)
    return await d


class Backend:
    """Opens (and reopens) one backend's store over the same durable state."""

    def __init__(self, name: str, tmp_path: Path, redis: RedisServer | None = None) -> None:
        self.name = name
        self.path = tmp_path / "websub.db"
        self._stores: list[Store] = []
        self.redis = redis
        # A prefix per Backend: the model test makes many on one server.
        self.key_prefix = f"test-{uuid.uuid4().hex}:websub:"

    async def open(self) -> HubStore:
        if self.name == "sqlite":
            store = Store(InlineExecutor(str(self.path)))
            settle(store.migrate())
            self._stores.append(store)
            return SQLiteHubStore(store)
        if self.name == "redis":
            assert self.redis is not None
            hub = RedisHubStore.from_url(self.redis.url(), reactor, key_prefix=self.key_prefix)
            await bounded(hub.start())
            return hub
        raise AssertionError(self.name)

    async def close(self, hub: HubStore) -> None:
        await bounded(hub.close())
        if self.name == "sqlite":
            for store in self._stores:
                settle(store.close())
            self._stores.clear()


def redis_for(name: str, request: pytest.FixtureRequest) -> RedisServer | None:
    """The test's own redis-server, started only for the Redis backend."""
    if name != "redis":
        return None
    server: RedisServer = request.getfixturevalue("redis_server")
    return server


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = Backend(request.param, tmp_path, redis_for(request.param, request))
    yield b


@pytest.fixture
def hub_store(backend: Backend) -> Iterator[HubStore]:
    hub = settle(Deferred.fromCoroutine(backend.open()))
    yield hub
    settle(Deferred.fromCoroutine(backend.close(hub)))


def sub(topic: str = T, callback: str = "http://sub.example/cb", *, lease: float = 1000.0,
        secret: str | None = "s3cret", created: float = 1.0) -> Subscription:
    return Subscription(topic=topic, callback=callback, secret=secret,
                        lease_expires=lease, created_at=created)


# -- subscriptions -----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_put_creates_and_replaces(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub())
    assert (await hub_store.subscription(T, "http://sub.example/cb")) == sub()
    renewed = sub(lease=2000.0, secret=None, created=5.0)
    await hub_store.put_subscription(renewed)
    assert (await hub_store.subscription(T, "http://sub.example/cb")) == renewed
    assert (await hub_store.subscriptions()) == [renewed]


@pytest_twisted.ensureDeferred
async def test_subscription_is_none_when_absent_and_returned_when_expired(hub_store: HubStore) -> None:
    assert (await hub_store.subscription(T, "http://nobody/")) is None
    await hub_store.put_subscription(sub(lease=1.0))
    assert (await hub_store.subscription(T, "http://sub.example/cb")) == sub(lease=1.0)


@pytest_twisted.ensureDeferred
async def test_remove_returns_whether_it_existed_and_drops_deliveries(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub())
    await hub_store.put_subscription(sub(callback="http://other.example/cb"))
    assert (await hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)) == 2
    assert (await hub_store.remove_subscription(T, "http://sub.example/cb")) is True
    assert (await hub_store.remove_subscription(T, "http://sub.example/cb")) is False
    assert (await hub_store.queue_depth()) == 1
    [left] = await hub_store.claim(10.0, 10, 30.0)
    assert left.callback == "http://other.example/cb"


@pytest_twisted.ensureDeferred
async def test_subscriptions_are_ordered_and_filtered_by_topic(hub_store: HubStore) -> None:
    for topic, cb in [("t2", "http://b/"), ("t1", "http://c/"), ("t2", "http://a/"), ("t1", "http://a/")]:
        await hub_store.put_subscription(sub(topic, cb))
    everything = await hub_store.subscriptions()
    assert [(s.topic, s.callback) for s in everything] == [
        ("t1", "http://a/"), ("t1", "http://c/"), ("t2", "http://a/"), ("t2", "http://b/")]
    assert [s.callback for s in (await hub_store.subscriptions("t2"))] == ["http://a/", "http://b/"]
    assert (await hub_store.subscriptions("t3")) == []


@pytest_twisted.ensureDeferred
async def test_subscriptions_include_expired_ones(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub(lease=1.0))
    assert len(await hub_store.subscriptions()) == 1


@pytest_twisted.ensureDeferred
async def test_topics_excludes_expired(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub("live", "http://a/", lease=100.0))
    await hub_store.put_subscription(sub("live", "http://b/", lease=100.0))
    await hub_store.put_subscription(sub("dead", "http://a/", lease=50.0))
    assert (await hub_store.topics(10.0)) == ["dead", "live"]
    assert (await hub_store.topics(50.0)) == ["live"]
    assert (await hub_store.topics(100.0)) == []


@pytest_twisted.ensureDeferred
async def test_count_for_host_is_per_lowercased_host_and_excludes_expired(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub("t1", "http://Sub.Example/a", lease=100.0))
    await hub_store.put_subscription(sub("t2", "https://sub.example:8443/b", lease=100.0))
    await hub_store.put_subscription(sub("t3", "http://sub.example/c", lease=5.0))
    await hub_store.put_subscription(sub("t1", "http://elsewhere.example/a", lease=100.0))
    assert (await hub_store.count_for_host("sub.example", 10.0)) == 2
    assert (await hub_store.count_for_host("SUB.example", 1.0)) == 3
    assert (await hub_store.count_for_host("elsewhere.example", 10.0)) == 1
    assert (await hub_store.count_for_host("nobody.example", 10.0)) == 0


@pytest_twisted.ensureDeferred
async def test_expire_returns_and_deletes_with_their_deliveries(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub(T, "http://a/", lease=20.0))
    await hub_store.put_subscription(sub(T, "http://b/", lease=30.0))
    await hub_store.put_subscription(sub(T, "http://c/", lease=100.0))
    assert (await hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)) == 3
    expired = await hub_store.expire(30.0)
    assert sorted(s.callback for s in expired) == ["http://a/", "http://b/"]
    assert [s.callback for s in (await hub_store.subscriptions())] == ["http://c/"]
    assert (await hub_store.queue_depth()) == 1
    assert (await hub_store.expire(30.0)) == []


# -- the queue ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_enqueue_counts_only_unexpired_subscriptions(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub(T, "http://a/", lease=100.0))
    await hub_store.put_subscription(sub(T, "http://b/", lease=10.0))
    await hub_store.put_subscription(sub("other", "http://c/", lease=100.0))
    assert (await hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)) == 1
    assert (await hub_store.queue_depth()) == 1
    assert (await hub_store.enqueue("u2", "nobody", b"x", "text/plain", 10.0)) == 0


@pytest_twisted.ensureDeferred
async def test_enqueue_is_idempotent_per_update_and_topic(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub(T, "http://a/"))
    await hub_store.put_subscription(sub("t2", "http://a/"))
    assert (await hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)) == 1
    assert (await hub_store.enqueue("u1", T, b"x", "text/plain", 11.0)) == 0
    assert (await hub_store.enqueue("u1", "t2", b"x", "text/plain", 12.0)) == 1
    assert (await hub_store.queue_depth()) == 2


@pytest_twisted.ensureDeferred
async def test_enqueue_fixes_body_type_and_secret(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub(T, "http://a/", secret="old"))
    await hub_store.enqueue("u1", T, b"one", "application/atom+xml", 10.0)
    await hub_store.put_subscription(sub(T, "http://a/", secret="new"))
    await hub_store.enqueue("u2", T, b"two", "text/plain", 11.0)
    d1, d2 = await hub_store.claim(20.0, 10, 30.0)
    assert (d1.update_id, d1.body, d1.content_type, d1.secret) == ("u1", b"one", "application/atom+xml", "old")
    assert (d2.update_id, d2.body, d2.content_type, d2.secret) == ("u2", b"two", "text/plain", "new")
    assert (d1.topic, d1.callback, d1.attempts, d1.due, d1.created_at) == (T, "http://a/", 0, 10.0, 10.0)
    assert d1.host == "a"
    assert d1.id != d2.id


@pytest_twisted.ensureDeferred
async def test_body_bytes_round_trip_including_non_utf8(hub_store: HubStore) -> None:
    body = bytes(range(256)) + b"\xff\xfe\x00\xc3("
    await hub_store.put_subscription(sub())
    await hub_store.enqueue("u1", T, body, "application/octet-stream", 1.0)
    [d] = await hub_store.claim(1.0, 1, 30.0)
    assert d.body == body
    assert isinstance(d.body, bytes)


@pytest_twisted.ensureDeferred
async def test_claim_orders_by_due_limits_and_skips_claimed(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub())
    for i, at in enumerate([30.0, 10.0, 20.0]):
        await hub_store.enqueue(f"u{i}", T, b"x", "text/plain", at)
    assert (await hub_store.claim(5.0, 10, 30.0)) == []
    first = await hub_store.claim(25.0, 1, 30.0)
    assert [d.update_id for d in first] == ["u1"]
    second = await hub_store.claim(25.0, 10, 30.0)
    assert [d.update_id for d in second] == ["u2"]
    # at 40: u1 and u2 still claimed (until 55), only u0 is free
    assert [d.update_id for d in (await hub_store.claim(40.0, 10, 30.0))] == ["u0"]
    # at 55 both claims have expired: oldest due first, up to the limit
    assert [d.update_id for d in (await hub_store.claim(55.0, 2, 30.0))] == ["u1", "u2"]


@pytest_twisted.ensureDeferred
async def test_claimed_deliveries_come_back_when_the_claim_expires(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub())
    await hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)
    [d] = await hub_store.claim(10.0, 10, 30.0)
    assert (await hub_store.claim(39.9, 10, 30.0)) == []
    [again] = await hub_store.claim(40.0, 10, 30.0)
    assert again.id == d.id
    assert (await hub_store.claim(40.0, 10, 30.0)) == []


@pytest_twisted.ensureDeferred
async def test_claim_of_zero_returns_nothing(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub())
    await hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)
    assert (await hub_store.claim(10.0, 0, 30.0)) == []
    assert len(await hub_store.claim(10.0, 5, 30.0)) == 1


@pytest_twisted.ensureDeferred
async def test_retry_sets_due_and_attempts_and_releases_the_claim(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub())
    await hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)
    [d] = await hub_store.claim(10.0, 10, 300.0)
    await hub_store.retry(d.id, 50.0, 1)
    assert (await hub_store.next_due()) == 50.0
    assert (await hub_store.claim(49.0, 10, 300.0)) == []
    [again] = await hub_store.claim(50.0, 10, 300.0)
    assert (again.id, again.attempts, again.due) == (d.id, 1, 50.0)


@pytest_twisted.ensureDeferred
async def test_complete_forgets_the_delivery(hub_store: HubStore) -> None:
    await hub_store.put_subscription(sub())
    await hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)
    [d] = await hub_store.claim(10.0, 10, 30.0)
    await hub_store.complete(d.id)
    assert (await hub_store.queue_depth()) == 0
    assert (await hub_store.claim(100.0, 10, 30.0)) == []
    (await hub_store.complete(d.id))  # twice is harmless


@pytest_twisted.ensureDeferred
async def test_next_due_counts_claims_at_their_end(hub_store: HubStore) -> None:
    assert (await hub_store.next_due()) is None
    await hub_store.put_subscription(sub())
    await hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)
    await hub_store.enqueue("u2", T, b"x", "text/plain", 20.0)
    assert (await hub_store.next_due()) == 10.0
    (await hub_store.claim(10.0, 1, 30.0))  # u1 claimed until 40
    assert (await hub_store.next_due()) == 20.0
    (await hub_store.claim(20.0, 1, 30.0))  # u2 claimed until 50
    assert (await hub_store.next_due()) == 40.0


@pytest_twisted.ensureDeferred
async def test_queue_depth_counts_claimed_and_unclaimed(hub_store: HubStore) -> None:
    assert (await hub_store.queue_depth()) == 0
    await hub_store.put_subscription(sub(T, "http://a/"))
    await hub_store.put_subscription(sub(T, "http://b/"))
    await hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)
    await hub_store.claim(10.0, 1, 30.0)
    assert (await hub_store.queue_depth()) == 2


# -- durability --------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_state_survives_closing_and_reopening(backend: Backend) -> None:
    hub = await backend.open()
    await hub.put_subscription(sub())
    await hub.enqueue("u1", T, b"\x80body", "text/plain", 10.0)
    await backend.close(hub)
    hub = await backend.open()
    try:
        assert (await hub.subscriptions()) == [sub()]
        assert (await hub.queue_depth()) == 1
        assert (await hub.enqueue("u1", T, b"\x80body", "text/plain", 11.0)) == 0
        [d] = await hub.claim(10.0, 1, 30.0)
        assert d.body == b"\x80body"
    finally:
        await backend.close(hub)


# -- SQLite specifics ----------------------------------------------------------


def test_a_version_1_file_migrates_and_keeps_its_follows(tmp_path: Path) -> None:
    path = tmp_path / "websub.db"
    old = Store(InlineExecutor(str(path)))
    assert settle(old.migrate(MIGRATIONS[:1])) == 1
    follow = settle(old.add_follow(topic="http://pub.example/feed", mercure_topic=None, private=False,
                                   lease_seconds=None, mode="entries", origin="api", now=1.0))
    settle(old.close())
    store = Store(InlineExecutor(str(path)))
    try:
        assert settle(store.migrate()) == len(MIGRATIONS)
        assert settle(store.follows()) == [follow]
        hub = SQLiteHubStore(store)
        settle(hub.put_subscription(sub()))
        assert settle(hub.enqueue("u1", T, b"x", "text/plain", 10.0)) == 1
    finally:
        settle(store.close())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_enqueued_pairs_are_forgotten_after_a_day(tmp_path: Path) -> None:
    store = Store(InlineExecutor(str(tmp_path / "websub.db")))
    settle(store.migrate())
    hub = SQLiteHubStore(store)
    try:
        settle(hub.put_subscription(sub(lease=1e9)))
        assert settle(hub.enqueue("u1", T, b"x", "text/plain", 10.0)) == 1
        assert settle(hub.enqueue("u2", T, b"x", "text/plain", 10.0 + 86_400.5)) == 1
        count = settle(store.run(lambda c: c.execute("SELECT COUNT(*) FROM hub_enqueued").fetchone()[0]))
        assert count == 1
    finally:
        settle(store.close())


def test_sqlite_errors_become_hub_store_unavailable(tmp_path: Path) -> None:
    store = Store(InlineExecutor(str(tmp_path / "websub.db")))
    settle(store.migrate())
    settle(store.run(lambda c: c.execute("DROP TABLE hub_deliveries")))
    hub = SQLiteHubStore(store)
    try:
        with pytest.raises(HubStoreUnavailable, match="no such table") as info:
            settle(hub.queue_depth())
        assert "\n" not in str(info.value)
    finally:
        settle(store.close())


# -- a model of the queue ------------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("enqueue"), st.integers(0, 5), st.sampled_from(["t1", "t2"])),
        st.tuples(st.just("claim"), st.integers(0, 4), st.just("")),
        st.tuples(st.just("complete"), st.integers(0, 20), st.just("")),
        st.tuples(st.just("retry"), st.integers(0, 20), st.just("")),
        st.tuples(st.just("tick"), st.integers(1, 60), st.just("")),
    ),
    max_size=40,
)


def _model_test(name: str) -> Callable[..., None]:
    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(ops=_ops)
    def test(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
             ops: list[tuple[str, int, str]]) -> Any:
        """Each example runs on the reactor: pytest-twisted waits for the
        Deferred this returns (Hypothesis itself cannot run a coroutine)."""
        return Deferred.fromCoroutine(_run_model(name, tmp_path_factory, request, ops))

    return test


# One test function per backend, not one parametrized function: pytest-twisted
# wraps a Hypothesis test's inner function in place, so a function run for
# two parameters would be wrapped twice (and fail on the second).
for _name in BACKENDS:
    globals()[f"test_queue_depth_follows_a_model_{_name}"] = _model_test(_name)


async def _run_model(name: str, tmp_path_factory: pytest.TempPathFactory,
                     request: pytest.FixtureRequest, ops: list[tuple[str, int, str]]) -> None:
    backend = Backend(name, tmp_path_factory.mktemp("model"), redis_for(name, request))
    hub = await backend.open()
    try:
        subscribers = {"t1": 2, "t2": 1}
        for topic, n in subscribers.items():
            for i in range(n):
                await hub.put_subscription(sub(topic, f"http://s{i}.example/", lease=1e9))
        now = 0.0
        enqueued: set[tuple[int, str]] = set()
        depth = 0  # the model: deliveries queued
        claimed: set[str] = set()  # ids held under a live claim by this test
        completed: set[str] = set()
        for op, n, topic in ops:
            if op == "enqueue":
                count = await hub.enqueue(f"u{n}", topic, b"x", "text/plain", now)
                expected = 0 if (n, topic) in enqueued else subscribers[topic]
                enqueued.add((n, topic))
                assert count == expected
                depth += count
            elif op == "claim":
                got = await hub.claim(now, n, 30.0)
                assert len(got) <= n
                assert not {d.id for d in got} & completed
                claimed.update(d.id for d in got)
            elif op in ("complete", "retry") and claimed:
                delivery_id = sorted(claimed)[n % len(claimed)]
                claimed.discard(delivery_id)
                if op == "complete":
                    await hub.complete(delivery_id)
                    completed.add(delivery_id)
                    depth -= 1
                else:
                    await hub.retry(delivery_id, now + 5.0, 1)
            elif op == "tick":
                now += n
            assert (await hub.queue_depth()) == depth
    finally:
        await backend.close(hub)
