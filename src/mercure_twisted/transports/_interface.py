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


class ITransport(Interface):
    """Stores updates, orders them, and hands each one to the hub exactly once."""

    name = Attribute("Short name used in logs and metrics, e.g. 'memory'.")

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

    def stop() -> Deferred[None] | None:
        """Flush what must be stored and release resources."""
