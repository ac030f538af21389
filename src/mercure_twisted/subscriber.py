"""One subscriber connection: what it listens to, and how bytes reach it.

A subscriber is a push producer registered on its HTTP response.  When the
client reads slower than events arrive, Twisted pauses it; events then wait
in a small queue, and a subscriber that stays paused longer than
``dispatch_timeout`` or whose queue grows past ``max_buffer`` bytes is
disconnected, so that one slow reader never makes the hub's memory grow.

While history is replayed, live events are held and then released without
loss or duplicate: the replay tells up to which transport position it
covered, and only events after that position are written, those held and
those that reach this process later (a cluster node's copy of an update
can arrive after another node's history already held it).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable, Protocol

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from .auth import Grants
from .matching import Matcher
from .transports import HistoryResult, SubscriptionRecord
from .update import Update, encode_comment

__all__ = ["Subscriber", "StreamSink"]


class StreamSink(Protocol):
    """Where a subscriber's bytes go (the HTTP response, or a test double)."""

    def write(self, data: bytes) -> None: ...

    def finish(self) -> None: ...

    def register_producer(self, producer: IPushProducer) -> None: ...

    def release(self) -> None:
        """The client went away: drop references, write nothing more."""

    def abort(self) -> None:
        """Drop the connection now, with whatever is still buffered for it."""


