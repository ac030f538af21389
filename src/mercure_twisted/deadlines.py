"""When streams must end (write_timeout, token expiry): one timer for all.

A ``DelayedCall`` per stream costs ~0.7 KB of an idle subscriber's memory
(measured by the benchmark suite).  Here every deadline is a small tuple
in one heap, and one timer is armed for the earliest: streams still end at
their exact deadline.  A stream that ends early is not searched for in the
heap; its entry is skipped when it falls due, and the heap is rebuilt
without such entries once they are the majority, so short-lived
connections cannot make it grow without bound.
"""

from __future__ import annotations

import heapq
from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["Deadlines"]

#: Below this many entries, stale ones are simply left to fall due.
_COMPACT_ABOVE = 1024


class Deadlines:
    """Calls ``expire(key, reason)`` at each key's deadline, if ``is_live(key)``."""

    def __init__(
        self,
        clock: IReactorTime,
        expire: Callable[[str, str], None],
        is_live: Callable[[str], bool],
    ) -> None:
        self._clock = clock
        self._expire = expire
        self._is_live = is_live
        self._heap: list[tuple[float, str, str]] = []
        self._stale = 0
        self._timer: IDelayedCall | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, key: str, when: float, reason: str) -> None:
        heapq.heappush(self._heap, (when, key, reason))
        if self._timer is None or when < self._timer.getTime():
            self._arm()

    def discard(self, key: str) -> None:
        """``key`` ended before its deadline (its entry is skipped later)."""
        self._stale += 1
        if self._stale > _COMPACT_ABOVE and self._stale * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if self._is_live(entry[1])]
            heapq.heapify(self._heap)
            self._stale = 0
            self._arm()

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _arm(self) -> None:
        if not self._heap:
            self.stop()
            return
        delay = max(0.0, self._heap[0][0] - self._clock.seconds())
        if self._timer is not None and self._timer.active():
            self._timer.reset(delay)
        else:
            self._timer = self._clock.callLater(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._clock.seconds()
        due: list[tuple[str, str]] = []
        while self._heap and self._heap[0][0] <= now:
            _, key, reason = heapq.heappop(self._heap)
            if self._is_live(key):
                due.append((key, reason))
            elif self._stale:
                self._stale -= 1
        self._arm()
        for key, reason in due:
            self._expire(key, reason)
        # Each expired key was discarded as it ended, but its entry is gone.
        self._stale = max(0, self._stale - len(due))
