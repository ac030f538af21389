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

Two things keep the intake off the hub's publish path.  Where the store
is this process's alone (SQLite), the topics that have subscribers are
known in memory (read at start and at every refresh, and told at once of
each verified subscription), so an update nobody subscribed to costs no
store call; a shared store (a cluster on Redis) is asked about every
offered update instead, since a subscription made on another node, which
may stop before it queues anything, must be served at once.  And the
cursor is written at most once a second (and at stop), since resuming
from an older cursor only replays updates that ``enqueue`` then ignores.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
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
    #: Seconds between cursor writes.
    CURSOR_EVERY = 1.0

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
        #: Topics with live subscriptions, None until first read (then
        #: every update of an offered topic goes to the store).
        self._subscribed: set[str] | None = None
        #: Cursors handled but not yet written, by watch name.
        self._unsaved: dict[str, str] = {}
        self._saving: IDelayedCall | None = None
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

    async def stop(self) -> None:
        """Stop every watch and write the cursors not yet written."""
        self._stopped = True
        for name in list(self._watches):
            self.unwatch(name)
        if self._saving is not None and self._saving.active():
            self._saving.cancel()
        await self._save_cursors()

    async def refresh_subscribed(self) -> set[str] | None:
        """Re-read which topics have live subscriptions, and return them (a
        store that cannot be reached leaves the set as it was: None)."""
        try:
            topics = set(await self._store.topics(self._clock.seconds()))
        except HubStoreUnavailable as e:
            self.log.warn("websub hub: cannot list subscribed topics ({error})", error=str(e))
            return None
        if not self._store.shared:
            self._subscribed = set(topics)
        return topics

    def subscribed(self, topic: str) -> None:
        """``topic`` just got a verified subscription here."""
        if self._subscribed is not None:
            self._subscribed.add(topic)

    def _wanted(self, topic: str) -> bool:
        return self._subscribed is None or topic in self._subscribed

    def _handled(self, name: str, update_id: str) -> None:
        self._unsaved[name] = update_id
        if self._saving is None or not self._saving.active():
            self._saving = self._clock.callLater(self.CURSOR_EVERY, self._save_soon)

    def _save_soon(self) -> None:
        d = Deferred.fromCoroutine(self._save_cursors())
        d.addErrback(lambda f: self.log.failure("websub hub: writing the cursors failed", f))

    async def _save_cursors(self) -> None:
        unsaved, self._unsaved = self._unsaved, {}
        for name, update_id in unsaved.items():
            try:
                await self._cursors.set_cursor(name, update_id)
            except sqlite3.Error as e:
                # Kept for the next write: an older cursor only replays more.
                self._unsaved.setdefault(name, update_id)
                self.log.warn(
                    "websub hub: could not record where the watch stopped ({error})", error=str(e)
                )

    async def _handle(self, name: str, update: ReceivedUpdate) -> None:
        offered = [
            (topic, found)
            for topic in dict.fromkeys(update.topics)
            # The set lookup first: it spares most updates the selectors.
            if self._wanted(topic) and (found := self._config.offered(topic)) is not None
        ]
        if not offered:
            self._handled(name, update.id)
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
        self._handled(name, update.id)
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
            except HubStoreUnavailable as e:
                if self._stopped:
                    raise
                self.log.warn(
                    "websub hub: could not queue update {id} ({error}); retrying in {delay:g}s",
                    id=update_id, error=str(e), delay=delay,
                )
                await deferLater(self._clock, delay)
                delay = min(delay * 2, self.RETRY_CAP)
