"""Presence for a single-process transport: the subscriptions of this node."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from ._interface import IPresence, SubscriptionRecord


@implementer(IPresence)
class LocalPresence:
    """Keeps this process's active subscriptions in a dict, in arrival order."""

    def __init__(self) -> None:
        self._records: dict[str, tuple[SubscriptionRecord, ...]] = {}

    def add(self, subscriber: str, records: tuple[SubscriptionRecord, ...]) -> None:
        self._records[subscriber] = records

    def remove(self, subscriber: str) -> None:
        self._records.pop(subscriber, None)

    def active(self) -> Deferred[list[SubscriptionRecord]]:
        return succeed([r for records in self._records.values() for r in records])
