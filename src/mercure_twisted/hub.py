"""The engine: publish, dispatch, subscribe with replay, subscription events.

The engine knows no HTTP.  It is driven by the web layer (or a test) with
``Update`` values and ``Subscriber`` objects, and it is the one place that
decides who receives what: the topic index narrows the candidates, then
``Subscriber.wants``/``Grants.may_read`` filters private updates.
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol, Sequence

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .deadlines import Deadlines
from .index import TopicIndex
from .logs import debug_logged
from .subscriber import Subscriber
from .transports import IPresence, ITransport, SubscriptionRecord
from .update import Update

__all__ = ["Hub", "HubObserver", "SubscriptionEvents", "UpdateListener"]


class HubObserver(Protocol):
    """Told what the engine does, for metrics and logs (see ``metrics.HubMetrics``).

    Observers only count and log: they never change what the engine does,
    and the engine knows nothing of what they feed.
    """

    def subscribed(self, subscriber: Subscriber) -> None: ...

    def unsubscribed(self, subscriber: Subscriber, reason: str) -> None: ...

    def dispatched(self, update: Update, receivers: int, seconds: float) -> None: ...

    def transport_failed(self, operation: str) -> None: ...


#: Builds the subscription-event updates of a subscriber that starts
#: (``True``) or ends (``False``): one per subscription, in its dialect.
SubscriptionEvents = Callable[[Subscriber, bool], Iterable[Update]]

#: Called with every update the engine dispatches, private ones included
#: (the listener decides what it may pass on): the in-process WebSub hub
#: role reads the hub's updates this way, with no HTTP and no subscriber.
UpdateListener = Callable[[Update], None]


class Hub:
    log = Logger()

    def __init__(
        self,
        *,
        transport: ITransport,
        clock: IReactorTime,
        heartbeat: float = 40.0,
        write_timeout: float = 600.0,
        subscription_events: SubscriptionEvents | None = None,
        observers: Sequence[HubObserver] = (),
    ) -> None:
        self._observers = tuple(observers)
        self.transport = transport
        self._clock = clock
        self._heartbeat = heartbeat
        self._write_timeout = write_timeout
        self._subscription_events = subscription_events
        self._index: TopicIndex[Subscriber] = TopicIndex()
        self.subscribers: dict[str, Subscriber] = {}
        self._deadlines = Deadlines(clock, self._deadline_reached, self.subscribers.__contains__)
        self._heartbeat_loop: LoopingCall | None = None
        self._listeners: tuple[UpdateListener, ...] = ()
        self.running = False

    @property
    def clock(self) -> IReactorTime:
        """The clock the engine's timers run on (a ``task.Clock`` in tests)."""
        return self._clock

    # -- lifecycle --------------------------------------------------------

    def start(self) -> Deferred[None]:
        async def start() -> None:
            result = self.transport.start(self._dispatch)
            if isinstance(result, Deferred):
                await result
            self.running = True
            if self._heartbeat > 0:
                # One sweep every quarter interval, beating for streams silent
                # three quarters of it: silence never exceeds the interval,
                # and a quiet stream gets one comment per interval or less.
                self._heartbeat_loop = self._loop(self._beat, self._heartbeat / 4)

        return ensureDeferred(start())

    def _loop(self, f: Callable[[], None], interval: float) -> LoopingCall:
        loop = LoopingCall(f)
        loop.clock = self._clock
        loop.start(interval, now=False)
        return loop

    def stop(self) -> Deferred[None]:
        """End every stream cleanly, then let the transport flush."""

        async def stop() -> None:
            self.running = False
            if self._heartbeat_loop is not None and self._heartbeat_loop.running:
                self._heartbeat_loop.stop()
            for subscriber in list(self.subscribers.values()):
                subscriber.close("hub shutting down")
            self._deadlines.stop()
            result = self.transport.stop()
            if isinstance(result, Deferred):
                await result

        return ensureDeferred(stop())

    # -- publishing -------------------------------------------------------

    def publish(self, update: Update) -> Deferred[Update]:
        """Store ``update`` through the transport, which then dispatches it.

        Fires with the stored update once the transport has it; fails with
        ``TransportUnavailable`` when it cannot be stored.
        """
        return self.transport.publish(update)

    def add_listener(self, listener: UpdateListener) -> Callable[[], None]:
        """Call ``listener`` with every dispatched update, after the
        subscribers; returns the function that removes it.  A listener that
        raises is logged and kept: it never stops a dispatch."""
        self._listeners = (*self._listeners, listener)

        def remove() -> None:
            self._listeners = tuple(l for l in self._listeners if l is not listener)

        return remove

    def _dispatch(self, update: Update) -> None:
        started = self._clock.seconds()
        receivers = 0
        for subscriber in self._index.candidates(update.topics):
            if update.private and not subscriber.grants.may_read(update.topics):
                continue
            subscriber.deliver(update)
            receivers += 1
        for listener in self._listeners:
            try:
                listener(update)
            except Exception:
                self.log.failure("an update listener failed on {id}", id=update.id)
        for observer in self._observers:
            observer.dispatched(update, receivers, self._clock.seconds() - started)

    # -- subscribing ------------------------------------------------------

    async def subscribe(
        self,
        subscriber: Subscriber,
        last_event_id: str | None,
        before_replay: Callable[[str | None], None] = lambda _: None,
    ) -> None:
        """Register ``subscriber``; replay history after ``last_event_id``.

        ``before_replay`` is called once, before anything is written to the
        subscriber, with the value of the response's last-event-id header:
        ``None`` when none was requested, the requested id when it was found
        in history, else ``earliest``.  Live events arriving meanwhile are
        held and released after the replay, without loss or duplicate.
        """
        self.subscribers[subscriber.id] = subscriber
        self._index.add(subscriber, subscriber.matchers)
        for observer in self._observers:
            observer.subscribed(subscriber)
        presence: IPresence | None = self.transport.presence
        if presence is not None:
            presence.add(subscriber.id, subscriber.records())
        self._schedule_deadline(subscriber)
        if last_event_id is None:
            before_replay(None)
            self._announce(subscriber, active=True)
            return
        subscriber.hold()
        self._announce(subscriber, active=True)
        try:
            history = await self.transport.history(last_event_id)
        except BaseException as e:
            if not isinstance(e, CancelledError):
                for observer in self._observers:
                    observer.transport_failed("history")
            # Nothing was written yet: the caller answers (503, or nothing
            # when the client is gone); the subscriber is only let go here.
            subscriber.connection_lost("history unavailable")
            raise
        if subscriber.closed:
            return
        before_replay(last_event_id if history.found else "earliest")
        subscriber.replay(history)

    def unsubscribe(self, subscriber: Subscriber, reason: str) -> None:
        """Called once when a subscriber's stream ends, for whatever reason."""
        if self.subscribers.get(subscriber.id) is not subscriber:
            return
        del self.subscribers[subscriber.id]
        self._index.remove(subscriber, subscriber.matchers)
        for observer in self._observers:
            observer.unsubscribed(subscriber, reason)
        presence: IPresence | None = self.transport.presence
        if presence is not None:
            presence.remove(subscriber.id)
        self._deadlines.discard(subscriber.id)
        if debug_logged():
            self.log.debug(
                "subscriber {subscriber} closed: {reason}", subscriber=subscriber.id, reason=reason
            )
        if self.running:
            self._announce(subscriber, active=False)

    def _schedule_deadline(self, subscriber: Subscriber) -> None:
        now = self._clock.seconds()
        candidates = []
        if self._write_timeout > 0:
            candidates.append((now + self._write_timeout, "write_timeout reached"))
        if subscriber.grants.expires_at is not None:
            candidates.append((subscriber.grants.expires_at, "token expired"))
        if not candidates:
            return
        when, reason = min(candidates)
        self._deadlines.add(subscriber.id, when, reason)

    def _deadline_reached(self, subscriber_id: str, reason: str) -> None:
        subscriber = self.subscribers.get(subscriber_id)
        if subscriber is not None:
            subscriber.close(reason)

    def _announce(self, subscriber: Subscriber, *, active: bool) -> None:
        if self._subscription_events is None:
            return
        for update in self._subscription_events(subscriber, active):
            d = self.transport.publish(update)
            d.addErrback(self._announce_failed)

    def _announce_failed(self, failure: Failure) -> None:
        for observer in self._observers:
            observer.transport_failed("subscription_event")
        self.log.failure("could not publish a subscription event", failure)

    # -- timers -----------------------------------------------------------

    def _beat(self) -> None:
        threshold = self._clock.seconds() - self._heartbeat * 0.75
        for subscriber in list(self.subscribers.values()):
            if subscriber.last_write <= threshold:
                subscriber.heartbeat()

    # -- queries ----------------------------------------------------------

    def subscriptions(self) -> Deferred[list[SubscriptionRecord]]:
        """Every active subscription of the hub: of the whole cluster when
        the transport is shared (its presence), else of this process."""
        presence: IPresence | None = self.transport.presence
        if presence is None:
            return succeed([r for s in self.subscribers.values() for r in s.records()])
        return presence.active()

    def last_event_id(self) -> str:
        return self.transport.last_event_id() or "earliest"
