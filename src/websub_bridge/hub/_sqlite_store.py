"""The WebSub hub role's store in the bridge's own SQLite file (one process).

Every method is one interaction handed to `websub_bridge.store.Store.run`,
so its statements run on the store's single thread inside one transaction
(``BEGIN IMMEDIATE``): ``enqueue`` and ``claim`` are atomic without any
locking of our own.  The tables come from the second script of
`websub_bridge.store.MIGRATIONS`.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from websub_bridge.hub._store import (
    Delivery,
    HubStoreUnavailable,
    Subscription,
)
from websub_bridge.store import Interaction, Store

__all__ = ["SQLiteHubStore"]

T = TypeVar("T")

#: How long an (update_id, topic) pair is remembered by ``enqueue``.
_ENQUEUED_RETENTION = 86_400.0

_SUBSCRIPTION_COLUMNS = "topic, callback, secret, lease_expires, created_at"
_DELIVERY_COLUMNS = (
    "id, topic, callback, update_id, body, content_type, secret, attempts, due, created_at"
)


def _subscription(row: Sequence[Any]) -> Subscription:
    return Subscription(
        topic=row[0],
        callback=row[1],
        secret=row[2],
        lease_expires=float(row[3]),
        created_at=float(row[4]),
    )


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=row[0],
        topic=row[1],
        callback=row[2],
        update_id=row[3],
        body=bytes(row[4]),
        content_type=row[5],
        secret=row[6],
        attempts=int(row[7]),
        due=float(row[8]),
        created_at=float(row[9]),
    )


def _unavailable(failure: Failure) -> Failure:
    """Turn a SQLite error into the contract's `HubStoreUnavailable`, so
    callers answer 503 or retry without knowing the backend; the message is
    one line (SQLite's own, e.g. "database is locked", "disk is full")."""
    if failure.check(sqlite3.Error):
        error = failure.value
        message = " ".join(str(error).split()) or type(error).__name__
        return Failure(HubStoreUnavailable(f"websub.db: {message}"))
    return failure


class SQLiteHubStore:
    """`websub_bridge.hub._store.HubStore` over the bridge's `Store`.

    It does not own the `Store` (part 1's follows share the file and the
    thread), so `close` leaves it open: whoever built the `Store` closes it.
    """

    shared = False

    def __init__(self, store: Store) -> None:
        self._store = store

    def _run(self, interaction: Interaction[T]) -> Deferred[T]:
        d = self._store.run(interaction)
        d.addErrback(_unavailable)
        return d

    # -- subscriptions ---------------------------------------------------

    def put_subscription(self, subscription: Subscription) -> Deferred[None]:
        def interaction(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT OR REPLACE INTO hub_subscriptions"
                " (topic, callback, secret, lease_expires, created_at, host)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    subscription.topic,
                    subscription.callback,
                    subscription.secret,
                    subscription.lease_expires,
                    subscription.created_at,
                    subscription.host,
                ),
            )

        return self._run(interaction)

    def remove_subscription(self, topic: str, callback: str) -> Deferred[bool]:
        def interaction(c: sqlite3.Connection) -> bool:
            cursor = c.execute(
                "DELETE FROM hub_subscriptions WHERE topic = ? AND callback = ?",
                (topic, callback),
            )
            c.execute(
                "DELETE FROM hub_deliveries WHERE topic = ? AND callback = ?",
                (topic, callback),
            )
            return cursor.rowcount > 0

        return self._run(interaction)

    def subscription(self, topic: str, callback: str) -> Deferred[Subscription | None]:
        def interaction(c: sqlite3.Connection) -> Subscription | None:
            row = c.execute(
                f"SELECT {_SUBSCRIPTION_COLUMNS} FROM hub_subscriptions"
                " WHERE topic = ? AND callback = ?",
                (topic, callback),
            ).fetchone()
            return _subscription(row) if row else None

        return self._run(interaction)

    def subscriptions(self, topic: str | None = None) -> Deferred[list[Subscription]]:
        def interaction(c: sqlite3.Connection) -> list[Subscription]:
            if topic is None:
                rows = c.execute(
                    f"SELECT {_SUBSCRIPTION_COLUMNS} FROM hub_subscriptions"
                    " ORDER BY topic, callback"
                )
            else:
                rows = c.execute(
                    f"SELECT {_SUBSCRIPTION_COLUMNS} FROM hub_subscriptions"
                    " WHERE topic = ? ORDER BY topic, callback",
                    (topic,),
                )
            return [_subscription(r) for r in rows]

        return self._run(interaction)

    def topics(self, now: float) -> Deferred[list[str]]:
        def interaction(c: sqlite3.Connection) -> list[str]:
            return [
                r[0]
                for r in c.execute(
                    "SELECT DISTINCT topic FROM hub_subscriptions"
                    " WHERE lease_expires > ? ORDER BY topic",
                    (now,),
                )
            ]

        return self._run(interaction)

    def count_for_host(self, host: str, now: float) -> Deferred[int]:
        def interaction(c: sqlite3.Connection) -> int:
            return int(
                c.execute(
                    "SELECT COUNT(*) FROM hub_subscriptions WHERE host = ? AND lease_expires > ?",
                    (host.lower(), now),
                ).fetchone()[0]
            )

        return self._run(interaction)

    def expire(self, now: float) -> Deferred[list[Subscription]]:
        def interaction(c: sqlite3.Connection) -> list[Subscription]:
            expired = [
                _subscription(r)
                for r in c.execute(
                    f"SELECT {_SUBSCRIPTION_COLUMNS} FROM hub_subscriptions"
                    " WHERE lease_expires <= ? ORDER BY topic, callback",
                    (now,),
                )
            ]
            for s in expired:
                c.execute(
                    "DELETE FROM hub_subscriptions WHERE topic = ? AND callback = ?",
                    (s.topic, s.callback),
                )
                c.execute(
                    "DELETE FROM hub_deliveries WHERE topic = ? AND callback = ?",
                    (s.topic, s.callback),
                )
            return expired

        return self._run(interaction)

    # -- the delivery queue ----------------------------------------------

    def enqueue(
        self, update_id: str, topic: str, body: bytes, content_type: str, now: float
    ) -> Deferred[int]:
        """One transaction: the (update_id, topic) check and the inserts
        cannot interleave with another enqueue of the same update."""
        payload = bytes(body)

        def interaction(c: sqlite3.Connection) -> int:
            c.execute("DELETE FROM hub_enqueued WHERE at < ?", (now - _ENQUEUED_RETENTION,))
            seen = c.execute(
                "SELECT 1 FROM hub_enqueued WHERE update_id = ? AND topic = ?",
                (update_id, topic),
            ).fetchone()
            if seen is not None:
                return 0
            c.execute(
                "INSERT INTO hub_enqueued (update_id, topic, at) VALUES (?, ?, ?)",
                (update_id, topic, now),
            )
            targets = c.execute(
                "SELECT callback, secret FROM hub_subscriptions"
                " WHERE topic = ? AND lease_expires > ? ORDER BY callback",
                (topic, now),
            ).fetchall()
            c.executemany(
                "INSERT INTO hub_deliveries (id, topic, callback, update_id, body,"
                " content_type, secret, attempts, due, claimed_until, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, NULL, ?)",
                [
                    (
                        uuid.uuid4().hex,
                        topic,
                        callback,
                        update_id,
                        sqlite3.Binary(payload),
                        content_type,
                        secret,
                        now,
                        now,
                    )
                    for callback, secret in targets
                ],
            )
            return len(targets)

        return self._run(interaction)

    def claim(self, now: float, limit: int, claim_seconds: float) -> Deferred[list[Delivery]]:
        """Select and mark in one transaction, so two claimers never get the
        same delivery."""

        def interaction(c: sqlite3.Connection) -> list[Delivery]:
            if limit <= 0:
                return []
            claimed = [
                _delivery(r)
                for r in c.execute(
                    f"SELECT {_DELIVERY_COLUMNS} FROM hub_deliveries"
                    " WHERE due <= ? AND (claimed_until IS NULL OR claimed_until <= ?)"
                    " ORDER BY due, created_at, id LIMIT ?",
                    (now, now, limit),
                )
            ]
            c.executemany(
                "UPDATE hub_deliveries SET claimed_until = ? WHERE id = ?",
                [(now + claim_seconds, d.id) for d in claimed],
            )
            return claimed

        return self._run(interaction)

    def next_due(self) -> Deferred[float | None]:
        def interaction(c: sqlite3.Connection) -> float | None:
            row = c.execute(
                "SELECT MIN(MAX(due, COALESCE(claimed_until, due))) FROM hub_deliveries"
            ).fetchone()
            return None if row is None or row[0] is None else float(row[0])

        return self._run(interaction)

    def complete(self, delivery_id: str) -> Deferred[None]:
        def interaction(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM hub_deliveries WHERE id = ?", (delivery_id,))

        return self._run(interaction)

    def retry(self, delivery_id: str, due: float, attempts: int) -> Deferred[None]:
        def interaction(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE hub_deliveries SET due = ?, attempts = ?, claimed_until = NULL"
                " WHERE id = ?",
                (due, attempts, delivery_id),
            )

        return self._run(interaction)

    def queue_depth(self) -> Deferred[int]:
        def interaction(c: sqlite3.Connection) -> int:
            return int(c.execute("SELECT COUNT(*) FROM hub_deliveries").fetchone()[0])

        return self._run(interaction)

    def start(self) -> Deferred[None]:
        """Nothing to connect: the `Store` is opened (and migrated) by its owner."""
        return succeed(None)

    def close(self) -> Deferred[None]:
        """Nothing of ours to release: the `Store` is shared with part 1's
        follows and closed by its owner."""
        return succeed(None)


def _check(store: SQLiteHubStore) -> None:
    """Make mypy check that `SQLiteHubStore` satisfies the protocol."""
    from websub_bridge.hub._store import HubStore

    _: HubStore = store

