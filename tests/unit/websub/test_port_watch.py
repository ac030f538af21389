"""The in-process port's watch: what the WebSub hub role reads of the hub.

Driven without HTTP on a memory transport and a ``task.Clock``: updates in
order, one at a time, private ones never, history after ``since`` without a
gap or a duplicate against live updates that arrive during the replay.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from mercure_twisted.hub import Hub
from mercure_twisted.transports import HistoryResult, MemoryTransport, TransportUnavailable
from mercure_twisted.update import Update
from websub_bridge.port import InProcessPort, ReceivedUpdate

TOPIC = "https://app.example/books/1"
OTHER = "https://app.example/books/2"


class WatchTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.transport = MemoryTransport(size=100)
        self.hub = Hub(transport=self.transport, clock=self.clock, heartbeat=0, write_timeout=0)
        self.successResultOf(self.hub.start())
        verifier: Any = None  # watch never checks tokens
        self.port = InProcessPort(self.hub, verifier, lambda _: "https://hub.example/.well-known/mercure")
        self.received: list[ReceivedUpdate] = []

    async def _record(self, update: ReceivedUpdate) -> None:
        self.received.append(update)

    def publish(self, id: str, topic: str = TOPIC, *, private: bool = False, data: str = "d") -> None:
        self.successResultOf(self.hub.publish(Update(topics=(topic,), id=id, data=data, private=private)))

    def ids(self) -> list[str]:
        return [u.id for u in self.received]

    def test_every_public_update_of_every_topic(self) -> None:
        assert InProcessPort.watches_all
        self.port.watch(None, None, self._record)
        self.publish("a")
        self.publish("b", OTHER, data="x")
        assert self.received == [
            ReceivedUpdate("a", (TOPIC,), "d", None), ReceivedUpdate("b", (OTHER,), "x", None)
        ]

    def test_private_updates_are_never_handed_over(self) -> None:
        self.port.watch(None, None, self._record)
        self.publish("secret", private=True)
        self.publish("public")
        assert self.ids() == ["public"]

    def test_a_topic_watch_sees_only_that_topic(self) -> None:
        self.port.watch(TOPIC, None, self._record)
        self.publish("a")
        self.publish("b", OTHER)
        assert self.ids() == ["a"]

    def test_updates_are_handed_over_one_at_a_time_in_order(self) -> None:
        pending: list[Deferred[None]] = []

        async def slow(update: ReceivedUpdate) -> None:
            self.received.append(update)
            d: Deferred[None] = Deferred()
            pending.append(d)
            await d

        self.port.watch(None, None, slow)
        for id in "abc":
            self.publish(id)
        assert self.ids() == ["a"]
        pending.pop().callback(None)
        assert self.ids() == ["a", "b"]
        pending.pop().callback(None)
        pending.pop().callback(None)
        assert self.ids() == ["a", "b", "c"]

    def test_a_failing_handler_loses_only_that_update(self) -> None:
        async def flaky(update: ReceivedUpdate) -> None:
            if update.id == "bad":
                raise RuntimeError("store down")
            self.received.append(update)

        self.port.watch(None, None, flaky)
        self.publish("bad")
        self.publish("good")
        assert self.ids() == ["good"]
        assert len(self.flushLoggedErrors(RuntimeError)) == 1

    def test_since_replays_history_then_live_without_gap_or_duplicate(self) -> None:
        for id in ("1", "2", "3"):
            self.publish(id)
        # History is read asynchronously: live updates arriving meanwhile
        # are held, then released after the replay, the covered ones skipped.
        reading: Deferred[HistoryResult] = Deferred()
        real_history = self.transport.history
        self.transport.history = lambda since: reading  # type: ignore[method-assign]
        self.port.watch(None, "1", self._record)
        self.publish("4")
        assert self.ids() == []
        reading.callback(self.successResultOf(real_history("1")))
        self.publish("5")
        assert self.ids() == ["2", "3", "4", "5"]

    def test_unknown_since_gives_live_updates_and_a_warning(self) -> None:
        self.publish("1")
        self.port.watch(None, "gone", self._record)
        self.publish("2")
        assert self.ids() == ["2"]

    def test_a_history_read_that_fails_is_retried_and_nothing_live_is_lost(self) -> None:
        self.publish("1")
        self.publish("2")
        real_history = self.transport.history
        self.transport.history = lambda since: fail(TransportUnavailable("down"))  # type: ignore[method-assign]
        self.port.watch(None, "1", self._record)
        self.publish("3")
        assert self.ids() == []
        self.transport.history = real_history  # type: ignore[method-assign]
        self.clock.advance(5)
        assert self.ids() == ["2", "3"]

    def test_stop_ends_the_watch(self) -> None:
        watch = self.port.watch(None, None, self._record)
        self.publish("a")
        watch.stop()
        self.publish("b")
        assert self.ids() == ["a"]

    def test_a_listener_that_raises_never_stops_a_dispatch(self) -> None:
        def broken(update: Update) -> None:
            raise ValueError("boom")

        remove = self.hub.add_listener(broken)
        self.port.watch(None, None, self._record)
        self.publish("a")
        assert self.ids() == ["a"]
        assert len(self.flushLoggedErrors(ValueError)) == 1
        remove()
        self.publish("b")
        assert self.ids() == ["a", "b"]
        assert not self.flushLoggedErrors(ValueError)
