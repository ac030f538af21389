"""The engine driven without HTTP: index, grants, replay, slow subscribers, deadlines."""

from __future__ import annotations

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from mercure_twisted.auth import ANONYMOUS, GrantRule, Grants
from mercure_twisted.hub import Hub
from mercure_twisted.matching import compile_matcher, compile_selector
from mercure_twisted.subscriber import Subscriber
from mercure_twisted.transports import HistoryResult, MemoryTransport
from mercure_twisted.update import Update

from ._sinks import ListSink

BASE = "https://hub.example.com/.well-known/mercure"


def update(topic: str | tuple[str, ...], id: str, private: bool = False, data: str = "d") -> Update:
    topics = (topic,) if isinstance(topic, str) else topic
    return Update(topics=topics, id=id, private=private, data=data)


class HubTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.transport = MemoryTransport(size=10)
        self.hub = Hub(transport=self.transport, clock=self.clock, heartbeat=10, write_timeout=100)
        self.successResultOf(self.hub.start())
        self.closed: list[tuple[str, str]] = []

    def subscriber(
        self, *selectors: str, grants: Grants = ANONYMOUS, last_event_id: str | None = None,
        max_buffer: int = 1 << 20, dispatch_timeout: float = 5.0, urlpattern: bool = False,
    ) -> tuple[Subscriber, ListSink, list[str | None]]:
        sink = ListSink()
        if urlpattern:
            matchers = tuple(compile_matcher("urlpattern", s, BASE) for s in selectors)
        else:
            matchers = tuple(compile_selector(s) for s in selectors)

        def on_close(s: Subscriber, reason: str) -> None:
            self.closed.append((s.id, reason))
            self.hub.unsubscribe(s, reason)

        sub = Subscriber(
            id=f"urn:sub:{len(self.hub.subscribers)}", matchers=matchers,
            match_types=("topic",) * len(matchers), grants=grants, dialect="07", sink=sink,
            clock=self.clock, on_close=on_close, max_buffer=max_buffer,
            dispatch_timeout=dispatch_timeout,
        )
        headers: list[str | None] = []
        self.successResultOf(ensureDeferred(self.hub.subscribe(sub, last_event_id, headers.append)))
        return sub, sink, headers

    def publish(self, u: Update) -> Update:
        return self.successResultOf(self.hub.publish(u))

    def test_exact_template_wildcard_routing(self) -> None:
        _, exact, _ = self.subscriber("https://example.com/books/1")
        _, template, _ = self.subscriber("https://example.com/books/{id}")
        _, wildcard, _ = self.subscriber("*")
        _, other, _ = self.subscriber("https://example.com/authors/1")
        self.publish(update("https://example.com/books/1", "a"))
        self.publish(update("https://example.com/books/2", "b"))
        self.assertEqual(exact.ids(), ["a"])
        self.assertEqual(template.ids(), ["a", "b"])
        self.assertEqual(wildcard.ids(), ["a", "b"])
        self.assertEqual(other.ids(), [])

    def test_alternate_topics_reach_subscribers_once(self) -> None:
        _, sink, _ = self.subscriber("https://example.com/a", "https://example.com/b")
        self.publish(update(("https://example.com/a", "https://example.com/b"), "x"))
        self.assertEqual(sink.ids(), ["x"])

    def test_private_updates_need_a_matching_grant(self) -> None:
        reader = Grants(dialect="07", rules=(
            GrantRule(frozenset({"subscribe"}), (compile_selector("https://example.com/users/1/{+any}"),)),
        ))
        _, anonymous, _ = self.subscriber("https://example.com/books/{id}")
        _, authorized, _ = self.subscriber("https://example.com/books/{id}", grants=reader)
        self.publish(update("https://example.com/books/1", "p1", private=True))
        self.publish(update(
            ("https://example.com/books/2", "https://example.com/users/1/books/2"), "p2", private=True))
        self.publish(update("https://example.com/books/3", "pub"))
        self.assertEqual(anonymous.ids(), ["pub"])
        self.assertEqual(authorized.ids(), ["p2", "pub"])

    def test_urlpattern_subscriber(self) -> None:
        _, sink, _ = self.subscriber("https://example.com/books/:id", urlpattern=True)
        self.publish(update("https://example.com/books/1", "a"))
        self.publish(update("https://example.com/books/1/x", "b"))
        self.assertEqual(sink.ids(), ["a"])

    def test_replay_after_last_event_id(self) -> None:
        for i in range(5):
            self.publish(update("t", f"e{i}"))
        _, sink, headers = self.subscriber("t", last_event_id="e2")
        self.assertEqual(headers, ["e2"])
        self.assertEqual(sink.ids(), ["e3", "e4"])
        self.publish(update("t", "e5"))
        self.assertEqual(sink.ids(), ["e3", "e4", "e5"])

    def test_replay_unknown_id_and_earliest(self) -> None:
        self.publish(update("t", "e0"))
        _, unknown, h1 = self.subscriber("t", last_event_id="nope")
        _, earliest, h2 = self.subscriber("t", last_event_id="earliest")
        self.assertEqual((h1, unknown.ids()), (["earliest"], []))
        self.assertEqual((h2, earliest.ids()), (["earliest"], ["e0"]))

    def test_no_header_without_request(self) -> None:
        _, _, headers = self.subscriber("t")
        self.assertEqual(headers, [None])

    def test_replay_is_authorized_again(self) -> None:
        self.publish(update("t", "secret", private=True))
        self.publish(update("t", "public"))
        _, sink, _ = self.subscriber("t", last_event_id="earliest")
        self.assertEqual(sink.ids(), ["public"])

    def test_reused_id_resolves_to_earliest(self) -> None:
        for id in ["a", "dup", "b", "dup", "c"]:
            self.publish(update("t", id))
        _, sink, _ = self.subscriber("t", last_event_id="dup")
        self.assertEqual(sink.ids(), ["b", "dup", "c"])

    def test_history_is_bounded(self) -> None:
        for i in range(25):
            self.publish(update("t", f"e{i}"))
        _, sink, headers = self.subscriber("t", last_event_id="e3")
        self.assertEqual(headers, ["earliest"])
        _, sink, _ = self.subscriber("t", last_event_id="earliest")
        self.assertEqual(sink.ids(), [f"e{i}" for i in range(15, 25)])

    def slow_replay(self, last_event_id: str) -> tuple[ListSink, list[str | None], HistoryResult]:
        """Subscribe with a slow replay: its answer arrives after live events
        did, and is as of live1 (stored before the transport answered), not
        of live2."""
        self.publish(update("t", "old"))
        sink = ListSink()
        sub = Subscriber(
            id="s", matchers=(compile_selector("t"),), match_types=("topic",), grants=ANONYMOUS,
            dialect="07", sink=sink, clock=self.clock, on_close=lambda s, r: self.hub.unsubscribe(s, r),
        )
        pending: Deferred = Deferred()
        original = self.transport.history
        self.transport.history = lambda _id: pending  # type: ignore[method-assign]
        headers: list[str | None] = []
        d = ensureDeferred(self.hub.subscribe(sub, last_event_id, headers.append))
        self.publish(update("t", "live1"))
        history = self.successResultOf(original(last_event_id))
        self.publish(update("t", "live2"))
        pending.callback(history)
        self.successResultOf(d)
        return sink, headers, history

    def test_live_events_during_replay_neither_lost_nor_duplicated(self) -> None:
        sink, _, history = self.slow_replay("old")
        self.assertTrue(history.found)
        self.assertEqual(sink.ids(), ["live1", "live2"])

    def test_a_late_live_copy_of_a_replayed_update_is_not_sent_again(self) -> None:
        """In a cluster, this node's copy of an update can arrive after its
        replay, read from the shared history, already sent it."""
        sink, _, history = self.slow_replay("old")
        live1 = self.transport._log[-2]  # type: ignore[attr-defined]
        self.assertEqual(live1.id, "live1")
        self.assertEqual(live1.position, history.up_to)
        [sub] = self.hub.subscribers.values()
        sub.deliver(live1)
        self.publish(update("t", "later"))
        self.assertEqual(sink.ids(), ["live1", "live2", "later"])

    def test_live_events_during_an_unknown_id_replay_are_not_lost(self) -> None:
        """An unknown id replays nothing: every live event held meanwhile is
        sent, even those stored before the transport answered."""
        sink, headers, history = self.slow_replay("never-seen")
        self.assertFalse(history.found)
        self.assertEqual(headers, ["earliest"])
        self.assertEqual(sink.ids(), ["live1", "live2"])

    def test_heartbeat_after_silence(self) -> None:
        _, sink, _ = self.subscriber("t")
        for _ in range(7):
            self.clock.advance(1)
        self.assertEqual(sink.data, b"")
        for _ in range(3):
            self.clock.advance(1)
        self.assertEqual(sink.data, b":\n\n")
        for _ in range(10):
            self.clock.advance(1)
        self.assertEqual(sink.data, b":\n\n:\n\n")

    def test_write_timeout_ends_stream(self) -> None:
        sub, sink, _ = self.subscriber("t")
        self.clock.advance(99)
        self.assertFalse(sink.finished)
        self.clock.advance(1)
        self.assertTrue(sink.finished)
        self.assertNotIn(sub.id, self.hub.subscribers)

    def test_token_expiry_ends_stream(self) -> None:
        grants = Grants(dialect="07", expires_at=self.clock.seconds() + 30)
        sub, sink, _ = self.subscriber("t", grants=grants)
        self.clock.advance(30)
        self.assertTrue(sink.finished)
        self.assertEqual(self.closed[-1][1], "token expired")

    def test_slow_subscriber_disconnected_after_dispatch_timeout(self) -> None:
        sub, sink, _ = self.subscriber("t", dispatch_timeout=5)
        sub.pauseProducing()
        self.publish(update("t", "a"))
        self.assertEqual(sink.ids(), [])
        self.clock.advance(3)
        sub.resumeProducing()
        self.assertEqual(sink.ids(), ["a"])
        sub.pauseProducing()
        self.publish(update("t", "b"))
        self.clock.advance(6)
        self.assertTrue(sink.aborted)
        self.assertIn("slow", self.closed[-1][1])
        self.assertNotIn(sub.id, self.hub.subscribers)

    def test_paused_again_while_flushing_still_times_out(self) -> None:
        sub, sink, _ = self.subscriber("t", dispatch_timeout=5)
        sub.pauseProducing()
        self.publish(update("t", "a"))
        self.publish(update("t", "b"))
        original = sink.write

        def write_then_pause(data: bytes) -> None:
            original(data)
            sub.pauseProducing()  # the transport fills up again at once

        sink.write = write_then_pause  # type: ignore[method-assign]
        sub.resumeProducing()
        self.assertEqual(sink.ids(), ["a"])
        self.clock.advance(4)
        self.assertFalse(sink.aborted)
        self.clock.advance(2)
        self.assertTrue(sink.aborted)

    def test_idle_paused_subscriber_is_not_cut_off(self) -> None:
        sub, sink, _ = self.subscriber("t", dispatch_timeout=5)
        sub.pauseProducing()
        self.clock.advance(60)
        self.assertFalse(sink.finished)
        sub.resumeProducing()
        self.publish(update("t", "a"))
        self.assertEqual(sink.ids(), ["a"])

    def test_slow_subscriber_disconnected_over_buffer(self) -> None:
        sub, sink, _ = self.subscriber("t", max_buffer=1000)
        sub.pauseProducing()
        self.publish(update("t", "a", data="x" * 600))
        self.assertFalse(sink.finished)
        self.publish(update("t", "b", data="x" * 600))
        self.assertTrue(sink.aborted)

    def test_event_bytes_shared_between_receivers(self) -> None:
        _, s1, _ = self.subscriber("t")
        _, s2, _ = self.subscriber("t")
        self.publish(update("t", "a"))
        self.assertIs(s1.chunks[0], s2.chunks[0])

    def test_disconnect_unregisters(self) -> None:
        sub, _, _ = self.subscriber("t")
        sub.connection_lost()
        self.assertEqual(self.hub.subscribers, {})
        self.assertEqual(len(self.hub._index), 0)

    def test_stop_closes_every_stream(self) -> None:
        _, s1, _ = self.subscriber("t")
        _, s2, _ = self.subscriber("u")
        self.successResultOf(self.hub.stop())
        self.assertTrue(s1.finished and s2.finished)
