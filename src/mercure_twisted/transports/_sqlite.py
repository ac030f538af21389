"""The embedded default transport: a durable, bounded history in one SQLite file.

Why it looks like this:

* **Stored before answered.**  ``publish`` fires only after the transaction
  holding the update has committed (WAL mode): a publish the hub answered
  200 survives ``kill -9``.  With ``synchronous=NORMAL`` (the default) a
  commit is durable against the death of the process but an OS crash or a
  power cut may lose the last commits; ``?synchronous=full`` fsyncs every
  commit and survives those too, at the cost of one fsync per group commit.
* **Group commit off the reactor.**  One writer thread owns the writing
  connection; while it commits one transaction, every publish that arrives
  waits in ``_pending`` and all of them go into the next transaction (at
  most ``batch_limit`` updates or about ``BATCH_BYTES`` of data).  So a burst costs a few commits, not one each, and
  the reactor never waits for the disk.
* **Dispatch in commit order.**  Only one transaction is in flight at a
  time; its updates are dispatched, in order, after it committed, with the
  row id (``seq``) as their position, before their publishers are answered.
* **Reads never block the reactor** nor the writer: replay queries run on a
  small pool of reader threads, each with its own connection (WAL readers
  see a snapshot and do not wait for the writer).
* **Bounded.**  ``history_size`` is applied in the same transaction as the
  inserts (the steady state deletes as many rows as it adds);
  ``history_max_age`` and any larger excess are deleted by a maintenance
  step every second, in chunks of ``chunk`` rows, each its own short
  transaction queued behind pending publishes.  Freed pages are reused, and
  beyond a few hundred returned to the file system (``auto_vacuum =
  INCREMENTAL``); the WAL is checkpointed automatically and truncated back
  to 4 MiB (``journal_size_limit``).  The file never grows forever.
* **One process per file**, enforced with a lock file: dispatch happens in
  the process that commits.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from typing import Any, Callable, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from ..config import ConfigError, HubConfig
from ..update import Update
from ._interface import HistoryResult, ITransport, TransportUnavailable
from ._sqlite_store import Found, LockFile, Maintained, SQLiteStore, StoreError, Written

__all__ = ["SQLiteTransport", "parse_sqlite_url"]

T = TypeVar("T")

#: Bytes a ping writes (and deletes) when the last write succeeded; at most
#: this many when it writes as much as a refused batch.
PROBE_SIZE = 1024
MAX_PROBE_SIZE = 8 * 1024 * 1024

#: A group commit stops taking updates once it holds this much data, so that
#: one transaction (and the WAL) stays small even for a burst of large ones.
BATCH_BYTES = 4 * 1024 * 1024

#: ``?synchronous=`` values accepted in the URL, and SQLite's names for them.
SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}

#: Python's GIL switch interval while the transport runs.  Each SQLite call
#: of the writer thread gives the GIL back and must take it again from the
#: reactor thread, which under load holds it; with the default 5 ms a
#: commit of 0.3 ms of work took 1.1 ms (benchmark suite, RESULTS.md), and
#: every publisher waits for its commit.  Only a thread that waits for the
#: GIL is affected: an idle writer costs nothing.
WRITER_SWITCH_INTERVAL = 0.0005


def parse_sqlite_url(url: str, base_dir: str = "") -> tuple[str, str]:
    """``(absolute file path, synchronous mode)`` of a ``sqlite:`` URL.

    ``sqlite:///var/lib/mercure/mercure.db`` names an absolute path;
    ``sqlite://mercure.db`` a path relative to ``base_dir`` (the data
    directory), or to the working directory when there is none.
    """
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ConfigError(f"not a sqlite:// URL: {url!r}")
    path = unquote(parts.netloc + parts.path)
    if not path or path.endswith("/"):
        raise ConfigError(
            f"sqlite transport {url!r} names no file: use sqlite:///absolute/path/mercure.db"
        )
    path = os.path.expanduser(path)
    if not os.path.isabs(path):
        path = os.path.join(base_dir or os.getcwd(), path)
    synchronous = "NORMAL"
    try:
        options = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ConfigError(f"sqlite transport {url!r}: malformed query string") from None
    for key, value in options:
        if key != "synchronous":
            raise ConfigError(f"sqlite transport {url!r}: unknown option {key!r} (known: synchronous)")
        if value.lower() not in SYNCHRONOUS:
            raise ConfigError(
                f"sqlite transport {url!r}: synchronous must be normal or full, not {value!r}"
            )
        synchronous = SYNCHRONOUS[value.lower()]
    return os.path.abspath(path), synchronous


@implementer(ITransport)
class SQLiteTransport:
    """Updates in one SQLite file, written by one thread, read by a few."""

    name = "sqlite"
    log = Logger()

    def __init__(
        self,
        path: str,
        *,
        reactor: Any,
        clock: IReactorTime | None = None,
        history_size: int = 1000,
        history_max_age: float = 0.0,
        synchronous: str = "NORMAL",
        maintenance_interval: float = 1.0,
        batch_limit: int = 1000,
        chunk: int = 1000,
    ) -> None:
        """Open (or create) the file now: an unusable one raises ``ConfigError``,
        so that ``twistd`` stops at start with one line."""
        self.path = os.path.abspath(path)
        self._reactor = reactor
        self._clock: IReactorTime = clock if clock is not None else reactor
        self._history_size = max(0, history_size)
        self._max_age = max(0.0, history_max_age)
        self._interval = maintenance_interval
        self._batch_limit = max(1, batch_limit)
        self._chunk = max(1, chunk)
        self.presence = None  # one process: the hub lists its own subscribers
        self._lock, self._store = self._open(synchronous)
        state = self._store.state
        self._count = state.count
        self._last_id = state.last_id
        self._dispatch: Callable[[Update], None] | None = None
        self._pending: list[tuple[Update, Deferred[Update]]] = []
        self._writing = False
        self._switch_interval = sys.getswitchinterval()
        self._maintaining = False
        self._idle: list[Deferred[None]] = []
        self._reads = 0  # replay queries running on the reader threads
        self._state = "new"
        self._stopped: Deferred[None] | None = None
        self._loop: LoopingCall | None = None
        self._trigger: Any = None
        self._writer_pool = ThreadPool(1, 1, "mercure-sqlite-writer")
        self._reader_pool = ThreadPool(0, 2, "mercure-sqlite-reader")
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        #: Transactions committed for publishes (group commits), for tests and logs.
        self.commits = 0
        #: Bytes the ping probe writes: those of the last refused batch, so
        #: that /readyz says whether what was refused would fit now.
        self._probe_size = PROBE_SIZE
        self.log.info(
            "sqlite history {path}: {count} update(s), newest {last_id}",
            path=self.path, count=self._count, last_id=self._last_id,
        )

    def _open(self, synchronous: str) -> tuple[LockFile, SQLiteStore]:
        where = os.path.dirname(self.path)
        try:
            os.makedirs(where, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"sqlite transport: cannot create the folder {where}: {e.strerror}") from None
        if os.path.isdir(self.path):
            raise ConfigError(f"sqlite transport: {self.path} is a folder, not a file")
        try:
            lock = LockFile(self.path)
        except StoreError as e:
            raise ConfigError(f"sqlite transport: {e}") from None
        try:
            return lock, SQLiteStore(self.path, synchronous=synchronous)
        except StoreError as e:
            lock.release()
            raise ConfigError(f"sqlite transport: {e}") from None

    @classmethod
    def from_url(cls, url: str, *, config: HubConfig, reactor: Any) -> SQLiteTransport:
        path, synchronous = parse_sqlite_url(url, config.data_dir)
        return cls(
            path,
            reactor=reactor,
            history_size=config.history_size,
            history_max_age=config.history_max_age,
            synchronous=synchronous,
        )

    # -- lifecycle ----------------------------------------------------------------

    def start(self, dispatch: Callable[[Update], None]) -> None:
        if self._state != "new":
            raise RuntimeError(f"sqlite transport cannot start when {self._state}")
        self._dispatch = dispatch
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, WRITER_SWITCH_INTERVAL))
        self._writer_pool.start()
        self._reader_pool.start()
        self._state = "running"
        # A safety net: threads that outlive the reactor keep a process alive.
        self._trigger = self._reactor.addSystemEventTrigger("during", "shutdown", self.stop)
        if self._interval > 0:
            self._loop = LoopingCall(self._maintain)
            self._loop.clock = self._clock
            self._loop.start(self._interval, now=False).addErrback(
                lambda f: self.log.failure("sqlite maintenance loop stopped", f)
            )

    def stop(self) -> Deferred[None]:
        """Flush every pending publish, wait for running reads, then close."""
        if self._stopped is None:
            self._stopped = Deferred.fromCoroutine(self._shutdown())
        d: Deferred[None] = Deferred()
        self._stopped.addBoth(_fan_out, d)
        return d

    async def _shutdown(self) -> None:
        was = self._state
        self._state = "stopping"
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if was == "running":
            if not self._is_idle():
                idle: Deferred[None] = Deferred()
                self._idle.append(idle)
                await idle
            self._writer_pool.stop()
            self._reader_pool.stop()
            sys.setswitchinterval(self._switch_interval)
            if self._trigger is not None:
                try:
                    self._reactor.removeSystemEventTrigger(self._trigger)
                except (ValueError, KeyError):
                    pass  # we are that trigger, already running
        for reader in self._readers:
            reader.close()
        self._store.close()
        self._lock.release()
        self._dispatch = None
        self._state = "stopped"
        self.log.info("sqlite history {path} closed", path=self.path)

    # -- publishing ---------------------------------------------------------------

    def publish(self, update: Update) -> Deferred[Update]:
        if self._state != "running":
            return fail(TransportUnavailable(f"the SQLite history is {self._state}"))
        d: Deferred[Update] = Deferred()
        self._pending.append((update, d))
        if not self._writing:
            # Not now but at the end of this reactor turn: the publishes
            # read in the same turn (a wave of keep-alive publishers
            # answered by the last commit) then share one commit, instead
            # of the first committing alone and the others waiting for it.
            self._writing = True
            self._reactor.callLater(0, self._write_next)
        return d

    def _write_next(self) -> None:
        batch: list[tuple[Update, Deferred[Update]]] = []
        size = 0
        for entry in self._pending[: self._batch_limit]:
            if batch and size >= BATCH_BYTES:
                break  # a burst of large updates: several shorter commits
            batch.append(entry)
            size += len(entry[0].data)
        del self._pending[: len(batch)]
        self._writing = True
        now = self._clock.seconds()
        updates = [u for u, _ in batch]
        d = self._on_writer(self._store.write, updates, now, self._history_size, self._chunk)
        d.addCallbacks(
            self._written, self._write_failed, callbackArgs=(batch,), errbackArgs=(batch,)
        )
        d.addErrback(lambda f: self.log.failure("sqlite: dispatching a commit failed", f))
        d.addBoth(self._write_done)

    def _written(self, written: Written, batch: list[tuple[Update, Deferred[Update]]]) -> None:
        self.commits += 1
        self._probe_size = PROBE_SIZE
        self._count = written.count
        self._last_id = batch[-1][0].id
        for (update, d), seq in zip(batch, written.seqs):
            positioned = update.with_position(seq)
            if self._dispatch is not None:
                try:
                    self._dispatch(positioned)
                except Exception:
                    self.log.failure("dispatch of {id} failed", id=update.id)
            d.callback(positioned)

    def _write_failed(self, failure: Failure, batch: list[tuple[Update, Deferred[Update]]]) -> None:
        error = self._describe(failure)
        self.log.error(
            "sqlite: could not store {count} update(s) in {path}: {error}",
            count=len(batch), path=self.path, error=error,
        )
        size = sum(len(u.data.encode()) + 256 * len(u.topics) for u, _ in batch)
        self._probe_size = max(PROBE_SIZE, min(size, MAX_PROBE_SIZE))
        for _, d in batch:
            d.errback(TransportUnavailable(f"the SQLite history cannot store updates: {error}"))

    def _write_done(self, _: object) -> None:
        self._writing = False
        if self._pending:
            self._write_next()
        else:
            self._maybe_idle()

    # -- retention ---------------------------------------------------------------

    def _maintain(self) -> None:
        if self._maintaining or self._state != "running":
            return
        self._maintaining = True
        cutoff = self._clock.seconds() - self._max_age if self._max_age > 0 else None
        d = self._on_writer(self._store.maintain, cutoff, self._history_size, self._chunk)
        d.addCallbacks(self._maintained, self._maintenance_failed)

    def _maintained(self, result: Maintained) -> None:
        self._maintaining = False
        self._count = result.count
        if result.deleted or result.vacuumed:
            self.log.debug(
                "sqlite retention: {deleted} update(s) deleted, {vacuumed} page(s) freed",
                deleted=result.deleted, vacuumed=result.vacuumed,
            )
        if result.more and self._state == "running":
            self._maintain()  # next chunk, queued behind any pending publish
        else:
            self._maybe_idle()

    def _maintenance_failed(self, failure: Failure) -> None:
        self._maintaining = False
        self.log.error(
            "sqlite retention step failed on {path}: {error}",
            path=self.path, error=self._describe(failure),
        )
        self._maybe_idle()

    def _is_idle(self) -> bool:
        return not (self._writing or self._maintaining or self._pending or self._reads)

    def _maybe_idle(self) -> None:
        """Fire what ``stop`` waits for once nothing is written or read."""
        if not self._is_idle():
            return
        idle, self._idle = self._idle, []
        for d in idle:
            d.callback(None)

    # -- reading ------------------------------------------------------------------

    def history(self, last_event_id: str) -> Deferred[HistoryResult]:
        if self._state != "running":
            return fail(TransportUnavailable(f"the SQLite history is {self._state}"))
        cutoff = self._clock.seconds() - self._max_age if self._max_age > 0 else None
        d = deferToThreadPool(self._reactor, self._reader_pool, self._read, last_event_id, cutoff)
        self._reads += 1

        def done(result: Found | Failure) -> Found | Failure:
            self._reads -= 1
            self._maybe_idle()
            return result

        d.addBoth(done)
        d.addErrback(self._unavailable, "read the history")
        return d.addCallback(lambda found: HistoryResult(found.found, found.updates, found.up_to))

    def _read(self, last_event_id: str, cutoff: float | None) -> Found:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._store.open_reader()
            self._readers.append(db)
        return SQLiteStore.read(db, last_event_id, cutoff)

    def last_event_id(self) -> str | None:
        return self._last_id

    def history_length(self) -> int:
        return self._count

    def ping(self) -> Deferred[None]:
        """A real write transaction on the writer thread, queued like a publish.

        It writes 1 KiB, or as much as the last refused batch when the last
        write failed: ready means that what was refused would be stored now.
        """
        if self._state != "running":
            return fail(TransportUnavailable(f"the SQLite history is {self._state}"))
        d = self._on_writer(self._store.probe, self._probe_size)
        return d.addErrback(self._unavailable, "write")

    # -- helpers ------------------------------------------------------------------

    def _on_writer(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        return deferToThreadPool(self._reactor, self._writer_pool, f, *args)

    def _unavailable(self, failure: Failure, what: str) -> Failure:
        if failure.check(CancelledError, TransportUnavailable):
            return failure  # the reader left, or already explained
        error = self._describe(failure)
        self.log.error("sqlite: cannot {what} {path}: {error}", what=what, path=self.path, error=error)
        return Failure(TransportUnavailable(f"the SQLite history cannot {what}: {error}"))

    def _describe(self, failure: Failure) -> str:
        if not failure.check(sqlite3.Error, OSError):
            self.log.failure("sqlite: unexpected error", failure)
        return str(failure.value) or type(failure.value).__name__


def _fan_out(result: object, d: Deferred[None]) -> None:
    """Hand the outcome of the one shutdown to one of the callers of ``stop``."""
    if isinstance(result, Failure):
        d.errback(result)
    else:
        d.callback(None)
