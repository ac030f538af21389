"""The HubStore contract, run against every backend (`hub_store` is
parametrized by backend name; a Redis backend joins the params later)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from websub_bridge.hub._sqlite_store import SQLiteHubStore
from websub_bridge.hub._store import HubStore, HubStoreUnavailable, Subscription
from websub_bridge.store import MIGRATIONS, InlineExecutor, Store
from ._outbound_kit import settle

BACKENDS = ["sqlite"]
T = "http://pub.example/topic"




class Backend:
    """Opens (and reopens) one backend's store over the same durable state."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name = name
        self.path = tmp_path / "websub.db"
        self._stores: list[Store] = []

    def open(self) -> HubStore:
        if self.name == "sqlite":
            store = Store(InlineExecutor(str(self.path)))
            settle(store.migrate())
            self._stores.append(store)
            return SQLiteHubStore(store)
        raise AssertionError(self.name)

    def close(self, hub: HubStore) -> None:
        settle(hub.close())
        if self.name == "sqlite":
            for store in self._stores:
                settle(store.close())
            self._stores.clear()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = Backend(request.param, tmp_path)
    yield b


@pytest.fixture
def hub_store(backend: Backend) -> Iterator[HubStore]:
    hub = backend.open()
    yield hub
    backend.close(hub)


def sub(topic: str = T, callback: str = "http://sub.example/cb", *, lease: float = 1000.0,
        secret: str | None = "s3cret", created: float = 1.0) -> Subscription:
    return Subscription(topic=topic, callback=callback, secret=secret,
                        lease_expires=lease, created_at=created)


# -- subscriptions -----------------------------------------------------------


def test_put_creates_and_replaces(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub()))
    assert settle(hub_store.subscription(T, "http://sub.example/cb")) == sub()
    renewed = sub(lease=2000.0, secret=None, created=5.0)
    settle(hub_store.put_subscription(renewed))
    assert settle(hub_store.subscription(T, "http://sub.example/cb")) == renewed
    assert settle(hub_store.subscriptions()) == [renewed]


def test_subscription_is_none_when_absent_and_returned_when_expired(hub_store: HubStore) -> None:
    assert settle(hub_store.subscription(T, "http://nobody/")) is None
    settle(hub_store.put_subscription(sub(lease=1.0)))
    assert settle(hub_store.subscription(T, "http://sub.example/cb")) == sub(lease=1.0)


def test_remove_returns_whether_it_existed_and_drops_deliveries(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub()))
    settle(hub_store.put_subscription(sub(callback="http://other.example/cb")))
    assert settle(hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)) == 2
    assert settle(hub_store.remove_subscription(T, "http://sub.example/cb")) is True
    assert settle(hub_store.remove_subscription(T, "http://sub.example/cb")) is False
    assert settle(hub_store.queue_depth()) == 1
    [left] = settle(hub_store.claim(10.0, 10, 30.0))
    assert left.callback == "http://other.example/cb"


def test_subscriptions_are_ordered_and_filtered_by_topic(hub_store: HubStore) -> None:
    for topic, cb in [("t2", "http://b/"), ("t1", "http://c/"), ("t2", "http://a/"), ("t1", "http://a/")]:
        settle(hub_store.put_subscription(sub(topic, cb)))
    everything = settle(hub_store.subscriptions())
    assert [(s.topic, s.callback) for s in everything] == [
        ("t1", "http://a/"), ("t1", "http://c/"), ("t2", "http://a/"), ("t2", "http://b/")]
    assert [s.callback for s in settle(hub_store.subscriptions("t2"))] == ["http://a/", "http://b/"]
    assert settle(hub_store.subscriptions("t3")) == []


def test_subscriptions_include_expired_ones(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub(lease=1.0)))
    assert len(settle(hub_store.subscriptions())) == 1


def test_topics_excludes_expired(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub("live", "http://a/", lease=100.0)))
    settle(hub_store.put_subscription(sub("live", "http://b/", lease=100.0)))
    settle(hub_store.put_subscription(sub("dead", "http://a/", lease=50.0)))
    assert settle(hub_store.topics(10.0)) == ["dead", "live"]
    assert settle(hub_store.topics(50.0)) == ["live"]
    assert settle(hub_store.topics(100.0)) == []


def test_count_for_host_is_per_lowercased_host_and_excludes_expired(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub("t1", "http://Sub.Example/a", lease=100.0)))
    settle(hub_store.put_subscription(sub("t2", "https://sub.example:8443/b", lease=100.0)))
    settle(hub_store.put_subscription(sub("t3", "http://sub.example/c", lease=5.0)))
    settle(hub_store.put_subscription(sub("t1", "http://elsewhere.example/a", lease=100.0)))
    assert settle(hub_store.count_for_host("sub.example", 10.0)) == 2
    assert settle(hub_store.count_for_host("SUB.example", 1.0)) == 3
    assert settle(hub_store.count_for_host("elsewhere.example", 10.0)) == 1
    assert settle(hub_store.count_for_host("nobody.example", 10.0)) == 0


