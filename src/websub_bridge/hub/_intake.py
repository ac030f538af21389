"""From Mercure updates to queued WebSub deliveries.

The intake watches the hub's public updates (`websub_bridge.port.IHubPort.watch`)
and, for every topic of an update that the hub role offers, queues one
delivery per subscriber (`HubStore.enqueue`).  A Mercure POST is thus
itself the "fat ping" of WebSub section 6: nothing else tells the hub role
that a topic changed.

After each update it records the update's id as the watch's *cursor*, and
the next start resumes the watch after it (``since``, as a subscriber's
``Last-Event-ID``): an update published while the process was down, or
between the hub's dispatch and the enqueue, is queued at the next start,
as long as the hub's history still holds it.  Replaying an update already
queued is harmless: ``enqueue`` is idempotent on (update id, topic), in
this process and across a cluster sharing a Redis store.

A store that cannot be reached stops the intake on the update at hand,
which is retried with backoff: the watch holds the updates that follow, in
order, so none is skipped and the cursor never passes one not queued.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from ..port import IHubPort, ReceivedUpdate, Watch
from ..store import Store
from ._config import HubRoleConfig
from ._store import HubStore, HubStoreUnavailable

__all__ = ["ALL_TOPICS", "Intake"]

T = TypeVar("T")

#: The cursor name of a watch of every topic (in process).
ALL_TOPICS = "*"


class Intake:
    """Queues a delivery per subscriber for each offered update it is handed."""

    log = Logger()
    #: Backoff of a failed enqueue or cursor write, first and longest delays.
    RETRY_FIRST = 1.0
    RETRY_CAP = 60.0

    def __init__(
        self,
        *,
        port: IHubPort,
        store: HubStore,
        cursors: Store,
        config: HubRoleConfig,
        clock: IReactorTime,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._port = port
        self._store = store
        self._cursors = cursors
        self._config = config
        self._clock = clock
        self._on_queued = on_queued
        self._watches: dict[str, Watch] = {}
        self._stopped = False

    @property
    def watched(self) -> frozenset[str]:
        """Cursor names of the running watches (``ALL_TOPICS`` or topics)."""
        return frozenset(self._watches)

    async def watch(self, name: str = ALL_TOPICS) -> None:
        """Start watching ``name`` (every topic, or one topic where the port
        cannot watch all), resuming after its stored cursor."""
        if name in self._watches or self._stopped:
            return
        since = await self._cursors.cursor(name)
        if name in self._watches or self._stopped:
            return
        topic = None if name == ALL_TOPICS else name

        async def handle(update: ReceivedUpdate) -> None:
            await self._handle(name, update)

        self._watches[name] = self._port.watch(topic, since, handle)
        self.log.info(
            "websub hub: watching {what} for deliveries{resume}",
            what="every topic" if topic is None else topic,
            resume="" if since is None else f" (resuming after {since})",
        )

    def unwatch(self, name: str) -> None:
        """Stop the watch ``name`` (its cursor stays for a later restart)."""
        watch = self._watches.pop(name, None)
        if watch is not None:
            watch.stop()

    def stop(self) -> None:
        self._stopped = True
        for name in list(self._watches):
            self.unwatch(name)

    async def _handle(self, name: str, update: ReceivedUpdate) -> None:
        offered = [
            (topic, found)
            for topic in dict.fromkeys(update.topics)
            if (found := self._config.offered(topic)) is not None
        ]
        if not offered:
            return
        body = update.data.encode("utf-8", "surrogatepass")
        queued = 0
        for topic, found in offered:
            queued += await self._persist(
                lambda: self._store.enqueue(
                    update.id, topic, body, found.content_type, self._clock.seconds()
                ),
                update.id,
            )
        await self._persist(lambda: self._cursors.set_cursor(name, update.id), update.id)
        if queued:
            self.log.debug(
                "websub hub: update {id} queued for {count} subscriber(s)",
                id=update.id, count=queued,
            )
            self._on_queued()

    async def _persist(self, write: Callable[[], Awaitable[T]], update_id: str) -> T:
        """Run ``write`` until it succeeds (or the intake stops): an update
        is never passed over because the store was briefly down."""
        delay = self.RETRY_FIRST
        while True:
            try:
                return await write()
            except (HubStoreUnavailable, sqlite3.Error) as e:
                # sqlite3.Error: the cursor table (a full disk, a locked
                # file) rather than the hub store.
                if self._stopped:
                    raise
                self.log.warn(
                    "websub hub: could not queue update {id} ({error}); retrying in {delay:g}s",
                    id=update_id, error=str(e), delay=delay,
                )
                await deferLater(self._clock, delay)
                delay = min(delay * 2, self.RETRY_CAP)
