"""The transports the contract suite runs against, one ``Backend`` each.

tests/unit/test_transport_contract.py runs every contract test once per
entry of ``BACKENDS``.  A backend makes transports on storage private to one
test (a SQLite file in ``tmp_path``, a Redis key prefix...) and can read that
storage directly, without the transport, so that "stored before publish
fired" is checked against the storage itself.

To add a transport: write a ``Backend`` subclass and add it to ``BACKENDS``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from mercure_twisted.transports import ITransport, MemoryTransport

#: Every wait on a real reactor is bounded by this many seconds; it only
#: turns a hang into a failure, it is never what a test measures.
WAIT_BOUND = 10.0


class Backend:
    """Makes transports for one test; ``durable`` ones can be reopened."""

    name = "?"
    #: A transport made again (after ``stop``) on the same storage finds
    #: what the previous one stored.
    durable = False
    #: ``make(clock=...)`` is honoured for ``history_max_age``.
    controllable_clock = False
    #: Several processes share it (and its presence).
    shared = False

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def make(
        self,
        *,
        history_size: int = 1000,
        history_max_age: float = 0.0,
        clock: IReactorTime | None = None,
    ) -> ITransport:
        raise NotImplementedError

    def stored_ids(self) -> list[str]:
        """Ids of the updates the storage holds, oldest first, read directly."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what ``__init__`` set up (after every transport stopped)."""


class MemoryBackend(Backend):
    name = "memory"
    controllable_clock = True

    def make(
        self,
        *,
        history_size: int = 1000,
        history_max_age: float = 0.0,
        clock: IReactorTime | None = None,
    ) -> ITransport:
        self._transport = MemoryTransport(history_size, max_age=history_max_age, clock=clock)
        return self._transport

    def stored_ids(self) -> list[str]:
        # The memory transport's storage is the transport itself.
        return [u.id for u in self._transport._log]


class SQLiteBackend(Backend):
    name = "sqlite"
    durable = True
    controllable_clock = True

    @property
    def path(self) -> Path:
        return self.tmp_path / "contract" / "mercure.db"

    def make(
        self,
        *,
        history_size: int = 1000,
        history_max_age: float = 0.0,
        clock: IReactorTime | None = None,
    ) -> ITransport:
        from mercure_twisted.transports._sqlite import SQLiteTransport

        return SQLiteTransport(
            str(self.path),
            reactor=reactor,
            clock=clock,
            history_size=history_size,
            history_max_age=history_max_age,
        )

    def stored_ids(self) -> list[str]:
        # A connection of its own, as another process would open the file.
        with sqlite3.connect(self.path) as db:
            return [row[0] for row in db.execute("SELECT id FROM updates ORDER BY seq")]


def _redis_backend(tmp_path: Path) -> Backend:
    # Imported here: it imports this module (Backend).  Starts a real
    # redis-server per test (tests/redis_server.py).
    from ._redis_backend import RedisBackend

    return RedisBackend(tmp_path)


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "memory": MemoryBackend,
    "sqlite": SQLiteBackend,
    "redis": _redis_backend,
}


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Let the real reactor run until ``predicate()`` holds (bounded)."""
    deadline = reactor.seconds() + WAIT_BOUND
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"still waiting after {WAIT_BOUND}s for {what}")
        await sleep(0.005)


def sleep(seconds: float) -> Deferred[Any]:
    return deferLater(reactor, seconds, lambda: None)
