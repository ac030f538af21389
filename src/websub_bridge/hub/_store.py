"""What the WebSub hub role keeps, and the interface of the stores that keep it.

Two implementations share this contract (one test suite runs against both):

- ``_sqlite_store.SQLiteHubStore``, tables in the bridge's own SQLite file
  (``<data_dir>/websub.db``, the `websub_bridge.store.Store` of part 1):
  one process.
- ``_redis_store.RedisHubStore``, keys in the Redis the hub's transport
  uses: a cluster of ``twistd mercure`` nodes shares one set of WebSub
  subscriptions and one delivery queue, so a subscription made on any node
  is served by all, and each update is queued once per subscriber for the
  whole cluster, whichever nodes saw it (``enqueue`` is idempotent on the
  update id), and a delivery is claimed by one node at a time.

A delivery is *claimed* for a bounded time (``claim_seconds``): a node that
dies while delivering leaves the claim to expire, and another node (or the
same one after its restart) delivers it then.  A delivery is thus made at
least once; twice only if a node dies between the subscriber's 2xx and
``complete``.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

import attrs
from twisted.internet.defer import Deferred

__all__ = ["Delivery", "HubStore", "HubStoreUnavailable", "Subscription", "callback_host"]


def callback_host(callback: str) -> str:
    """The host a callback URL points at, lowercased: the unit of the
    per-host caps and rate limits."""
    return (urlsplit(callback).hostname or "").lower()


@attrs.frozen
class Subscription:
    """One verified (topic, callback) subscription.

    ``secret`` is the subscriber's ``hub.secret`` (None when it gave none:
    then deliveries carry no signature).  ``lease_expires`` is a POSIX time.
    """

    topic: str
    callback: str
    secret: str | None
    lease_expires: float
    created_at: float

    @property
    def host(self) -> str:
        return callback_host(self.callback)


@attrs.frozen
class Delivery:
    """One content distribution to make: one update to one subscription.

    The body, content type and signature secret are fixed when the delivery
    is queued (a subscriber that re-subscribes with a new secret gets the
    new secret on the deliveries queued after its verification).
    """

    id: str
    topic: str
    callback: str
    update_id: str
    body: bytes
    content_type: str
    secret: str | None
    attempts: int
    due: float
    created_at: float

    @property
    def host(self) -> str:
        return callback_host(self.callback)


class HubStore(Protocol):
    """Durable state of the WebSub hub role.  Every method returns a Deferred
    and fails with ``HubStoreUnavailable`` when the store cannot be reached
    (the caller answers 503 or retries later)."""

    #: True when other processes write the same subscriptions (a cluster):
    #: this process then cannot know them all from its own requests.
    shared: bool

    def put_subscription(self, subscription: Subscription) -> Deferred[None]:
        """Create or replace the (topic, callback) subscription (after a
        successful verification of intent)."""

    def remove_subscription(self, topic: str, callback: str) -> Deferred[bool]:
        """Delete it (and its queued deliveries); True if it existed."""

    def subscription(self, topic: str, callback: str) -> Deferred[Subscription | None]:
        """The subscription, expired or not."""

    def subscriptions(self, topic: str | None = None) -> Deferred[list[Subscription]]:
        """Every subscription (of ``topic``), expired ones included, ordered by
        topic then callback."""

    def topics(self, now: float) -> Deferred[list[str]]:
        """The topics with at least one unexpired subscription (what the
        standalone bridge opens a stream for)."""

    def count_for_host(self, host: str, now: float) -> Deferred[int]:
        """Unexpired subscriptions whose callback is on ``host``."""

    def expire(self, now: float) -> Deferred[list[Subscription]]:
        """Delete the subscriptions whose lease ended at or before ``now``,
        with their queued deliveries; returns them."""

    def enqueue(
        self, update_id: str, topic: str, body: bytes, content_type: str, now: float
    ) -> Deferred[int]:
        """Queue one delivery, due now, for every unexpired subscription of
        ``topic``; returns how many.  Idempotent: a second call with the
        same (update_id, topic) within a day queues nothing and returns 0,
        from this process or any other sharing the store."""

    def claim(self, now: float, limit: int, claim_seconds: float) -> Deferred[list[Delivery]]:
        """Up to ``limit`` deliveries due at or before ``now`` and not
        claimed (or whose claim has expired), oldest due first; each is
        claimed until ``now + claim_seconds``."""

    def next_due(self) -> Deferred[float | None]:
        """When the earliest queued delivery is due (claimed ones count at
        their claim's end), None when the queue is empty."""

    def complete(self, delivery_id: str) -> Deferred[None]:
        """The delivery succeeded (or was dropped): forget it."""

    def retry(self, delivery_id: str, due: float, attempts: int) -> Deferred[None]:
        """Release the claim; the delivery is due again at ``due`` and has
        been attempted ``attempts`` times."""

    def queue_depth(self) -> Deferred[int]:
        """Deliveries queued (claimed or not)."""

    def start(self) -> Deferred[None]:
        """Connect (at service start); fails with ``HubStoreUnavailable`` when
        the store cannot be reached yet (it keeps trying: methods fail fast
        meanwhile and their callers retry)."""

    def close(self) -> Deferred[None]:
        """Release connections (at service stop)."""


class HubStoreUnavailable(Exception):
    """The store could not be reached or could not commit."""
