"""The WebSub hub role's store in Redis, shared by a cluster of hub nodes.

Several ``twistd mercure`` processes on one Redis share one set of WebSub
subscriptions and one delivery queue.  Every method is one Lua script
(`websub_bridge.hub._redis_scripts`, where the key layout is described),
so what must be atomic cluster-wide is: ``enqueue`` marks (update id,
topic) with ``SET NX EX`` in the same step that queues the deliveries, so
two nodes seeing the same update queue it once; ``claim`` moves due
deliveries from the ``due`` sorted set to the ``claimed`` one in one step,
so each goes to one node until its claim ends.

The connection is the Redis transport's `RedisLink` (txredisapi on
Twisted's ``ClientService``): it reconnects by itself with backoff, loads
the scripts on every new connection (EVALSHA, EVAL if Redis lost them),
and fails at once while Redis is away instead of queueing commands; every
such failure (refused, lost, reply timeout, an error answer) becomes
`HubStoreUnavailable`.  Its protocol is built with ``charset=None``: replies
are bytes and bytes are sent as they are, so delivery bodies (any bytes,
UTF-8 or not) are stored and come back exactly, with no base64.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from mercure_twisted.transports._interface import TransportUnavailable
from mercure_twisted.transports._redis_link import RedisLink, Script
from mercure_twisted.transports._redis_url import RedisSettings, parse_redis_url
from websub_bridge.hub import _redis_scripts as scripts
from websub_bridge.hub._store import Delivery, HubStoreUnavailable, Subscription

__all__ = ["RedisHubStore"]

#: How long an (update_id, topic) pair is remembered by ``enqueue``, in
#: seconds of Redis's own clock (the marker's TTL).
ENQUEUED_RETENTION = 86_400


def _time(value: float) -> str:
    """A time as Redis should store it: ``repr`` keeps every bit of the
    float (txredisapi would format a float with six decimals)."""
    return repr(float(value))


def _fields(flat: list[Any]) -> dict[str, bytes]:
    """An HGETALL reply as a dict (field names are ours, ASCII)."""
    return {flat[i].decode("ascii"): flat[i + 1] for i in range(0, len(flat), 2)}


def _text(fields: Mapping[str, bytes], name: str) -> str:
    return fields[name].decode("utf-8")


def _secret(fields: Mapping[str, bytes]) -> str | None:
    return _text(fields, "secret") if "secret" in fields else None


def _subscription(fields: Mapping[str, bytes]) -> Subscription:
    return Subscription(
        topic=_text(fields, "topic"),
        callback=_text(fields, "callback"),
        secret=_secret(fields),
        lease_expires=float(fields["lease"]),
        created_at=float(fields["created"]),
    )


def _subscriptions(replies: list[list[Any]]) -> list[Subscription]:
    """Subscriptions ordered by topic then callback (code point order of
    str, the byte order of UTF-8: SQLite's BINARY collation too)."""
    found = [_subscription(_fields(r)) for r in replies if r]
    return sorted(found, key=lambda s: (s.topic, s.callback))


def _delivery(fields: Mapping[str, bytes]) -> Delivery:
    return Delivery(
        id=_text(fields, "id"),
        topic=_text(fields, "topic"),
        callback=_text(fields, "callback"),
        update_id=_text(fields, "update_id"),
        body=bytes(fields["body"]),
        content_type=_text(fields, "content_type"),
        secret=_secret(fields),
        attempts=int(fields["attempts"]),
        due=float(fields["due"]),
        created_at=float(fields["created"]),
    )


def _next_due(reply: list[bytes]) -> float | None:
    times = [float(score) for score in reply if score]
    return min(times) if times else None


def _unavailable(failure: Failure) -> Failure:
    """The link's failures (its message names the address, never the
    password) as the contract's `HubStoreUnavailable`."""
    if failure.check(TransportUnavailable):
        return Failure(HubStoreUnavailable(str(failure.value)))
    return failure


class RedisHubStore:
    """`websub_bridge.hub._store.HubStore` in Redis.

    Make it with `from_url`, then `start` it; `close` disconnects.  Until
    the first connection (and whenever Redis is away) every method fails
    at once with `HubStoreUnavailable` while the link keeps reconnecting.
    """

    shared = True

    @classmethod
    def from_url(
        cls, url: str, reactor: Any, *, key_prefix: str | None = None
    ) -> RedisHubStore:
        """The store on the Redis of ``url`` (``redis://host:port/db``, the
        transport's syntax and options); raises ``ConfigError`` for a URL
        that cannot work.

        ``key_prefix`` defaults to ``<the URL's prefix>:websub:``
        (``mercure:websub:``): apart from the transport's keys
        (``mercure:updates``...), and apart for each hub that shares one
        Redis under its own ``prefix=``, as the transport's keys are.
        """
        return cls(parse_redis_url(url), reactor, key_prefix=key_prefix)

    def __init__(
        self, settings: RedisSettings, reactor: Any, *, key_prefix: str | None = None
    ) -> None:
        if key_prefix is None:
            key_prefix = f"{settings.prefix}:websub:"
        if not key_prefix:
            raise ValueError("key_prefix must not be empty")
        self.settings = settings
        self.key_prefix = key_prefix
        self._reactor = reactor
        self._link = RedisLink(
            settings, reactor, "websub", scripts=scripts.ALL, client_name="websub-hub-store"
        )
        self._starting: Deferred[None] | None = None

    @property
    def connected(self) -> bool:
        return self._link.connected

    def start(self) -> Deferred[None]:
        """Connect.  Fires once Redis answers, or fails with
        `HubStoreUnavailable` after the URL's ``timeout`` (the link goes on
        trying: the caller may start anyway and answer 503 meanwhile)."""
        self._link.start()
        ready = self._link.when_ready()
        ready.addTimeout(self.settings.timeout, self._reactor)
        self._starting = ready

        def unreachable(failure: Failure) -> Failure:
            return Failure(
                HubStoreUnavailable(f"redis {self.settings.address} is unreachable")
            )

        return ready.addErrback(unreachable)

    def close(self) -> Deferred[None]:
        """Disconnect (commands in flight fail with `HubStoreUnavailable`, and
        so does a `start` still waiting, at once rather than at its timeout)."""
        if self._starting is not None and not self._starting.called:
            self._starting.cancel()
        self._starting = None
        return self._link.stop()

    def _run(self, script: Script, *args: str | bytes | int) -> Deferred[Any]:
        d = self._link.run(script, [], [self.key_prefix, *args])
        return d.addErrback(_unavailable)

    # -- subscriptions ---------------------------------------------------

    def put_subscription(self, subscription: Subscription) -> Deferred[None]:
        s = subscription
        d = self._run(
            scripts.PUT, s.topic, s.callback, "0" if s.secret is None else "1",
            s.secret or "", _time(s.lease_expires), _time(s.created_at), s.host,
        )
        return d.addCallback(lambda _: None)

    def remove_subscription(self, topic: str, callback: str) -> Deferred[bool]:
        return self._run(scripts.REMOVE, topic, callback).addCallback(lambda n: n == 1)

    def subscription(self, topic: str, callback: str) -> Deferred[Subscription | None]:
        d = self._run(scripts.SUBSCRIPTION, topic, callback)
        return d.addCallback(lambda flat: _subscription(_fields(flat)) if flat else None)

    def subscriptions(self, topic: str | None = None) -> Deferred[list[Subscription]]:
        if topic is None:
            d = self._run(scripts.SUBSCRIPTIONS, "", "0")
        else:
            d = self._run(scripts.SUBSCRIPTIONS, topic, "1")
        return d.addCallback(_subscriptions)

    def topics(self, now: float) -> Deferred[list[str]]:
        d = self._run(scripts.TOPICS, _time(now))
        return d.addCallback(lambda found: sorted(t.decode("utf-8") for t in found))

    def count_for_host(self, host: str, now: float) -> Deferred[int]:
        # One command: ``ZCOUNT`` is atomic by itself.
        key = f"{self.key_prefix}host:{host.lower()}"
        d = self._link.execute("ZCOUNT", key, f"({_time(now)}", "+inf")
        return d.addErrback(_unavailable).addCallback(int)

    def expire(self, now: float) -> Deferred[list[Subscription]]:
        return self._run(scripts.EXPIRE, _time(now)).addCallback(_subscriptions)

    # -- the delivery queue ----------------------------------------------

    def enqueue(
        self, update_id: str, topic: str, body: bytes, content_type: str, now: float
    ) -> Deferred[int]:
        d = self._run(
            scripts.ENQUEUE, update_id, topic, bytes(body), content_type, _time(now),
            uuid.uuid4().hex, ENQUEUED_RETENTION,
        )
        return d.addCallback(int)

    def claim(self, now: float, limit: int, claim_seconds: float) -> Deferred[list[Delivery]]:
        if limit <= 0:
            # Still a round trip: an unreachable Redis says so here too.
            d = self._link.execute("PING").addErrback(_unavailable)
            return d.addCallback(lambda _: [])
        d = self._run(scripts.CLAIM, _time(now), int(limit), _time(now + claim_seconds))
        return d.addCallback(lambda replies: [_delivery(_fields(r)) for r in replies])

    def next_due(self) -> Deferred[float | None]:
        return self._run(scripts.NEXT_DUE).addCallback(_next_due)

    def complete(self, delivery_id: str) -> Deferred[None]:
        return self._run(scripts.COMPLETE, delivery_id).addCallback(lambda _: None)

    def retry(self, delivery_id: str, due: float, attempts: int) -> Deferred[None]:
        d = self._run(scripts.RETRY, delivery_id, _time(due), int(attempts))
        return d.addCallback(lambda _: None)

    def queue_depth(self) -> Deferred[int]:
        return self._run(scripts.QUEUE_DEPTH).addCallback(int)


def _check(store: RedisHubStore) -> None:
    """Make mypy check that `RedisHubStore` satisfies the protocol."""
    from websub_bridge.hub._store import HubStore

    _: HubStore = store
