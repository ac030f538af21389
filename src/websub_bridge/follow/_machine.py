"""The subscriber role: one state machine per followed topic.

A follow goes ``pending`` (discover, send the subscription request, wait
for the hub's verification of intent) -> ``active`` (deliveries are
re-published; the lease is renewed at `RENEW_FRACTION` of its length,
re-discovering the hub) -> ``unsubscribing`` once removed (until the hub
verified the unsubscription) -> gone.  A hub's ``hub.mode=denied`` makes
it ``denied`` for good (the reason is kept).

Every request we make to a hub is a `Callback` row, written *before* the
request is sent: a hub that verifies while our POST is still waiting for
its answer (some verify synchronously) finds it pending.  The callback
URL carries an unguessable token, a new one for every request, so a
renewal gets a new callback; the previous one stays valid until the new
one is verified, then it is unsubscribed.

Failures (discovery, a refused or unreachable hub, a hub that never
verifies) are retried with capped exponential backoff, honouring
``Retry-After``; all timers run on the injected clock.  What hubs POST on
our callbacks is handled by ``_delivery.Deliveries``.
"""

from __future__ import annotations

import email.utils
import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..client import OutboundClient, OutboundError, Response
from ..client import loggable_url as _u
from ..config import BridgeConfig, FollowSpec
from ..discovery import DiscoveryError, discover
from ..guard import GuardError
from ..port import IHubPort
from ..signature import random_secret
from ..store import Callback, DuplicateFollow, Follow, Store
from ._delivery import Answer, Deliveries

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "RENEW_FRACTION",
    "VERIFICATION_TIMEOUT",
    "Answer",
    "Follower",
    "TooManyFollows",
    "backoff_delay",
    "retry_after_seconds",
]

#: Renew when this fraction of the lease has passed.
RENEW_FRACTION = 0.85
#: First retry delay and its cap, in seconds (doubling in between).
BACKOFF_BASE = 5.0
BACKOFF_CAP = 3600.0
#: The longest ``Retry-After`` honoured (a day).
RETRY_AFTER_CAP = 86400.0
#: Seconds before a timer that fell due during another attempt fires again.
BUSY_RETRY = 1.0
#: How long a hub may take to verify a request it accepted.
VERIFICATION_TIMEOUT = 600.0
#: 307/308 hops followed on a subscription request.
MAX_HUB_REDIRECTS = 5
#: Unsubscription requests tried before we forget the callback (its lease ends anyway).
UNSUBSCRIBE_ATTEMPTS = 5
#: Lease assumed when a hub verifies a subscription without ``hub.lease_seconds``
#: and we asked none: short, so that we renew early rather than lose it.
ASSUMED_LEASE = 86400


class TooManyFollows(Exception):
    """The bridge follows ``max_follows`` topics already."""


