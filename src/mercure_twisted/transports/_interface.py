"""The contract between the hub engine and where updates are stored and shared."""

from __future__ import annotations

from typing import Any, Callable

import attrs
from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from ..update import Update


class TransportUnavailable(Exception):
    """The transport cannot store updates right now (the hub answers 503)."""


@attrs.frozen
class HistoryResult:
    """What a replay request found.

    ``found`` tells whether the requested id was in history (``earliest``
    always counts as found).  ``updates`` are those stored after it, oldest
    first.  ``up_to`` is the position of the newest update the transport had
    when it answered (``None`` when it had none): a subscriber that held live
    events during the replay releases only those after it.
    """

    found: bool
    updates: tuple[Update, ...]
    up_to: Any


@attrs.frozen
class SubscriptionRecord:
    """One active subscription, as the subscription API and events show it.

    Plain values only (no connection, no matcher object), so that a cluster
    transport can share the records of every node.
    """

    subscriber: str
    dialect: str  # "07" or "08"
    match_type: str  # "topic" for draft-07; "exact", "urlpattern"... for draft-08
    pattern: str
    payload: Any = None


class IPresence(Interface):
    """Which subscriptions are active, on this node or on the whole cluster."""

    def add(subscriber: str, records: tuple[SubscriptionRecord, ...]) -> None:
        """A subscriber of this node became active (fire and forget)."""

    def remove(subscriber: str) -> None:
        """A subscriber of this node ended (fire and forget)."""

    def active() -> Deferred[list[SubscriptionRecord]]:
        """Every active subscription the cluster knows of, by subscriber."""


class ITransport(Interface):
    """Stores updates, orders them, and hands each one to the hub exactly once."""

    name = Attribute("Short name used in logs and metrics, e.g. 'memory'.")
    presence = Attribute(
        "The IPresence shared by every node of a cluster transport, or None "
        "for a single-process transport (memory, SQLite): the hub then lists "
        "its own subscribers, and keeps no second copy of them."
    )

    def start(dispatch: Callable[[Update], None]) -> Deferred[None] | None:
        """Begin delivering every update (published here or elsewhere) to ``dispatch``.

        ``dispatch`` receives updates in their stored order, each carrying
        its ``position``.
        """

    def publish(update: Update) -> Deferred[Update]:
        """Store ``update``; fire with it (positioned) once it is stored.

        Fails with ``TransportUnavailable`` when it cannot be stored: the
        publisher must not be told it was accepted.
        """

    def history(last_event_id: str) -> Deferred[HistoryResult]:
        """Updates stored after ``last_event_id`` (or all of them for ``earliest``)."""

    def last_event_id() -> str | None:
        """The id of the newest stored update, ``None`` when there is none."""

    def ping() -> Deferred[None]:
        """Fire when updates can be stored now; fail with ``TransportUnavailable``
        otherwise (``/readyz``)."""

    def history_length() -> int | None:
        """How many updates history holds, as last known (cheap, may lag);
        ``None`` when the transport cannot tell."""

    def stop() -> Deferred[None] | None:
        """Flush what must be stored and release resources."""
