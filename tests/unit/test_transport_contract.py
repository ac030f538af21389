"""The contract every transport keeps, run once per transport.

The hub engine relies on these properties and nothing else: positions that
increase in publish order, dispatch in that order, a publish that fires only
once its update is stored, replay after an id (``earliest``, unknown ids,
reused ids), bounded retention, presence.  Each test runs on a real reactor
(pytest-twisted) against every backend of ``tests/unit/_transport_backends``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock

from mercure_twisted.transports import ITransport, SubscriptionRecord
from mercure_twisted.update import Update

from twisted.internet import reactor

from ._transport_backends import BACKENDS, WAIT_BOUND, Backend, sleep, wait_until


class Harness:
    """One backend for one test: makes transports, stops them at the end."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.transports: list[ITransport] = []

    @property
    def name(self) -> str:
        return self.backend.name

    async def start(self, **settings: Any) -> tuple[ITransport, list[Update]]:
        """A started transport and the list its dispatch appends to."""
        transport = self.backend.make(**settings)
        self.transports.append(transport)
        dispatched: list[Update] = []
        result = transport.start(dispatched.append)
        if isinstance(result, Deferred):
            await result
        return transport, dispatched

    async def stop(self, transport: ITransport) -> None:
        result = transport.stop()
        if isinstance(result, Deferred):
            await result
        self.transports.remove(transport)


@pytest.fixture(params=sorted(BACKENDS))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(BACKENDS[request.param](tmp_path))
    yield h
    for transport in list(h.transports):
        result = transport.stop()
        if isinstance(result, Deferred):
            pytest_twisted.blockon(result)
    h.backend.close()


def update(id: str, *topics: str, **fields: Any) -> Update:
    return Update(topics=topics or ("https://example.com/t",), id=id, **fields)


async def publish_all(transport: ITransport, *ids: str) -> list[Update]:
    return [await transport.publish(update(i)) for i in ids]


def ids(updates: Any) -> list[str]:
    return [u.id for u in updates]


# -- publishing and dispatch ----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_positions_increase_and_dispatch_follows_publish_order(harness: Harness) -> None:
    transport, dispatched = await harness.start()
    published = await publish_all(transport, "a", "b", "c")
    positions = [u.position for u in published]
    assert positions == sorted(positions) and len(set(positions)) == 3
    await wait_until(lambda: len(dispatched) == 3, "three dispatches")
    assert ids(dispatched) == ["a", "b", "c"]
    assert [u.position for u in dispatched] == positions


@pytest_twisted.ensureDeferred
async def test_concurrent_publishes_keep_call_order(harness: Harness) -> None:
    """Publishes not awaited one by one (as many publishers at once) are
    stored, positioned and dispatched in the order they were called."""
    transport, dispatched = await harness.start()
    names = [f"u{i}" for i in range(200)]
    published = await gatherResults([transport.publish(update(n)) for n in names])
    assert ids(published) == names
    positions = [u.position for u in published]
    assert all(a < b for a, b in zip(positions, positions[1:]))
    await wait_until(lambda: len(dispatched) == 200, "200 dispatches")
    assert ids(dispatched) == names
    assert [u.position for u in dispatched] == positions


@pytest_twisted.ensureDeferred
async def test_publish_fires_only_once_stored(harness: Harness) -> None:
    transport, _ = await harness.start()
    seen: list[list[str]] = []
    d = transport.publish(update("stored"))
    d.addCallback(lambda u: seen.append(harness.backend.stored_ids()) or u)
    positioned = await d
    assert positioned.position is not None
    assert seen == [["stored"]]


@pytest_twisted.ensureDeferred
async def test_every_field_survives_storage(harness: Harness) -> None:
    transport, dispatched = await harness.start()
    original = update(
        "urn:uuid:0192-é", "https://example.com/a", "https://example.com/b",
        data="line 1\nline 2\r\n\u2603 \x00end", private=True, type="book", retry=1500,
    )
    plain = update("plain", data="")
    await transport.publish(original)
    await transport.publish(plain)
    history = await transport.history("earliest")
    assert list(history.updates) == [original, plain]  # equality ignores position
    stored = history.updates[0]
    assert (stored.topics, stored.private, stored.type, stored.retry) == (
        original.topics, True, "book", 1500)
    assert (history.updates[1].type, history.updates[1].retry) == (None, None)
    await wait_until(lambda: len(dispatched) == 2, "two dispatches")
    assert dispatched == [original, plain]


# -- history ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_history_after_an_id(harness: Harness) -> None:
    transport, _ = await harness.start()
    a, b, c = await publish_all(transport, "a", "b", "c")
    history = await transport.history("a")
    assert history.found
    assert ids(history.updates) == ["b", "c"]
    assert [u.position for u in history.updates] == [b.position, c.position]
    assert history.up_to == c.position
    newest = await transport.history("c")
    assert newest.found and newest.updates == () and newest.up_to == c.position


@pytest_twisted.ensureDeferred
async def test_earliest(harness: Harness) -> None:
    transport, _ = await harness.start()
    empty = await transport.history("earliest")
    assert empty.found and empty.updates == () and empty.up_to is None
    await publish_all(transport, "a", "b")
    history = await transport.history("earliest")
    assert history.found and ids(history.updates) == ["a", "b"]
    assert history.up_to == history.updates[-1].position


@pytest_twisted.ensureDeferred
async def test_unknown_id_is_not_found(harness: Harness) -> None:
    transport, _ = await harness.start()
    assert not (await transport.history("nothing yet")).found
    _, b = await publish_all(transport, "a", "b")
    history = await transport.history("never published")
    assert not history.found
    assert history.updates == ()
    assert history.up_to == b.position


