"""A bounded in-process history: the transport for tests and ephemeral hubs."""

from __future__ import annotations

from collections import deque
from typing import Callable

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from ..update import Update
from ._interface import HistoryResult, ITransport
from ._presence import LocalPresence

EARLIEST = "earliest"


@implementer(ITransport)
class MemoryTransport:
    """Keeps the last ``size`` updates in a deque, with an id index.

    Positions are consecutive integers, so the deque slot of a position is
    ``position - first position``: finding where a replay starts is a dict
    lookup, never a scan.  When an id was reused, it resolves to its
    earliest occurrence still in history, as draft-08 requires.
    """

    name = "memory"

    def __init__(self, size: int = 1000) -> None:
        self._size = max(0, size)
        self._log: deque[Update] = deque()
        self._first_position: dict[str, int] = {}
        # How many updates in history carry each id: only an id stored more
        # than once needs a scan for its next occurrence when evicted.
        self._occurrences: dict[str, int] = {}
        self._next_position = 0
        self._dispatch: Callable[[Update], None] | None = None
        self._last_id: str | None = None
        self.presence = LocalPresence()

    def start(self, dispatch: Callable[[Update], None]) -> None:
        self._dispatch = dispatch

    def publish(self, update: Update) -> Deferred[Update]:
        positioned = update.with_position(self._next_position)
        self._next_position += 1
        self._last_id = positioned.id
        if self._size:
            self._log.append(positioned)
            self._first_position.setdefault(positioned.id, positioned.position)
            self._occurrences[positioned.id] = self._occurrences.get(positioned.id, 0) + 1
            while len(self._log) > self._size:
                self._forget(self._log.popleft())
        if self._dispatch is not None:
            self._dispatch(positioned)
        return succeed(positioned)

    def _forget(self, evicted: Update) -> None:
        remaining = self._occurrences[evicted.id] - 1
        if remaining == 0:
            del self._occurrences[evicted.id]
            del self._first_position[evicted.id]
            return
        self._occurrences[evicted.id] = remaining
        if self._first_position.get(evicted.id) != evicted.position:
            return
        for later in self._log:  # rare: the id was reused; keep the next one
            if later.id == evicted.id:
                self._first_position[later.id] = later.position
                break

    def history(self, last_event_id: str) -> Deferred[HistoryResult]:
        up_to = self._log[-1].position if self._log else None
        if last_event_id == EARLIEST:
            return succeed(HistoryResult(True, tuple(self._log), up_to))
        position = self._first_position.get(last_event_id)
        if position is None:
            return succeed(HistoryResult(False, (), up_to))
        start = position - self._log[0].position + 1
        updates = tuple(self._log[i] for i in range(start, len(self._log)))
        return succeed(HistoryResult(True, updates, up_to))

    def last_event_id(self) -> str | None:
        return self._last_id

    def ping(self) -> Deferred[None]:
        return succeed(None)

    def history_length(self) -> int:
        return len(self._log)

    def stop(self) -> None:
        self._dispatch = None
