"""A log observer that writes a reactor turn's lines in one system call.

twisted.logger's ``FileLogObserver`` writes and flushes every event: one
``write`` system call per line, 8% of a publish on the benchmark suite's
profile (the access line of every publish).  ``TurnFileLogObserver`` keeps
the lines of the current reactor turn and writes them together when the
turn ends (``callLater(0)``).  Whenever the reactor is not running (start,
shutdown, tests), or for events from other threads, it writes at once, so
nothing is held where no turn would end it.  What a hard crash (``kill
-9``) can lose is the lines of the turn it interrupts.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import IO, Any, Callable

from twisted.logger import ILogObserver, LogEvent
from twisted.python.threadable import isInIOThread
from zope.interface import implementer

__all__ = ["TurnFileLogObserver", "flush_all"]

_observers: weakref.WeakSet[TurnFileLogObserver] = weakref.WeakSet()


def flush_all() -> None:
    """Write the held lines of every ``TurnFileLogObserver`` now."""
    for observer in list(_observers):
        observer.flush()


# A process that ends between a turn's lines and its end (the reactor's
# last turn, a SystemExit) still writes them.
atexit.register(flush_all)


@implementer(ILogObserver)
class TurnFileLogObserver:
    """``FileLogObserver(out, format_event)``, written once per reactor turn."""

    def __init__(
        self, out: IO[Any], format_event: Callable[[LogEvent], str | None],
        reactor: Any = None,
    ) -> None:
        self._out = out
        self._format = format_event
        self._reactor = reactor
        self._lines: list[str] = []
        self._lock = threading.Lock()  # other threads log too
        _observers.add(self)

    def _running_reactor(self) -> Any:
        if self._reactor is None:
            # The installed reactor, looked up at the first event (twistd
            # installs it before it builds the observer; a test may not).
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor if getattr(self._reactor, "running", False) else None

    def __call__(self, event: LogEvent) -> None:
        text = self._format(event)
        if not text:
            return
        reactor = self._running_reactor()
        now = reactor is None or not isInIOThread()
        with self._lock:
            first = not self._lines
            self._lines.append(text)
        if now:
            self.flush()
        elif first:
            reactor.callLater(0, self._end_of_turn)

    def flush(self) -> None:
        """Write every held line, then flush ``out``."""
        with self._lock:
            lines, self._lines = self._lines, []
        if lines:
            self._out.write("".join(lines))
            self._out.flush()

    def _end_of_turn(self) -> None:
        try:
            self.flush()
        except (OSError, ValueError):
            # The file cannot be written (full disk, closed): as with
            # FileLogObserver, those lines are lost.  Raising here would
            # log the error, whose line would fail the same way next turn.
            pass
