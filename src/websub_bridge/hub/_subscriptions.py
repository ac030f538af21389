"""Subscription requests of the hub role (WebSub sections 5.1 to 5.3).

A request is answered 202 as soon as it is well formed and acceptable, and
verified afterwards, independently of the answer (section 5.1.2): the
subscriber's server may only be able to answer the verification once our
202 has reached it.  A verified request replaces the (topic, callback)
subscription; one that fails verification leaves any existing one intact.
A topic that is not offered is refused by *denial* (section 5.2): a GET
with ``hub.mode=denied`` to the callback, after the 202.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..client import OutboundClient, loggable_origin
from ._config import HubRoleConfig
from ._requests import RequestError, SubscriptionRequest, lease_for
from ._store import HubStore, HubStoreUnavailable, Subscription, callback_host
from ._verify import send_denial, verify_intent

__all__ = ["Subscriptions"]


class Subscriptions:
    """Accepts, verifies and records subscription requests."""

    log = Logger()

    def __init__(
        self,
        *,
        store: HubStore,
        client: OutboundClient,
        config: HubRoleConfig,
        clock: IReactorTime,
        verify_timeout: float = 10.0,
        on_subscribed: Callable[[str], None] = lambda topic: None,
    ) -> None:
        self._store = store
        self._client = client
        self._config = config
        self._clock = clock
        self._verify_timeout = verify_timeout
        #: Told the topic of each verified subscription (so that a port
        #: watching topic by topic opens that topic's stream at once).
        self._on_subscribed = on_subscribed
        #: Verifications in flight (cancelled at stop).
        self._pending: set[Deferred[None]] = set()

    async def accept(self, request: SubscriptionRequest) -> None:
        """Check ``request`` and start its verification; raises `RequestError`
        (answered with its status) when it cannot be accepted at all."""
        host = callback_host(request.callback)
        if request.mode == "subscribe" and self._config.offered(request.topic) is not None:
            try:
                existing = await self._store.subscription(request.topic, request.callback)
                count = await self._store.count_for_host(host, self._clock.seconds())
            except HubStoreUnavailable:
                raise RequestError(503, "the hub cannot record subscriptions now; retry later") from None
            if existing is None and count >= self._config.max_subscriptions_per_host:
                raise RequestError(
                    429, f"the callback host {host} holds the most subscriptions this hub allows"
                )
        self._start(self._process(request))

    def _start(self, work: Any) -> None:
        d: Deferred[None] = Deferred.fromCoroutine(work)
        self._pending.add(d)

        def done(result: object) -> None:
            self._pending.discard(d)

        def failed(failure: Failure) -> None:
            if failure.check(CancelledError) is None:
                self.log.failure("websub hub: processing a subscription request failed", failure)

        d.addErrback(failed)
        d.addBoth(done)

    async def _process(self, request: SubscriptionRequest) -> None:
        origin = loggable_origin(request.callback)
        if request.mode == "subscribe" and self._config.offered(request.topic) is None:
            reason = "this hub does not offer that topic"
            await send_denial(self._client, request.callback, request.topic, reason)
            self.log.info(
                "websub hub: denied a subscription of {topic} for {origin}",
                topic=request.topic, origin=origin,
            )
            return
        lease = lease_for(
            request.lease_seconds, self._config.lease_seconds,
            self._config.min_lease_seconds, self._config.max_lease_seconds,
        )
        outcome = await verify_intent(self._client, request, lease, timeout=self._verify_timeout)
        if not outcome.ok:
            self.log.info(
                "websub hub: {mode} of {topic} for {origin} not verified: {reason}",
                mode=request.mode, topic=request.topic, origin=origin, reason=outcome.reason,
            )
            return
        now = self._clock.seconds()
        if request.mode == "subscribe":
            await self._store.put_subscription(
                Subscription(
                    topic=request.topic, callback=request.callback, secret=request.secret,
                    lease_expires=now + lease, created_at=now,
                )
            )
            self._on_subscribed(request.topic)
        else:
            await self._store.remove_subscription(request.topic, request.callback)
        self.log.info(
            "websub hub: {mode} of {topic} for {origin} verified",
            mode=request.mode, topic=request.topic, origin=origin,
        )

    def stop(self) -> None:
        for d in list(self._pending):
            d.cancel()