@implementer(IPushProducer)
class Subscriber:
    """A connected subscriber.

    ``dialect`` is the protocol generation of the request ("07" or "08"),
    which decides how its subscriptions are described.  ``match_types``
    parallels ``matchers`` with the name under which each was requested
    (``topic`` for draft-07 selectors, ``exact``/``urlpattern`` for draft-08).
    """

    log = Logger()

    # Tens of thousands of these live at once: no per-instance dict, and the
    # queue of a paused subscriber is only allocated when it is needed.
    __slots__ = (
        "id", "matchers", "match_types", "grants", "dialect", "_sink", "_clock",
        "_on_close", "_max_buffer", "_dispatch_timeout", "last_write",
        "_held", "_replayed_to", "_paused_since", "_queue", "_queued_bytes", "_lag_timer",
        "closed", "__weakref__",
    )

    def __init__(
        self,
        *,
        id: str,
        matchers: tuple[Matcher, ...],
        match_types: tuple[str, ...],
        grants: Grants,
        dialect: str,
        sink: StreamSink,
        clock: IReactorTime,
        on_close: Callable[[Subscriber, str], None],
        max_buffer: int = 4 * 1024 * 1024,
        dispatch_timeout: float = 5.0,
    ) -> None:
        self.id = id
        self.matchers = matchers
        self.match_types = match_types
        self.grants = grants
        self.dialect = dialect
        self._sink = sink
        self._clock = clock
        self._on_close = on_close
        self._max_buffer = max_buffer
        self._dispatch_timeout = dispatch_timeout
        self.last_write = clock.seconds()
        self._held: list[Update] | None = None
        #: The transport position a replay covered: live updates up to it
        #: were written by the replay already.
        self._replayed_to: Any = None
        self._paused_since: float | None = None
        self._queue: deque[bytes] | None = None
        self._queued_bytes = 0
        self._lag_timer: IDelayedCall | None = None
        self.closed = False

    # -- what it receives -------------------------------------------------

    def wants(self, update: Update) -> bool:
        """Routing and authorization for one update (replayed or live)."""
        if update.private and not self.grants.may_read(update.topics):
            return False
        return any(m.matches(t) for m in self.matchers for t in update.topics)

    def records(self) -> tuple[SubscriptionRecord, ...]:
        """This subscriber's subscriptions as plain values (API, events, presence)."""
        return tuple(
            SubscriptionRecord(
                self.id, self.dialect, match_type, matcher.pattern,
                self.grants.payload_for(matcher.pattern),
            )
            for matcher, match_type in zip(self.matchers, self.match_types)
        )

    # -- delivery ---------------------------------------------------------

    def deliver(self, update: Update) -> None:
        """A live update the index and grant check selected for this subscriber."""
        if self.closed:
            return
        if self._held is not None:
            self._held.append(update)
            return
        replayed_to = self._replayed_to
        if replayed_to is not None and update.position is not None:
            if update.position <= replayed_to:
                return
        self.send(update.encoded)

    def hold(self) -> None:
        """Start holding live events while history is being replayed."""
        self._held = []

    def replay(self, history: HistoryResult) -> None:
        """Write the replayed events, then the held live ones not already sent."""
        held, self._held = self._held or [], None
        for update in history.updates:
            if self.closed:
                return
            if self.wants(update):
                self.send(update.encoded)
        # Only a found id's replay covers events up to ``up_to``; an unknown
        # one replays nothing, so every held event is still to be sent.
        if history.found and history.up_to is not None:
            self._replayed_to = history.up_to
        for update in held:
            self.deliver(update)

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self._paused_since is not None:
            if self._queue is None:
                self._queue = deque()
            self._queue.append(data)
            self._queued_bytes += len(data)
            if self._queued_bytes > self._max_buffer:
                self.cut_off("slow: write buffer over limit")
            elif self._lag_timer is None:
                self._arm_lag_timer()
            return
        self.last_write = self._clock.seconds()
        self._sink.write(data)

    def heartbeat(self) -> None:
        if self._paused_since is None:
            self.send(encode_comment())

    def _arm_lag_timer(self) -> None:
        """Cut the subscriber off ``dispatch_timeout`` after it was paused.

        Armed only while events wait for a paused subscriber, so that idle
        subscribers cost no timer and no periodic check.
        """
        if not self._dispatch_timeout or self._paused_since is None:
            return
        delay = self._paused_since + self._dispatch_timeout - self._clock.seconds()
        self._lag_timer = self._clock.callLater(max(0.0, delay), self._lag_expired)

    def _lag_expired(self) -> None:
        self._lag_timer = None
        if self._paused_since is not None and self._queue:
            self.cut_off("slow: more than dispatch_timeout behind")

    def _cancel_lag_timer(self) -> None:
        if self._lag_timer is not None:
            if self._lag_timer.active():
                self._lag_timer.cancel()
            self._lag_timer = None

    # -- IPushProducer ----------------------------------------------------

    def pauseProducing(self) -> None:
        if self._paused_since is None:
            self._paused_since = self._clock.seconds()

    def resumeProducing(self) -> None:
        self._paused_since = None
        self._cancel_lag_timer()
        queue = self._queue
        while queue and self._paused_since is None and not self.closed:
            data = queue.popleft()
            self._queued_bytes -= len(data)
            self.last_write = self._clock.seconds()
            self._sink.write(data)
        if not queue:
            self._queue = None
        elif not self.closed:  # paused again while flushing
            self._arm_lag_timer()

    def stopProducing(self) -> None:
        self.connection_lost()

    # -- ending -----------------------------------------------------------

    def close(self, reason: str) -> None:
        """End the stream cleanly (the client reconnects with Last-Event-ID)."""
        if self.closed:
            return
        self.closed = True
        # Finish before telling the owner: the owner's callback may end the
        # HTTP request too, and the producer must be unregistered first.
        try:
            self._sink.finish()
        except Exception:  # the connection may already be gone
            pass
        self._release(reason)

    def cut_off(self, reason: str) -> None:
        """Drop a subscriber that cannot keep up.

        Finishing its response cleanly would leave the bytes already
        buffered for it (and its connection) held until it reads them: it is
        aborted instead, which frees both at once.
        """
        if self.closed:
            return
        self.closed = True
        self._sink.release()
        self._sink.abort()
        self._release(reason)

    def connection_lost(self, reason: str = "client disconnected") -> None:
        if not self.closed:
            self.closed = True
            self._sink.release()
            self._release(reason)

    def _release(self, reason: str) -> None:
        self._cancel_lag_timer()
        self._queue = None
        self._queued_bytes = 0
        self._held = None
        self._on_close(self, reason)