def backoff_delay(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before retry number ``attempts`` (1 for the first retry)."""
    delay: float = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** max(0, min(attempts - 1, 30)))
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return delay


def retry_after_seconds(response: Response, now: float) -> float | None:
    """``Retry-After`` of ``response`` in seconds (delta-seconds or an HTTP date)."""
    values = response.headers.getRawHeaders(b"retry-after")
    if not values:
        return None
    text = values[0].decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


def _snippet(body: bytes) -> str:
    """The first line of a hub's error body, short and printable, for last_error."""
    line = body.decode("utf-8", "replace").strip().splitlines()[0] if body.strip() else ""
    line = "".join(c if c.isprintable() else "?" for c in line)
    return line[:200]


class Follower:
    """Every follow of the bridge: subscriptions, callbacks, deliveries."""

    log = Logger()

    def __init__(
        self,
        *,
        store: Store,
        client: OutboundClient,
        port: IHubPort,
        clock: IReactorTime,
        config: BridgeConfig,
    ) -> None:
        self._store = store
        self._client = client
        self._port = port
        self._clock = clock
        self._config = config
        self._timers: dict[int, IDelayedCall] = {}
        self._unsubscribe_timers: dict[str, IDelayedCall] = {}
        self._busy: set[int] = set()
        self._deliveries = Deliveries(store, port)
        self._tasks: set[Deferred[Any]] = set()
        self.running = False

    # -- lifecycle ------------------------------------------------------

    async def start(self) -> None:
        """Open the store, reconcile the configured follows, resume every follow."""
        await self._store.migrate()
        self.running = True
        now = self._clock.seconds()
        follows = {f.topic: f for f in await self._store.follows()}
        wanted = {spec.topic: spec for spec in self._config.follows}
        leaving = [
            f for f in follows.values()
            if f.origin == "config" and f.topic not in wanted and f.state != "unsubscribing"
        ]
        for spec in self._config.follows:
            existing = follows.get(spec.topic)
            if existing is None:
                await self._store.add_follow(
                    topic=spec.topic, mercure_topic=spec.mercure_topic, private=spec.private,
                    lease_seconds=spec.lease_seconds, mode=spec.mode, origin="config", now=now,
                )
            elif existing.state != "unsubscribing":
                await self._store.update_follow(
                    existing.id, mercure_topic=spec.mercure_topic, private=spec.private,
                    lease_seconds=spec.lease_seconds, mode=spec.mode, origin="config",
                )
        gone = {f.id for f in leaving}
        for follow in await self._store.follows():
            if follow.id not in gone:
                await self._resume(follow, now)
        for follow in leaving:
            self.log.info("follow {topic} left the configuration: unsubscribing", topic=_u(follow.topic))
            await self.remove(follow.id)
        self.log.info(
            "websub bridge: callbacks under {base}, {count} follow(s)",
            base=self._config.callback_base, count=len(await self._store.follows()),
        )

    async def _resume(self, follow: Follow, now: float) -> None:
        callbacks = await self._store.callbacks(follow.id)
        for callback in callbacks:
            if callback.mode == "unsubscribe":
                self._start_unsubscribe(callback)
            elif callback.status == "pending":
                # Its request's fate died with the previous process: forget
                # it (a late verification is answered 404) and ask again.
                await self._store.delete_callback(callback.token)
        if follow.state == "unsubscribing":
            if not [c for c in callbacks if c.mode == "unsubscribe"]:
                await self._store.delete_follow(follow.id)
            return
        if follow.state == "denied":
            return
        if follow.state == "active" and follow.lease_expires is not None:
            active = [c for c in callbacks if c.mode == "subscribe" and c.status == "active"]
            if active:
                self._schedule(follow.id, self._renewal_delay(follow.lease_expires, now, active[-1]))
                return
        self._schedule(follow.id, 0)

    def _renewal_delay(self, expires: float, now: float, callback: Callback) -> float:
        lease = max(0.0, expires - callback.created_at)
        renew_at = callback.created_at + lease * RENEW_FRACTION
        return max(0.0, renew_at - now)

    def stop(self) -> None:
        """Cancel every timer; subscriptions stay (they are resumed at start)."""
        self.running = False
        for call in list(self._timers.values()) + list(self._unsubscribe_timers.values()):
            if call.active():
                call.cancel()
        self._timers.clear()
        self._unsubscribe_timers.clear()
        for task in list(self._tasks):
            task.cancel()

    # -- the API's operations ------------------------------------------

    async def add(self, spec: FollowSpec) -> Follow:
        """Follow ``spec.topic`` (raises `DuplicateFollow`, `TooManyFollows`)."""
        if len(await self._store.follows()) >= self._config.max_follows:
            raise TooManyFollows(self._config.max_follows)
        follow = await self._store.add_follow(
            topic=spec.topic, mercure_topic=spec.mercure_topic, private=spec.private,
            lease_seconds=spec.lease_seconds, mode=spec.mode, origin="api",
            now=self._clock.seconds(),
        )
        self.log.info("following {topic} (follow {id})", topic=_u(follow.topic), id=follow.id)
        self._schedule(follow.id, 0)
        return follow

    async def follows(self) -> list[Follow]:
        return await self._store.follows()

    async def follow(self, follow_id: int) -> Follow | None:
        return await self._store.follow(follow_id)

    async def remove(self, follow_id: int) -> Follow | None:
        """Stop following: unsubscribe every callback the hub may hold."""
        follow = await self._store.follow(follow_id)
        if follow is None or follow.state == "unsubscribing":
            return follow
        self._cancel(follow_id)
        now = self._clock.seconds()
        await self._store.update_follow(follow_id, state="unsubscribing")
        to_unsubscribe: list[Callback] = []
        for callback in await self._store.callbacks(follow_id):
            if callback.mode == "subscribe" and callback.status == "pending":
                await self._store.delete_callback(callback.token)
            elif callback.mode == "subscribe":
                await self._store.update_callback(
                    callback.token, mode="unsubscribe", status="pending", created_at=now
                )
                to_unsubscribe.append(
                    attrs.evolve(callback, mode="unsubscribe", status="pending", created_at=now)
                )
        if not await self._store.callbacks(follow_id):
            await self._store.delete_follow(follow_id)
        for callback in to_unsubscribe:
            self._start_unsubscribe(callback)
        self.log.info("unfollowing {topic} (follow {id})", topic=_u(follow.topic), id=follow_id)
        return attrs.evolve(follow, state="unsubscribing")

    # -- timers ---------------------------------------------------------

    def _schedule(self, follow_id: int, delay: float) -> None:
        if not self.running:
            return
        self._cancel(follow_id)
        self._timers[follow_id] = self._clock.callLater(delay, self._fire, follow_id)

    def _cancel(self, follow_id: int) -> None:
        call = self._timers.pop(follow_id, None)
        if call is not None and call.active():
            call.cancel()

    def _fire(self, follow_id: int) -> None:
        self._timers.pop(follow_id, None)
        self._track(self._attempt(follow_id), "subscription attempt of follow {id}", id=follow_id)

    def _track(self, coroutine: Any, what: str, **fields: Any) -> None:
        d: Deferred[Any] = Deferred.fromCoroutine(coroutine)
        self._tasks.add(d)

        def done(result: object) -> None:
            self._tasks.discard(d)
            if isinstance(result, Failure) and not result.check(CancelledError):
                self.log.failure(what + " failed", result, **fields)

        d.addBoth(done)

    # -- subscribing -----------------------------------------------------

    async def _attempt(self, follow_id: int) -> None:
        if follow_id in self._busy:
            # A timer that fell due while a request of this follow is out
            # (a very short lease): look again once that request is over.
            self._schedule(follow_id, BUSY_RETRY)
            return
        self._busy.add(follow_id)
        try:
            follow = await self._store.follow(follow_id)
            if follow is None or follow.state in ("denied", "unsubscribing"):
                return
            now = self._clock.seconds()
            callbacks = await self._store.callbacks(follow_id)
            waiting = [c for c in callbacks if c.mode == "subscribe" and c.status == "pending"]
            for callback in waiting:
                deadline = callback.created_at + VERIFICATION_TIMEOUT
                if now < deadline:
                    self._schedule(follow_id, deadline - now)
                    return
                await self._store.delete_callback(callback.token)
                follow = await self._failed(follow, "the hub did not verify the subscription in time", None)
                return
            if follow.state == "active" and follow.lease_expires is not None and now >= follow.lease_expires:
                for callback in callbacks:
                    if callback.mode == "subscribe":
                        await self._store.delete_callback(callback.token)
                follow = await self._store.update_follow(follow_id, state="pending") or follow
                self.log.warn("the lease of {topic} expired before it was renewed", topic=_u(follow.topic))
            await self._subscribe(follow)
        finally:
            self._busy.discard(follow_id)

    async def _subscribe(self, follow: Follow) -> None:
        try:
            discovery = await discover(self._client, follow.topic)
        except (DiscoveryError, GuardError, OutboundError) as e:
            await self._failed(follow, f"discovery of {_u(follow.topic)} failed: {e}", None)
            return
        if not discovery.hubs:
            await self._failed(follow, f"{_u(follow.topic)} advertises no WebSub hub", None)
            return
        hub_url = discovery.hubs[0]
        topic = discovery.self_url or follow.topic
        secret = None
        if urlsplit(hub_url).scheme == "https" or self._config.http_secret:
            secret = random_secret()
        token = secrets.token_urlsafe(32)
        now = self._clock.seconds()
        follow = await self._store.update_follow(
            follow.id, hub_url=hub_url, self_url=topic, content_type=discovery.content_type
        ) or follow
        await self._store.add_callback(
            Callback(token=token, follow_id=follow.id, hub_url=hub_url, topic=topic,
                     secret=secret, mode="subscribe", status="pending", created_at=now)
        )
        fields = [
            ("hub.callback", self._config.callback_base + token),
            ("hub.mode", "subscribe"),
            ("hub.topic", topic),
        ]
        lease = follow.lease_seconds or self._config.lease_seconds
        if lease:
            fields.append(("hub.lease_seconds", str(lease)))
        if secret is not None:
            fields.append(("hub.secret", secret))
        self.log.info(
            "subscribing to {topic} at {hub} (follow {id})", topic=_u(topic), hub=_u(hub_url), id=follow.id
        )
        try:
            response, final_hub = await self._post(hub_url, fields, secret is not None)
        except (GuardError, OutboundError) as e:
            await self._drop_if_pending(token)
            await self._failed(follow, f"subscription request to {_u(hub_url)} failed: {e}", None)
            return
        if final_hub != hub_url:
            await self._store.update_callback(token, hub_url=final_hub)
            await self._store.update_follow(follow.id, hub_url=final_hub)
        if await self._removed_meanwhile(follow.id, token):
            return
        if 200 <= response.status < 300:
            callback = await self._store.callback(token)
            if callback is not None and callback.status == "pending":
                # Accepted: the verification will come (or not, and then we retry).
                self._schedule(follow.id, VERIFICATION_TIMEOUT)
            return
        await self._drop_if_pending(token)
        reason = f"{_u(final_hub)} answered {response.status}"
        snippet = _snippet(response.body)
        if snippet:
            reason += f": {snippet}"
        await self._failed(follow, reason, retry_after_seconds(response, self._clock.seconds()))

    async def _post(
        self, url: str, fields: Sequence[tuple[str, str]], carries_secret: bool
    ) -> tuple[Response, str]:
        """POST ``fields`` to the hub; 307/308 are re-sent, same body, to Location."""
        for _ in range(MAX_HUB_REDIRECTS + 1):
            response = await self._client.post_form(url, fields)
            location = response.headers.getRawHeaders(b"location")
            if response.status not in (307, 308) or not location:
                return response, url
            target = urljoin(url, location[0].decode("latin-1").strip())
            if carries_secret and urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
                raise GuardError("the hub redirected a request carrying hub.secret from https to http")
            self.log.info("hub {hub} redirected to {target}", hub=_u(url), target=_u(target))
            url = target
        raise OutboundError(f"more than {MAX_HUB_REDIRECTS} redirects from the hub")

    async def _removed_meanwhile(self, follow_id: int, token: str) -> bool:
        """The follow was removed while its request was out: drop the request."""
        follow = await self._store.follow(follow_id)
        if follow is not None and follow.state != "unsubscribing":
            return False
        await self._drop_if_pending(token)
        if follow is not None and not await self._store.callbacks(follow_id):
            await self._store.delete_follow(follow_id)
        return True

    async def _drop_if_pending(self, token: str) -> None:
        callback = await self._store.callback(token)
        if callback is not None and callback.status == "pending" and callback.mode == "subscribe":
            await self._store.delete_callback(token)

    async def _failed(self, follow: Follow, reason: str, retry_after: float | None) -> Follow:
        attempts = follow.attempts + 1
        delay = backoff_delay(attempts, retry_after)
        self.log.warn(
            "{reason}; retrying follow {id} in {delay}s", reason=reason, id=follow.id, delay=delay
        )
        updated = await self._store.update_follow(follow.id, attempts=attempts, last_error=reason)
        self._schedule(follow.id, delay)
        return updated or follow

    # -- unsubscribing ---------------------------------------------------

    def _start_unsubscribe(self, callback: Callback, attempt: int = 0) -> None:
        self._unsubscribe_timers.pop(callback.token, None)
        self._track(self._unsubscribe(callback, attempt), "unsubscription from {hub}", hub=_u(callback.hub_url))

    async def _unsubscribe(self, callback: Callback, attempt: int) -> None:
        if not self.running:
            return
        fields = [
            ("hub.callback", self._config.callback_base + callback.token),
            ("hub.mode", "unsubscribe"),
            ("hub.topic", callback.topic),
        ]
        retry_after: float | None = None
        try:
            response, _ = await self._post(callback.hub_url, fields, False)
        except (GuardError, OutboundError) as e:
            self.log.warn("unsubscription from {hub} failed: {error}", hub=_u(callback.hub_url), error=str(e))
        else:
            if 200 <= response.status < 300:
                self._later(callback.token, VERIFICATION_TIMEOUT, self._forget, callback.token)
                return
            self.log.warn(
                "unsubscription from {hub}: answered {status}", hub=_u(callback.hub_url), status=response.status
            )
            retry_after = retry_after_seconds(response, self._clock.seconds())
        if attempt + 1 >= UNSUBSCRIBE_ATTEMPTS:
            await self._forget(callback.token)
            return
        self._later(
            callback.token, backoff_delay(attempt + 1, retry_after), self._start_unsubscribe, callback, attempt + 1
        )

    def _later(self, token: str, delay: float, f: Any, *args: Any) -> None:
        if not self.running:
            return
        old = self._unsubscribe_timers.pop(token, None)
        if old is not None and old.active():
            old.cancel()

        def fire() -> None:
            self._unsubscribe_timers.pop(token, None)
            result = f(*args)
            if hasattr(result, "__await__"):
                self._track(result, "unsubscription step")

        self._unsubscribe_timers[token] = self._clock.callLater(delay, fire)

    async def _forget(self, token: str) -> None:
        """Drop a callback that is being unsubscribed (verified, or given up on)."""
        callback = await self._store.callback(token)
        if callback is None:
            return
        await self._store.delete_callback(token)
        call = self._unsubscribe_timers.pop(token, None)
        if call is not None and call.active():
            call.cancel()
        follow = await self._store.follow(callback.follow_id)
        if (
            follow is not None
            and follow.state == "unsubscribing"
            and not await self._store.callbacks(follow.id)
        ):
            await self._store.delete_follow(follow.id)
            self.log.info("unfollowed {topic}", topic=_u(follow.topic))

    # -- callback requests -----------------------------------------------

    async def verification(
        self,
        token: str,
        *,
        mode: str | None,
        topic: str | None,
        challenge: str | None,
        lease_seconds: str | None,
        reason: str | None,
    ) -> Answer:
        """A hub's GET on a callback: verification of intent, or a denial."""
        callback = await self._store.callback(token)
        if callback is None:
            return Answer(404, "no subscription request has this callback")
        if mode == "denied":
            return await self._denied(callback, topic, reason)
        if mode not in ("subscribe", "unsubscribe"):
            return Answer(400, "hub.mode must be subscribe, unsubscribe or denied")
        if topic is None:
            return Answer(400, "hub.topic is missing")
        if not challenge:
            return Answer(400, "hub.challenge is missing")
        if callback.status != "pending" or callback.mode != mode or topic != callback.topic:
            return Answer(404, f"no pending {mode} request of this topic on this callback")
        if mode == "unsubscribe":
            await self._forget(token)
            self.log.info("unsubscription from {topic} verified", topic=_u(callback.topic))
            return Answer(200, challenge, exact=True)
        follow = await self._store.follow(callback.follow_id)
        if follow is None or follow.state == "unsubscribing":
            return Answer(404, "this follow is being removed")
        lease = self._lease(follow, lease_seconds)
        if lease is None:
            return Answer(400, "hub.lease_seconds must be a positive integer")
        now = self._clock.seconds()
        retired = await self._store.activate(token, now + lease, now)
        for old in retired:
            self._start_unsubscribe(old)
        # Renew from the time of this verification (section 5.3).
        self._schedule(follow.id, lease * RENEW_FRACTION)
        await self._store.update_callback(token, created_at=now)
        self.log.info(
            "subscription to {topic} verified by {hub}, lease {lease}s",
            topic=_u(callback.topic), hub=_u(callback.hub_url), lease=lease,
        )
        return Answer(200, challenge, exact=True)

    def _lease(self, follow: Follow, text: str | None) -> int | None:
        """The verified lease: the hub's ``hub.lease_seconds`` (which it
        MUST send), else what we asked, else `ASSUMED_LEASE`."""
        if text is None or text == "":
            return follow.lease_seconds or self._config.lease_seconds or ASSUMED_LEASE
        if not text.isdigit() or int(text) <= 0:
            return None
        return int(text)

    async def _denied(self, callback: Callback, topic: str | None, reason: str | None) -> Answer:
        if topic is not None and topic != callback.topic:
            return Answer(404, "hub.topic is not the topic of this callback")
        follow = await self._store.follow(callback.follow_id)
        if callback.mode == "unsubscribe" or follow is None:
            await self._forget(callback.token)
            return Answer(200, "denial noted")
        self._cancel(follow.id)
        for other in await self._store.callbacks(follow.id):
            if other.mode == "subscribe":
                await self._store.delete_callback(other.token)
        text = (reason or "no reason given")[:500]
        await self._store.update_follow(follow.id, state="denied", denial_reason=text)
        self.log.warn("the hub denied the subscription to {topic}: {reason}", topic=_u(callback.topic), reason=text)
        return Answer(200, "denial noted")

    async def delivery(
        self,
        token: str,
        body: bytes,
        *,
        content_type: str | None,
        signature: str | None,
    ) -> Answer:
        """A hub's POST on a callback: see `Deliveries.deliver`."""
        return await self._deliveries.deliver(
            token, body, content_type=content_type, signature=signature
        )


__all__ += ["DuplicateFollow"]
