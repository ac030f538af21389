"""Presence shared by every node of a Redis cluster.

Each node keeps its own subscribers in one hash (``P:node:<name>``) whose
TTL its heartbeat refreshes every ``presence_ttl / 3`` seconds, and is
listed in ``P:nodes`` with an expiry.  A node that dies without stopping
(``kill -9``, a lost machine) stops refreshing: its subscribers disappear
from ``active()`` at most ``presence_ttl`` seconds after its last heartbeat.
The node's own dict is the truth: after Redis comes back (empty or not),
the whole hash is written again.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ._interface import IPresence, SubscriptionRecord, TransportUnavailable
from ._redis_link import RedisLink
from ._redis_scripts import HEARTBEAT, PRESENCE_ALL, PRESENCE_SET
from ._redis_url import RedisSettings


def encode_records(records: tuple[SubscriptionRecord, ...]) -> str:
    return json.dumps(
        [[r.subscriber, r.dialect, r.match_type, r.pattern, r.payload] for r in records],
        ensure_ascii=False, separators=(",", ":"), default=str,
    )


def decode_records(value: bytes) -> list[SubscriptionRecord]:
    """The records of one hash field; raises ValueError when it is not ours."""
    items = json.loads(value)
    if not isinstance(items, list):
        raise ValueError("not a list")
    records = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 5
                and all(isinstance(v, str) for v in item[:4])):
            raise ValueError("not a subscription record")
        records.append(SubscriptionRecord(item[0], item[1], item[2], item[3], item[4]))
    return records


@implementer(IPresence)
class RedisPresence:
    """This node's subscribers in Redis; ``active()`` reads every live node's."""

    log = Logger()

    def __init__(self, settings: RedisSettings, link: RedisLink, node: str) -> None:
        self._settings = settings
        self._link = link
        self.node = node
        self._ttl = max(1, round(settings.presence_ttl))
        self._nodes_key = settings.key("nodes")
        self._hash_key = settings.key("node", node)
        self._records: dict[str, tuple[SubscriptionRecord, ...]] = {}

    @property
    def heartbeat_interval(self) -> float:
        return self._ttl / 3

    def add(self, subscriber: str, records: tuple[SubscriptionRecord, ...]) -> None:
        self._records[subscriber] = records
        if self._link.connected:
            self._link.run(
                PRESENCE_SET, [self._hash_key], [self._ttl, subscriber, encode_records(records)]
            ).addErrback(self._lost_write)

    def remove(self, subscriber: str) -> None:
        if self._records.pop(subscriber, None) is not None and self._link.connected:
            self._link.execute("HDEL", self._hash_key, subscriber).addErrback(self._lost_write)

    def active(self) -> Deferred[list[SubscriptionRecord]]:
        d = self._link.run(PRESENCE_ALL, [self._nodes_key], [self._settings.key("node", "")])
        return d.addCallback(self._decode)

    def _decode(self, values: list[Any]) -> list[SubscriptionRecord]:
        records: list[SubscriptionRecord] = []
        for value in values:
            try:
                records.extend(decode_records(value))
            except (ValueError, TypeError) as e:
                self.log.warn("skipping a presence entry that is not ours: {error}", error=str(e))
        return records

    def _lost_write(self, failure: Failure) -> None:
        # Redis went away: the whole hash is written again on reconnect.
        failure.trap(TransportUnavailable)
        self.log.debug("presence write lost: {error}", error=failure.getErrorMessage())

    # -- driven by the transport ------------------------------------------------

    async def restore(self, link: RedisLink) -> None:
        """On every new connection: this node's hash, exactly its local dict."""
        await link.execute("DEL", self._hash_key)
        if self._records:
            args: list[Any] = [self._ttl]
            for subscriber, records in self._records.items():
                args += [subscriber, encode_records(records)]
            await link.run(PRESENCE_SET, [self._hash_key], args)
        await link.run(HEARTBEAT, [self._nodes_key, self._hash_key], [self.node, self._ttl])

    def heartbeat(self) -> Deferred[Any]:
        return self._link.run(HEARTBEAT, [self._nodes_key, self._hash_key], [self.node, self._ttl])

    def withdraw(self) -> Deferred[Any]:
        """On a clean stop: this node's subscribers leave at once, not after the TTL."""
        self._records.clear()
        d = self._link.execute("DEL", self._hash_key)
        d.addCallback(lambda _: self._link.execute("ZREM", self._nodes_key, self.node))
        return d