def test_expire_returns_and_deletes_with_their_deliveries(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub(T, "http://a/", lease=20.0)))
    settle(hub_store.put_subscription(sub(T, "http://b/", lease=30.0)))
    settle(hub_store.put_subscription(sub(T, "http://c/", lease=100.0)))
    assert settle(hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)) == 3
    expired = settle(hub_store.expire(30.0))
    assert sorted(s.callback for s in expired) == ["http://a/", "http://b/"]
    assert [s.callback for s in settle(hub_store.subscriptions())] == ["http://c/"]
    assert settle(hub_store.queue_depth()) == 1
    assert settle(hub_store.expire(30.0)) == []


# -- the queue ---------------------------------------------------------------


def test_enqueue_counts_only_unexpired_subscriptions(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub(T, "http://a/", lease=100.0)))
    settle(hub_store.put_subscription(sub(T, "http://b/", lease=10.0)))
    settle(hub_store.put_subscription(sub("other", "http://c/", lease=100.0)))
    assert settle(hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)) == 1
    assert settle(hub_store.queue_depth()) == 1
    assert settle(hub_store.enqueue("u2", "nobody", b"x", "text/plain", 10.0)) == 0


def test_enqueue_is_idempotent_per_update_and_topic(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub(T, "http://a/")))
    settle(hub_store.put_subscription(sub("t2", "http://a/")))
    assert settle(hub_store.enqueue("u1", T, b"x", "text/plain", 10.0)) == 1
    assert settle(hub_store.enqueue("u1", T, b"x", "text/plain", 11.0)) == 0
    assert settle(hub_store.enqueue("u1", "t2", b"x", "text/plain", 12.0)) == 1
    assert settle(hub_store.queue_depth()) == 2


def test_enqueue_fixes_body_type_and_secret(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub(T, "http://a/", secret="old")))
    settle(hub_store.enqueue("u1", T, b"one", "application/atom+xml", 10.0))
    settle(hub_store.put_subscription(sub(T, "http://a/", secret="new")))
    settle(hub_store.enqueue("u2", T, b"two", "text/plain", 11.0))
    d1, d2 = settle(hub_store.claim(20.0, 10, 30.0))
    assert (d1.update_id, d1.body, d1.content_type, d1.secret) == ("u1", b"one", "application/atom+xml", "old")
    assert (d2.update_id, d2.body, d2.content_type, d2.secret) == ("u2", b"two", "text/plain", "new")
    assert (d1.topic, d1.callback, d1.attempts, d1.due, d1.created_at) == (T, "http://a/", 0, 10.0, 10.0)
    assert d1.host == "a"
    assert d1.id != d2.id


def test_body_bytes_round_trip_including_non_utf8(hub_store: HubStore) -> None:
    body = bytes(range(256)) + b"\xff\xfe\x00\xc3("
    settle(hub_store.put_subscription(sub()))
    settle(hub_store.enqueue("u1", T, body, "application/octet-stream", 1.0))
    [d] = settle(hub_store.claim(1.0, 1, 30.0))
    assert d.body == body
    assert isinstance(d.body, bytes)


def test_claim_orders_by_due_limits_and_skips_claimed(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub()))
    for i, at in enumerate([30.0, 10.0, 20.0]):
        settle(hub_store.enqueue(f"u{i}", T, b"x", "text/plain", at))
    assert settle(hub_store.claim(5.0, 10, 30.0)) == []
    first = settle(hub_store.claim(25.0, 1, 30.0))
    assert [d.update_id for d in first] == ["u1"]
    second = settle(hub_store.claim(25.0, 10, 30.0))
    assert [d.update_id for d in second] == ["u2"]
    # at 40: u1 and u2 still claimed (until 55), only u0 is free
    assert [d.update_id for d in settle(hub_store.claim(40.0, 10, 30.0))] == ["u0"]
    # at 55 both claims have expired: oldest due first, up to the limit
    assert [d.update_id for d in settle(hub_store.claim(55.0, 2, 30.0))] == ["u1", "u2"]


def test_claimed_deliveries_come_back_when_the_claim_expires(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub()))
    settle(hub_store.enqueue("u1", T, b"x", "text/plain", 10.0))
    [d] = settle(hub_store.claim(10.0, 10, 30.0))
    assert settle(hub_store.claim(39.9, 10, 30.0)) == []
    [again] = settle(hub_store.claim(40.0, 10, 30.0))
    assert again.id == d.id
    assert settle(hub_store.claim(40.0, 10, 30.0)) == []


def test_claim_of_zero_returns_nothing(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub()))
    settle(hub_store.enqueue("u1", T, b"x", "text/plain", 10.0))
    assert settle(hub_store.claim(10.0, 0, 30.0)) == []
    assert len(settle(hub_store.claim(10.0, 5, 30.0))) == 1


