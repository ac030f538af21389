"""Content distribution (WebSub section 7): the delivery queue's worker.

The worker claims due deliveries from the `HubStore`, sends each one to its
callback (`send_delivery`) and settles it by the answer:

- 2xx: done;
- 410 Gone: the subscription ends (section 7: the subscriber asked to stop);
- anything else, redirects and timeouts included: tried again after a
  full-jitter exponential backoff (`retry_delay`), until `should_give_up`
  (too many attempts or too old); then that notification is dropped and
  the subscription kept until its lease ends.

A slow or dead subscriber never delays the others: each callback host has
its own in-flight cap and request rate (`HostLimits`), a delivery whose
host is at its cap goes back to the queue for a moment instead of waiting
in line, every request has a timeout, and the worker as a whole keeps at
most ``max_in_flight`` requests open.

Each subscription gets its notifications in publication order, one at a
time: a delivery claimed while an earlier one of the same (topic, callback)
is in flight waits behind it (a few in memory, the rest back in the queue,
due after it), and when one is retried the later ones wait for it.  Order
matters to a subscriber that keeps the last state it was sent (another
hub's bridge in document mode); the price is one request at a time per
subscription, and a notification dropped after its last attempt lets the
next ones go.

The queue is the store's, not the worker's: a delivery is claimed for a
bounded time, so one that was being sent when the process died is sent
again by whichever node claims it next (at least once).  Deliveries are
claimed when due, the worker sleeps until the next one is due
(`HubStore.next_due`) and is woken early when new ones are queued.  A
periodic sweep ends expired leases.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Literal

from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..client import OutboundClient, loggable_origin
from ._config import HubRoleConfig
from ._schedule import HostLimits, retry_delay, should_give_up
from ._send import Outcome, send_delivery
from ._store import Delivery, HubStore, HubStoreUnavailable

if TYPE_CHECKING:
    from mercure_twisted.metrics import HubMetrics

__all__ = ["Distributor"]

#: `Distributor._deliver`'s answer when the subscription ended (410).
_GONE: Final = "gone"
#: What a send ended with: due again at (retried), `_GONE`, or None (done).
_Ended = float | Literal["gone"] | None


class Distributor:
    """Sends the queued deliveries, within per-host and global limits."""

    log = Logger()
    #: Deliveries claimed by one store call.
    CLAIM_BATCH = 100
    #: Seconds between sweeps of expired leases (and queue-depth readings).
    SWEEP_SECONDS = 60.0
    #: Seconds before trying the store again after it failed.
    STORE_RETRY_SECONDS = 5.0
    #: Seconds a delivery whose host is at its in-flight cap waits in the queue.
    BUSY_HOST_DELAY = 1.0
    #: Claimed deliveries held in memory behind one in flight, per subscription.
    HOLD_PER_SUBSCRIPTION = 2

    def __init__(
        self,
        *,
        store: HubStore,
        client: OutboundClient,
        config: HubRoleConfig,
        clock: IReactorTime,
        hub_url: str,
        metrics: HubMetrics | None = None,
        max_in_flight: int = 256,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._config = config
        self._clock = clock
        self._hub_url = hub_url
        self._metrics = metrics
        self._max_in_flight = max_in_flight
        self._rng = rng or random.SystemRandom()
        self._limits = HostLimits(
            clock,
            rate=config.rate_per_host,
            burst=config.burst_per_host,
            concurrency=config.concurrency_per_host,
        )
        # A claim outlives the requests it may wait behind (their timeouts)
        # and the settling of it.
        self._claim_seconds = config.delivery_timeout * (self.HOLD_PER_SUBSCRIPTION + 1) + 30.0
        #: Requests in flight, and the delivery each is sending.
        self._sending: dict[Deferred[Any], Delivery] = {}
        #: Subscriptions with a delivery in flight, and those held behind it.
        self._busy: dict[tuple[str, str], deque[Delivery]] = {}
        #: Per subscription, its deliveries waiting in the queue that this
        #: process put there (back), in order, with their due times: only
        #: the first may go; one claimed while others wait goes after them.
        self._requeued: dict[tuple[str, str], list[tuple[Delivery, float]]] = {}
        self._timer: IDelayedCall | None = None
        self._pumping = False
        self._again = False
        self._stopped = True
        self._sweeper = LoopingCall(lambda: Deferred.fromCoroutine(self._sweep()))
        self._sweeper.clock = clock

    # -- life ----------------------------------------------------------

    def start(self) -> None:
        self._stopped = False
        self._sweeper.start(self.SWEEP_SECONDS, now=True).addErrback(
            lambda f: self.log.failure("websub hub: the lease sweep failed", f)
        )
        self.wake()

    def stop(self) -> Deferred[None]:
        """Stop claiming; cancel the requests in flight and give back their
        claims and those of the deliveries held behind them, due at once (a
        restarted or another node sends them next, in order).  Fires when
        all ended."""
        self._stopped = True
        if self._sweeper.running:
            self._sweeper.stop()
        self._cancel_timer()
        # Those in flight first (cancelled: maybe sent, at least once), then
        # those held behind them, so the next claim keeps their order.
        held = [*self._sending.values(), *(d for f in self._busy.values() for d in f)]
        self._busy.clear()
        pending = list(self._sending)
        for d in pending:
            d.cancel()
        released = Deferred.fromCoroutine(self._release(held))
        done: Deferred[Any] = DeferredList([*pending, released], consumeErrors=True)
        return done.addCallback(lambda _: None)

    async def _release(self, held: list[Delivery]) -> None:
        """Due again at once, in order: whichever node claims next sends them."""
        due = self._clock.seconds()
        for delivery in held:
            due += 1e-6
            await self._settle(
                lambda: self._store.retry(delivery.id, due, delivery.attempts), delivery
            )

    @property
    def in_flight(self) -> int:
        return len(self._sending)

    def wake(self) -> None:
        """Look for due deliveries now (new ones were queued, a slot freed)."""
        if self._stopped:
            return
        if self._pumping:
            self._again = True
            return
        self._cancel_timer()
        self._pumping = True
        d = Deferred.fromCoroutine(self._pump())
        d.addErrback(self._pump_failed)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _sleep(self, seconds: float) -> None:
        self._cancel_timer()
        if not self._stopped:
            self._timer = self._clock.callLater(max(seconds, 0.0), self.wake)

    def _pump_failed(self, failure: Failure) -> None:
        self._pumping = False
        self.log.failure("websub hub: the delivery worker failed", failure)
        self._sleep(self.STORE_RETRY_SECONDS)

    # -- claiming ------------------------------------------------------

    async def _pump(self) -> None:
        try:
            while not self._stopped:
                self._again = False
                held = sum(len(f) for f in self._busy.values())
                room = self._max_in_flight - len(self._sending) - held
                if room <= 0:
                    return  # a request that ends wakes us
                wanted = min(room, self.CLAIM_BATCH)
                try:
                    batch = await self._store.claim(self._clock.seconds(), wanted, self._claim_seconds)
                except HubStoreUnavailable as e:
                    self.log.warn(
                        "websub hub: cannot read the delivery queue ({error}); retrying",
                        error=str(e),
                    )
                    self._sleep(self.STORE_RETRY_SECONDS)
                    return
                for delivery in batch:
                    await self._start(delivery)
                if len(batch) < wanted and not self._again:
                    break
            if not self._stopped:
                await self._sleep_until_due()
        finally:
            self._pumping = False
        if self._again:
            self.wake()

    async def _sleep_until_due(self) -> None:
        try:
            due = await self._store.next_due()
        except HubStoreUnavailable:
            self._sleep(self.STORE_RETRY_SECONDS)
            return
        if due is not None:
            # At least a short pause: a due time in the past with nothing
            # claimable (claimed by another node) must not spin.
            self._sleep(max(due - self._clock.seconds(), 0.05))

    async def _start(self, delivery: Delivery) -> None:
        key = (delivery.topic, delivery.callback)
        waiting = self._requeued.get(key)
        if waiting:
            if waiting[0][0].id == delivery.id:
                waiting.pop(0)  # its turn
                if not waiting:
                    del self._requeued[key]
            else:
                # Earlier ones of this subscription wait in the queue (put
                # back, or a retry): this one goes after them.
                waiting[:] = [(d, due) for d, due in waiting if d.id != delivery.id]
                await self._requeue([delivery], key, self.BUSY_HOST_DELAY)
                return
        followers = self._busy.get(key)
        if followers is not None:
            # An earlier notification of this subscription is being sent.
            if len(followers) < self.HOLD_PER_SUBSCRIPTION:
                followers.append(delivery)
            else:
                await self._requeue([delivery], key, self.BUSY_HOST_DELAY)
            return
        if not self._limits.try_acquire(delivery.host):
            # The host is at its cap or out of tokens: back to the queue,
            # due when a token is free, so the rest of the batch goes on.
            await self._requeue([delivery], key, self._host_delay(delivery.host))
            return
        self._busy[key] = deque()
        self._send(delivery, key)

    async def _requeue(self, deliveries: list[Delivery], key: tuple[str, str], delay: float) -> None:
        """Back to the queue, due at least ``delay`` from now and after those
        of the same subscription already waiting there, in order."""
        waiting = self._requeued.setdefault(key, [])
        due = max(self._clock.seconds() + delay, waiting[-1][1] if waiting else 0.0)
        for delivery in deliveries:
            due += 1e-6  # strictly later: the queue keeps their order
            waiting.append((delivery, due))
            await self._settle(
                lambda: self._store.retry(delivery.id, due, delivery.attempts), delivery
            )

    def _send(self, delivery: Delivery, key: tuple[str, str]) -> None:
        d = Deferred.fromCoroutine(self._deliver(delivery))
        self._sending[d] = delivery

        def ended(result: object) -> object:
            self._sending.pop(d, None)
            self._limits.release(delivery.host)
            return result

        d.addBoth(ended)
        d.addErrback(self._delivery_failed, delivery)
        d.addCallback(lambda after: Deferred.fromCoroutine(self._next_of(key, after, delivery)))
        d.addErrback(lambda f: self.log.failure("websub hub: the delivery worker failed", f))
        d.addBoth(lambda _: self.wake())

    async def _next_of(self, key: tuple[str, str], after: _Ended, retried: Delivery) -> None:
        """The delivery of ``key`` ended: send the next one held, or, when it
        is to be retried at ``after`` (or the host is busy), put the held ones
        back in the queue after it."""
        followers = self._busy.pop(key, deque())
        if after == _GONE:
            self._requeued.pop(key, None)  # the store dropped them with the subscription
            return
        if self._stopped:
            return
        if after is not None:
            # The retried one waits first; everything later of
            # this subscription, held here or already put back, goes after
            # it, in publication order (created_at is the enqueue time; the
            # sort is stable).
            later = [*followers, *(d for d, _ in self._requeued.pop(key, []))]
            later.sort(key=lambda d: d.created_at)
            self._requeued[key] = [(retried, after)]
            await self._requeue(later, key, 0.0)
            return
        if not followers:
            return
        first = followers.popleft()
        if self._limits.try_acquire(first.host):
            self._busy[key] = followers
            self._send(first, key)
            return
        await self._requeue([first, *followers], key, self._host_delay(first.host))

    def _host_delay(self, host: str) -> float:
        """How long a delivery to a busy ``host`` waits in the queue: until
        a token is free, or a moment when only its in-flight cap is full
        (no clock tells when a request ends)."""
        return self._limits.delay_until_available(host) or self.BUSY_HOST_DELAY

    def _delivery_failed(self, failure: Failure, delivery: Delivery) -> None:
        if failure.check(CancelledError) is None:
            self.log.failure(
                "websub hub: delivery to {origin} failed", failure,
                origin=loggable_origin(delivery.callback),
            )

    # -- sending -------------------------------------------------------

    async def _deliver(self, delivery: Delivery) -> _Ended:
        """Send once and settle; returns when it is due again (retried),
        `_GONE` (the subscription ended) or None (done or dropped)."""
        outcome = await send_delivery(
            self._client,
            delivery,
            hub_url=self._hub_url,
            algorithm=self._config.signature_algorithm,
            timeout=self._config.delivery_timeout,
        )
        origin = loggable_origin(delivery.callback)
        if outcome.outcome is Outcome.DELIVERED:
            self._count("delivered")
            await self._settle(lambda: self._store.complete(delivery.id), delivery)
            return None
        if outcome.outcome is Outcome.GONE:
            self._count("gone")
            self.log.info(
                "websub hub: {origin} answered 410 Gone: subscription to {topic} ended",
                origin=origin, topic=delivery.topic,
            )
            await self._settle(
                lambda: self._store.remove_subscription(delivery.topic, delivery.callback),
                delivery,
            )
            return _GONE
        attempts = delivery.attempts + 1
        now = self._clock.seconds()
        if should_give_up(
            attempts, delivery.created_at, now,
            max_attempts=self._config.max_attempts, max_age=self._config.max_delivery_age,
        ):
            self._count("failed")
            self.log.warn(
                "websub hub: dropped update {update} for {origin} ({topic}) after "
                "{attempts} attempt(s): {reason}",
                update=delivery.update_id, origin=origin, topic=delivery.topic,
                attempts=attempts, reason=outcome.reason,
            )
            await self._settle(lambda: self._store.complete(delivery.id), delivery)
            return None
        delay = retry_delay(attempts, rng=self._rng)
        self._count("retried")
        self.log.info(
            "websub hub: delivery of {update} to {origin} failed ({reason}); "
            "attempt {attempts} of {most}, next in {delay:.0f}s",
            update=delivery.update_id, origin=origin, reason=outcome.reason,
            attempts=attempts, most=self._config.max_attempts, delay=delay,
        )
        await self._settle(lambda: self._store.retry(delivery.id, now + delay, attempts), delivery)
        return now + delay

    async def _settle(self, write: Callable[[], Awaitable[object]], delivery: Delivery) -> None:
        """Record a delivery's fate; a store that fails leaves the claim to
        expire, and the delivery is then sent again (at least once)."""
        try:
            await write()
        except HubStoreUnavailable as e:
            self.log.warn(
                "websub hub: could not record the delivery of {update} ({error}); "
                "it will be sent again",
                update=delivery.update_id, error=str(e),
            )

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.websub_deliveries.labels(outcome=outcome).inc()

    # -- leases --------------------------------------------------------

    async def _sweep(self) -> None:
        now = self._clock.seconds()
        # Put back and claimed elsewhere since (another node): forgotten.
        stale = now - self._claim_seconds
        for key, entries in list(self._requeued.items()):
            kept = [(d, due) for d, due in entries if due > stale]
            if kept:
                self._requeued[key] = kept
            else:
                del self._requeued[key]
        try:
            expired = await self._store.expire(now)
            depth = await self._store.queue_depth()
        except HubStoreUnavailable as e:
            self.log.warn("websub hub: lease sweep skipped ({error})", error=str(e))
            return
        for subscription in expired:
            self.log.info(
                "websub hub: the lease of {origin} on {topic} ended",
                origin=loggable_origin(subscription.callback), topic=subscription.topic,
            )
        if self._metrics is not None:
            self._metrics.websub_retry_queue.set(depth)
