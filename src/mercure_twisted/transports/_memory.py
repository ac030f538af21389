"""A bounded in-process history: the transport for tests and ephemeral hubs."""

from __future__ import annotations

from collections import deque
from typing import Callable

from twisted.internet.interfaces import IReactorTime

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from ..update import Update
from ._interface import HistoryResult, ITransport

EARLIEST = "earliest"


@implementer(ITransport)
class MemoryTransport:
    """Keeps the last ``size`` updates in a deque, with an id index.

    Positions are consecutive integers, so the deque slot of a position is
    ``position - first position``: finding where a replay starts is a dict
    lookup, never a scan.  When an id was reused, it resolves to its
    earliest occurrence still in history, as draft-08 requires.

    With ``max_age`` (seconds, 0: none) an update also leaves history once
    it is older than that, by ``clock``: updates are stored in time order,
    so expiry only ever pops from the left, when history is touched.
    """

    name = "memory"

    def __init__(
        self, size: int = 1000, *, max_age: float = 0.0, clock: IReactorTime | None = None
    ) -> None:
        self._size = max(0, size)
        self._max_age = max(0.0, max_age)
        if self._max_age and clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        self._clock = clock
        self._log: deque[Update] = deque()
        self._stored_at: deque[float] = deque()
        self._first_position: dict[str, int] = {}
        # How many updates in history carry each id: only an id stored more
        # than once needs a scan for its next occurrence when evicted.
        self._occurrences: dict[str, int] = {}
        self._next_position = 0
        self._dispatch: Callable[[Update], None] | None = None
        self._last_id: str | None = None
        self.presence = None  # one process: the hub lists its own subscribers

    def start(self, dispatch: Callable[[Update], None]) -> None:
        self._dispatch = dispatch

    def publish(self, update: Update) -> Deferred[Update]:
        positioned = update.with_position(self._next_position)
        self._next_position += 1
        self._last_id = positioned.id
        if self._size:
            self._log.append(positioned)
            if self._clock is not None:
                self._stored_at.append(self._clock.seconds())
            self._first_position.setdefault(positioned.id, positioned.position)
            self._occurrences[positioned.id] = self._occurrences.get(positioned.id, 0) + 1
            while len(self._log) > self._size:
                self._evict_oldest()
            self._expire()
        if self._dispatch is not None:
            self._dispatch(positioned)
        return succeed(positioned)

    def _evict_oldest(self) -> None:
        if self._stored_at:
            self._stored_at.popleft()
        self._forget(self._log.popleft())

    def _expire(self) -> None:
        if not self._max_age or self._clock is None:
            return
        oldest_kept = self._clock.seconds() - self._max_age
        while self._stored_at and self._stored_at[0] < oldest_kept:
            self._evict_oldest()

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
        self._expire()
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
        self._expire()
        return len(self._log)

    def stop(self) -> None:
        self._dispatch = None