def test_retry_sets_due_and_attempts_and_releases_the_claim(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub()))
    settle(hub_store.enqueue("u1", T, b"x", "text/plain", 10.0))
    [d] = settle(hub_store.claim(10.0, 10, 300.0))
    settle(hub_store.retry(d.id, 50.0, 1))
    assert settle(hub_store.next_due()) == 50.0
    assert settle(hub_store.claim(49.0, 10, 300.0)) == []
    [again] = settle(hub_store.claim(50.0, 10, 300.0))
    assert (again.id, again.attempts, again.due) == (d.id, 1, 50.0)


def test_complete_forgets_the_delivery(hub_store: HubStore) -> None:
    settle(hub_store.put_subscription(sub()))
    settle(hub_store.enqueue("u1", T, b"x", "text/plain", 10.0))
    [d] = settle(hub_store.claim(10.0, 10, 30.0))
    settle(hub_store.complete(d.id))
    assert settle(hub_store.queue_depth()) == 0
    assert settle(hub_store.claim(100.0, 10, 30.0)) == []
    settle(hub_store.complete(d.id))  # twice is harmless


def test_next_due_counts_claims_at_their_end(hub_store: HubStore) -> None:
    assert settle(hub_store.next_due()) is None
    settle(hub_store.put_subscription(sub()))
    settle(hub_store.enqueue("u1", T, b"x", "text/plain", 10.0))
    settle(hub_store.enqueue("u2", T, b"x", "text/plain", 20.0))
    assert settle(hub_store.next_due()) == 10.0
    settle(hub_store.claim(10.0, 1, 30.0))  # u1 claimed until 40
    assert settle(hub_store.next_due()) == 20.0
    settle(hub_store.claim(20.0, 1, 30.0))  # u2 claimed until 50
    assert settle(hub_store.next_due()) == 40.0


def test_queue_depth_counts_claimed_and_unclaimed(hub_store: HubStore) -> None:
    assert settle(hub_store.queue_depth()) == 0
    settle(hub_store.put_subscription(sub(T, "http://a/")))
    settle(hub_store.put_subscription(sub(T, "http://b/")))
    settle(hub_store.enqueue("u1", T, b"x", "text/plain", 10.0))
    settle(hub_store.claim(10.0, 1, 30.0))
    assert settle(hub_store.queue_depth()) == 2


# -- durability --------------------------------------------------------------


def test_state_survives_closing_and_reopening(backend: Backend) -> None:
    hub = backend.open()
    settle(hub.put_subscription(sub()))
    settle(hub.enqueue("u1", T, b"\x80body", "text/plain", 10.0))
    backend.close(hub)
    hub = backend.open()
    try:
        assert settle(hub.subscriptions()) == [sub()]
        assert settle(hub.queue_depth()) == 1
        assert settle(hub.enqueue("u1", T, b"\x80body", "text/plain", 11.0)) == 0
        [d] = settle(hub.claim(10.0, 1, 30.0))
        assert d.body == b"\x80body"
    finally:
        backend.close(hub)


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


@pytest.mark.parametrize("name", BACKENDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_queue_depth_follows_a_model(name: str, tmp_path_factory: pytest.TempPathFactory,
                                     ops: list[tuple[str, int, str]]) -> None:
    backend = Backend(name, tmp_path_factory.mktemp("model"))
    hub = backend.open()
    try:
        subscribers = {"t1": 2, "t2": 1}
        for topic, n in subscribers.items():
            for i in range(n):
                settle(hub.put_subscription(sub(topic, f"http://s{i}.example/", lease=1e9)))
        now = 0.0
        enqueued: set[tuple[int, str]] = set()
        depth = 0  # the model: deliveries queued
        claimed: set[str] = set()  # ids held under a live claim by this test
        completed: set[str] = set()
        for op, n, topic in ops:
            if op == "enqueue":
                count = settle(hub.enqueue(f"u{n}", topic, b"x", "text/plain", now))
                expected = 0 if (n, topic) in enqueued else subscribers[topic]
                enqueued.add((n, topic))
                assert count == expected
                depth += count
            elif op == "claim":
                got = settle(hub.claim(now, n, 30.0))
                assert len(got) <= n
                assert not {d.id for d in got} & completed
                claimed.update(d.id for d in got)
            elif op in ("complete", "retry") and claimed:
                delivery_id = sorted(claimed)[n % len(claimed)]
                claimed.discard(delivery_id)
                if op == "complete":
                    settle(hub.complete(delivery_id))
                    completed.add(delivery_id)
                    depth -= 1
                else:
                    settle(hub.retry(delivery_id, now + 5.0, 1))
            elif op == "tick":
                now += n
            assert settle(hub.queue_depth()) == depth
    finally:
        backend.close(hub)