@pytest_twisted.ensureDeferred
async def test_reused_id_resolves_to_its_earliest_occurrence_in_history(harness: Harness) -> None:
    transport, _ = await harness.start(history_size=4)
    await publish_all(transport, "x", "y", "x", "z")
    assert ids((await transport.history("x")).updates) == ["y", "x", "z"]
    await publish_all(transport, "w")  # the first "x" leaves history
    assert ids((await transport.history("x")).updates) == ["z", "w"]


@pytest_twisted.ensureDeferred
async def test_retention_by_count(harness: Harness) -> None:
    transport, _ = await harness.start(history_size=3)
    await publish_all(transport, "a", "b", "c", "d", "e")
    history = await transport.history("earliest")
    assert ids(history.updates) == ["c", "d", "e"]
    assert not (await transport.history("b")).found
    assert ids((await transport.history("c")).updates) == ["d", "e"]
    assert transport.history_length() == 3


@pytest_twisted.ensureDeferred
async def test_history_size_zero_keeps_nothing(harness: Harness) -> None:
    transport, dispatched = await harness.start(history_size=0)
    await publish_all(transport, "a", "b")
    history = await transport.history("earliest")
    assert history.found and history.updates == ()
    assert not (await transport.history("a")).found
    assert transport.last_event_id() == "b"
    await wait_until(lambda: len(dispatched) == 2, "two dispatches")


@pytest_twisted.ensureDeferred
async def test_retention_by_age(harness: Harness) -> None:
    if not harness.backend.controllable_clock:
        pytest.skip(f"{harness.name}: history_max_age is not driven by an injectable clock")
    clock = Clock()
    clock.advance(1_000_000)
    transport, _ = await harness.start(history_max_age=10, clock=clock)
    await publish_all(transport, "old")
    clock.advance(6)
    await publish_all(transport, "young")
    assert ids((await transport.history("earliest")).updates) == ["old", "young"]
    clock.advance(5)  # "old" is 11 s old, "young" 5 s
    assert ids((await transport.history("earliest")).updates) == ["young"]
    assert not (await transport.history("old")).found
    assert (await transport.history("young")).found
    clock.advance(10)
    assert (await transport.history("earliest")).updates == ()


@pytest_twisted.ensureDeferred
async def test_last_event_id(harness: Harness) -> None:
    transport, _ = await harness.start()
    assert transport.last_event_id() is None
    await publish_all(transport, "a", "b")
    assert transport.last_event_id() == "b"


@pytest_twisted.ensureDeferred
async def test_history_length(harness: Harness) -> None:
    transport, _ = await harness.start(history_size=5)
    assert transport.history_length() in (0, None)
    await publish_all(transport, *"abc")
    assert transport.history_length() in (3, None)
    await publish_all(transport, *"defgh")
    assert transport.history_length() in (5, None)


# -- health, presence, lifecycle ---------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_ping(harness: Harness) -> None:
    transport, _ = await harness.start()
    assert await transport.ping() is None


@pytest_twisted.ensureDeferred
async def test_presence(harness: Harness) -> None:
    """A cluster transport shares presence; a single-process one has none
    (the hub lists its own subscribers rather than keep a copy)."""
    transport, _ = await harness.start()
    presence = transport.presence
    if not harness.backend.shared:
        assert presence is None
        return
    one = SubscriptionRecord("sub-1", "07", "topic", "https://example.com/{id}")
    two = SubscriptionRecord("sub-2", "08", "exact", "https://example.com/2", {"user": 2})
    three = SubscriptionRecord("sub-2", "08", "urlpattern", "/books/*")
    assert await presence.active() == []
    presence.add("sub-1", (one,))
    presence.add("sub-2", (two, three))
    # add/remove are fire and forget: a shared presence may settle later.
    assert await settled(presence, [one, two, three]) == sorted([one, two, three], key=repr)
    presence.remove("sub-1")
    presence.remove("never added")
    assert await settled(presence, [two, three]) == sorted([two, three], key=repr)


async def settled(presence: Any, expected: list[SubscriptionRecord]) -> list[SubscriptionRecord]:
    """``presence.active()``, sorted, once it equals ``expected`` or the wait bound passed."""
    deadline = reactor.seconds() + WAIT_BOUND
    while True:
        active = sorted(await presence.active(), key=repr)
        if active == sorted(expected, key=repr) or reactor.seconds() > deadline:
            return active
        await sleep(0.005)


@pytest_twisted.ensureDeferred
async def test_stop_flushes_every_pending_publish(harness: Harness) -> None:
    transport, _ = await harness.start()
    names = [f"p{i}" for i in range(50)]
    pending = [transport.publish(update(n)) for n in names]
    await harness.stop(transport)
    results = await gatherResults(pending)
    assert ids(results) == names
    assert harness.backend.stored_ids() == names
    if harness.backend.durable:
        again, _ = await harness.start()
        assert ids((await again.history("earliest")).updates) == names
        assert again.last_event_id() == "p49"


@pytest_twisted.ensureDeferred
async def test_reopened_storage_continues_history_and_positions(harness: Harness) -> None:
    if not harness.backend.durable:
        pytest.skip(f"{harness.name} keeps nothing across a restart")
    first, _ = await harness.start(history_size=10)
    a, b = await publish_all(first, "a", "b")
    await harness.stop(first)
    second, dispatched = await harness.start(history_size=10)
    assert second.last_event_id() == "b"
    assert second.history_length() in (2, None)
    (c,) = await publish_all(second, "c")
    assert a.position < b.position < c.position
    history = await second.history("a")
    assert history.found and ids(history.updates) == ["b", "c"]
    await wait_until(lambda: len(dispatched) == 1, "one dispatch")
    assert ids(dispatched) == ["c"]  # what the previous run stored is not dispatched again
