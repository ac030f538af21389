"""The bridge's durable state: SQLite at ``<data_dir>/websub.db``.

What must survive a restart lives here: the follows and their state, every
callback we gave a hub (its capability token, secret, lease), and the ids
of the feed entries each follow has already re-published, so that a
restart neither loses a subscription nor re-publishes old entries.

SQLite blocks, so every statement runs off the reactor thread: `Store`
hands functions of a `sqlite3.Connection` to an executor, a single
dedicated thread in production (`ThreadExecutor`: one connection, no
locking games) or the calling thread in tests that drive the reactor by
hand (`InlineExecutor`, same SQL, same file).

The schema is versioned with ``PRAGMA user_version``: `MIGRATIONS` holds
one script per version, applied in order, each in its own transaction.
Part 2 of the bridge (the WebSub hub role) appends its own scripts and
tables; it never rewrites one that has shipped.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

__all__ = [
    "MIGRATIONS",
    "Callback",
    "CallbackMode",
    "CallbackStatus",
    "DuplicateFollow",
    "Executor",
    "Follow",
    "FollowMode",
    "FollowState",
    "InlineExecutor",
    "Store",
    "ThreadExecutor",
]

T = TypeVar("T")

FollowState = Literal["pending", "active", "denied", "unsubscribing"]
FollowMode = Literal["document", "entries"]
CallbackMode = Literal["subscribe", "unsubscribe"]
CallbackStatus = Literal["pending", "active"]

#: One script per schema version (index 0 brings an empty file to version 1).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE follows (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL UNIQUE,
        mercure_topic TEXT,
        private INTEGER NOT NULL DEFAULT 0,
        lease_seconds INTEGER,
        mode TEXT NOT NULL DEFAULT 'document',
        origin TEXT NOT NULL DEFAULT 'api',
        state TEXT NOT NULL DEFAULT 'pending',
        hub_url TEXT,
        self_url TEXT,
        content_type TEXT,
        denial_reason TEXT,
        last_error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_expires REAL,
        created_at REAL NOT NULL
    );
    CREATE TABLE callbacks (
        lookup TEXT PRIMARY KEY,
        token TEXT NOT NULL,
        follow_id INTEGER NOT NULL REFERENCES follows(id) ON DELETE CASCADE,
        hub_url TEXT NOT NULL,
        topic TEXT NOT NULL,
        secret TEXT,
        mode TEXT NOT NULL,
        status TEXT NOT NULL,
        lease_expires REAL,
        created_at REAL NOT NULL
    );
    CREATE INDEX callbacks_by_follow ON callbacks(follow_id);
    CREATE TABLE seen_entries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        follow_id INTEGER NOT NULL REFERENCES follows(id) ON DELETE CASCADE,
        entry_id TEXT NOT NULL,
        UNIQUE (follow_id, entry_id)
    );
    """,
]


class DuplicateFollow(Exception):
    """A follow of this topic exists already."""


@attrs.frozen
class Follow:
    """One followed topic and where its subscription stands."""

    id: int
    topic: str
    mercure_topic: str | None = None
    private: bool = False
    lease_seconds: int | None = None
    mode: FollowMode = "document"
    origin: Literal["config", "api"] = "api"
    state: FollowState = "pending"
    hub_url: str | None = None
    self_url: str | None = None
    content_type: str | None = None
    denial_reason: str | None = None
    last_error: str | None = None
    attempts: int = 0
    lease_expires: float | None = None
    created_at: float = 0.0

    @property
    def target_topic(self) -> str:
        """The Mercure topic deliveries are published to: the configured
        one, else the discovered ``rel=self`` URL, else the followed URL."""
        return self.mercure_topic or self.self_url or self.topic


@attrs.frozen
class Callback:
    """One subscription request we made to a hub: ``hub.callback`` is
    ``<public_url>/websub/callback/<token>``.  ``status`` is ``pending``
    until the hub verified our intent; a ``subscribe`` callback then turns
    ``active``, an ``unsubscribe`` one is deleted."""

    token: str = attrs.field(repr=False)
    follow_id: int
    hub_url: str
    topic: str
    secret: str | None = attrs.field(default=None, repr=False)
    mode: CallbackMode = "subscribe"
    status: CallbackStatus = "pending"
    lease_expires: float | None = None
    created_at: float = 0.0


_FOLLOW_COLUMNS = tuple(a.name for a in attrs.fields(Follow))
_CALLBACK_COLUMNS = tuple(a.name for a in attrs.fields(Callback))
_FOLLOW_UPDATABLE = frozenset(_FOLLOW_COLUMNS) - {"id", "topic", "created_at"}
_CALLBACK_UPDATABLE = frozenset({"hub_url", "mode", "status", "lease_expires", "created_at"})


def _follow(row: Sequence[Any]) -> Follow:
    values = dict(zip(_FOLLOW_COLUMNS, row))
    values["private"] = bool(values["private"])
    return Follow(**values)


def _callback(row: Sequence[Any]) -> Callback:
    return Callback(**dict(zip(_CALLBACK_COLUMNS, row)))


# -- executors -------------------------------------------------------------

Interaction = Callable[[sqlite3.Connection], T]


class Executor:
    """Runs interactions with the one connection; see the two below."""

    def run(self, interaction: Interaction[T]) -> Deferred[T]:
        raise NotImplementedError

    def close(self) -> Deferred[None]:
        raise NotImplementedError


def _connect(path: str) -> sqlite3.Connection:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


def _transaction(connection: sqlite3.Connection, interaction: Interaction[T]) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = interaction(connection)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result


class InlineExecutor(Executor):
    """Runs each interaction at once in the calling thread (tests, tools)."""

    def __init__(self, path: str) -> None:
        self._connection: sqlite3.Connection | None = _connect(path)

    def run(self, interaction: Interaction[T]) -> Deferred[T]:
        if self._connection is None:
            return fail(RuntimeError("the store is closed"))
        try:
            return succeed(_transaction(self._connection, interaction))
        except Exception as e:
            return fail(e)

    def close(self) -> Deferred[None]:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        return succeed(None)


class ThreadExecutor(Executor):
    """One dedicated thread owns the connection: the reactor never waits
    on the disk, and statements never interleave.

    The thread starts with the first interaction (not when the service tree
    is built) and is stopped by `close`, or at the latest when the reactor
    shuts down, so it never keeps a process alive.
    """

    def __init__(self, path: str, reactor: Any) -> None:
        self._path = path
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="websub-store")
        self._started = False
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._pool.start()
            self._reactor.addSystemEventTrigger("during", "shutdown", self._stop_pool)

    def _stop_pool(self) -> None:
        if self._pool.started:
            self._pool.stop()

    def _in_thread(self, interaction: Interaction[T]) -> T:
        if self._connection is None:
            self._connection = _connect(self._path)
        return _transaction(self._connection, interaction)

    def run(self, interaction: Interaction[T]) -> Deferred[T]:
        if self._closed:
            return fail(RuntimeError("the store is closed"))
        self._start()
        return deferToThreadPool(self._reactor, self._pool, self._in_thread, interaction)

    def close(self) -> Deferred[None]:
        if self._closed:
            return succeed(None)
        if not self._started:
            self._closed = True
            return succeed(None)

        def close_connection() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        d = deferToThreadPool(self._reactor, self._pool, close_connection)
        self._closed = True

        def stop_pool(result: object) -> object:
            self._stop_pool()
            return result

        d.addBoth(stop_pool)
        return d


# -- the store --------------------------------------------------------------


class Store:
    """Every read and write of the bridge's state, as Deferreds."""

    log = Logger()

    def __init__(self, executor: Executor, *, max_seen_entries: int = 10_000) -> None:
        self._executor = executor
        self.max_seen_entries = max_seen_entries

    @classmethod
    def in_data_dir(cls, data_dir: str, reactor: Any, **kwargs: Any) -> Store:
        return cls(ThreadExecutor(os.path.join(data_dir, "websub.db"), reactor), **kwargs)

    def run(self, interaction: Interaction[T]) -> Deferred[T]:
        """Run ``interaction(connection)`` in one transaction (for part 2's tables too)."""
        return self._executor.run(interaction)

    def close(self) -> Deferred[None]:
        return self._executor.close()

    # -- schema --------------------------------------------------------

    def migrate(self, migrations: Sequence[str] = MIGRATIONS) -> Deferred[int]:
        """Bring the file to ``len(migrations)``; fires with the version.

        A file written by a newer release (a higher ``user_version``) is
        refused rather than half understood.
        """

        def interaction(connection: sqlite3.Connection) -> int:
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            if version > len(migrations):
                raise RuntimeError(
                    f"websub.db has schema version {version}, newer than this "
                    f"release's {len(migrations)}"
                )
            for number in range(version, len(migrations)):
                for statement in _statements(migrations[number]):
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {number + 1}")
            return len(migrations)

        return self.run(interaction)

    # -- watch cursors -------------------------------------------------

    def cursor(self, name: str) -> Deferred[str | None]:
        """The id of the last update the watch ``name`` handled, or None."""

        def interaction(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT event_id FROM watch_cursors WHERE name = ?", (name,)).fetchone()
            return None if row is None else str(row[0])

        return self.run(interaction)

    def set_cursor(self, name: str, event_id: str) -> Deferred[None]:
        def interaction(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO watch_cursors (name, event_id) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET event_id = excluded.event_id",
                (name, event_id),
            )

        return self.run(interaction)

    # -- follows -------------------------------------------------------

    def follows(self) -> Deferred[list[Follow]]:
        columns = ", ".join(_FOLLOW_COLUMNS)
        return self.run(
            lambda c: [
                _follow(r) for r in c.execute(f"SELECT {columns} FROM follows ORDER BY id")
            ]
        )

    def follow(self, follow_id: int) -> Deferred[Follow | None]:
        return self.run(lambda c: _get_follow(c, follow_id))

    def add_follow(
        self,
        *,
        topic: str,
        mercure_topic: str | None,
        private: bool,
        lease_seconds: int | None,
        mode: FollowMode,
        origin: Literal["config", "api"],
        now: float,
    ) -> Deferred[Follow]:
        def interaction(c: sqlite3.Connection) -> Follow:
            try:
                cursor = c.execute(
                    "INSERT INTO follows (topic, mercure_topic, private, lease_seconds, mode,"
                    " origin, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (topic, mercure_topic, int(private), lease_seconds, mode, origin, now),
                )
            except sqlite3.IntegrityError:
                raise DuplicateFollow(topic) from None
            follow = _get_follow(c, int(cursor.lastrowid or 0))
            assert follow is not None
            return follow

        return self.run(interaction)

    def update_follow(self, follow_id: int, **fields: Any) -> Deferred[Follow | None]:
        unknown = set(fields) - _FOLLOW_UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if "private" in fields:
            fields["private"] = int(fields["private"])

        def interaction(c: sqlite3.Connection) -> Follow | None:
            if fields:
                assignments = ", ".join(f"{name} = ?" for name in fields)
                c.execute(
                    f"UPDATE follows SET {assignments} WHERE id = ?",
                    (*fields.values(), follow_id),
                )
            return _get_follow(c, follow_id)

        return self.run(interaction)

    def delete_follow(self, follow_id: int) -> Deferred[None]:
        return self.run(lambda c: _none(c.execute("DELETE FROM follows WHERE id = ?", (follow_id,))))

    # -- callbacks -----------------------------------------------------

    def add_callback(self, callback: Callback) -> Deferred[None]:
        values = (_lookup(callback.token), *attrs.astuple(callback, recurse=False))
        marks = ", ".join("?" for _ in values)
        columns = ", ".join(("lookup", *_CALLBACK_COLUMNS))
        return self.run(
            lambda c: _none(c.execute(f"INSERT INTO callbacks ({columns}) VALUES ({marks})", values))
        )

    def callback(self, token: str) -> Deferred[Callback | None]:
        columns = ", ".join(_CALLBACK_COLUMNS)

        def interaction(c: sqlite3.Connection) -> Callback | None:
            row = c.execute(f"SELECT {columns} FROM callbacks WHERE lookup = ?", (_lookup(token),)).fetchone()
            return _callback(row) if row else None

        return self.run(interaction)

    def callbacks(self, follow_id: int | None = None) -> Deferred[list[Callback]]:
        columns = ", ".join(_CALLBACK_COLUMNS)
        if follow_id is None:
            query, args = f"SELECT {columns} FROM callbacks ORDER BY created_at", ()
        else:
            query = f"SELECT {columns} FROM callbacks WHERE follow_id = ? ORDER BY created_at"
            args = (follow_id,)  # type: ignore[assignment]
        return self.run(lambda c: [_callback(r) for r in c.execute(query, args)])

    def update_callback(self, token: str, **fields: Any) -> Deferred[None]:
        unknown = set(fields) - _CALLBACK_UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        return self.run(
            lambda c: _none(
                c.execute(
                    f"UPDATE callbacks SET {assignments} WHERE lookup = ?", (*fields.values(), _lookup(token))
                )
            )
        )

    def delete_callback(self, token: str) -> Deferred[None]:
        return self.run(
            lambda c: _none(c.execute("DELETE FROM callbacks WHERE lookup = ?", (_lookup(token),)))
        )

    def activate(self, token: str, lease_expires: float, now: float) -> Deferred[list[Callback]]:
        """The hub verified ``token``'s subscription: make it the follow's
        active callback, and turn the follow's other active callbacks into
        pending unsubscriptions (returned, for the caller to send)."""
        columns = ", ".join(_CALLBACK_COLUMNS)

        def interaction(c: sqlite3.Connection) -> list[Callback]:
            row = c.execute(
                "SELECT follow_id FROM callbacks WHERE lookup = ?", (_lookup(token),)
            ).fetchone()
            if row is None:
                return []
            follow_id = row[0]
            c.execute(
                "UPDATE callbacks SET status = 'active', lease_expires = ? WHERE lookup = ?",
                (lease_expires, _lookup(token)),
            )
            retired = [
                _callback(r)
                for r in c.execute(
                    f"SELECT {columns} FROM callbacks WHERE follow_id = ? AND lookup != ?"
                    " AND mode = 'subscribe' AND status = 'active'",
                    (follow_id, _lookup(token)),
                )
            ]
            for old in retired:
                c.execute(
                    "UPDATE callbacks SET mode = 'unsubscribe', status = 'pending', created_at = ?"
                    " WHERE lookup = ?",
                    (now, _lookup(old.token)),
                )
            c.execute(
                "UPDATE follows SET state = 'active', lease_expires = ?, attempts = 0,"
                " last_error = NULL, denial_reason = NULL WHERE id = ? AND state != 'unsubscribing'",
                (lease_expires, follow_id),
            )
            return [attrs.evolve(old, mode="unsubscribe", status="pending", created_at=now) for old in retired]

        return self.run(interaction)

    # -- seen entries --------------------------------------------------

    def unseen(self, follow_id: int, entry_ids: Iterable[str]) -> Deferred[list[str]]:
        """The ids among ``entry_ids`` this follow has not published yet, in order, once each."""
        wanted = list(dict.fromkeys(entry_ids))

        def interaction(c: sqlite3.Connection) -> list[str]:
            return [
                entry_id
                for entry_id in wanted
                if c.execute(
                    "SELECT 1 FROM seen_entries WHERE follow_id = ? AND entry_id = ?",
                    (follow_id, entry_id),
                ).fetchone()
                is None
            ]

        return self.run(interaction)

    def mark_seen(self, follow_id: int, entry_ids: Iterable[str]) -> Deferred[None]:
        """Remember ``entry_ids`` as published; keep the newest ``max_seen_entries``."""
        ids = list(entry_ids)
        bound = self.max_seen_entries

        def interaction(c: sqlite3.Connection) -> None:
            c.executemany(
                "INSERT OR IGNORE INTO seen_entries (follow_id, entry_id) VALUES (?, ?)",
                [(follow_id, entry_id) for entry_id in ids],
            )
            c.execute(
                "DELETE FROM seen_entries WHERE follow_id = ? AND seq NOT IN"
                " (SELECT seq FROM seen_entries WHERE follow_id = ? ORDER BY seq DESC LIMIT ?)",
                (follow_id, follow_id, bound),
            )

        return self.run(interaction)

    def seen_count(self, follow_id: int) -> Deferred[int]:
        return self.run(
            lambda c: int(
                c.execute("SELECT COUNT(*) FROM seen_entries WHERE follow_id = ?", (follow_id,)).fetchone()[0]
            )
        )


def _lookup(token: str) -> str:
    """The key a callback is found by: the SHA-256 of its token, so that the
    time an index lookup takes says nothing about the token an attacker
    tries (the capability itself is never compared byte by byte)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _get_follow(c: sqlite3.Connection, follow_id: int) -> Follow | None:
    columns = ", ".join(_FOLLOW_COLUMNS)
    row = c.execute(f"SELECT {columns} FROM follows WHERE id = ?", (follow_id,)).fetchone()
    return _follow(row) if row else None


def _none(_: object) -> None:
    return None


def _statements(script: str) -> list[str]:
    """The statements of a migration script (none of ours contains a ';' in a literal)."""
    return [s.strip() for s in script.split(";") if s.strip()]

# Version 2: the WebSub hub role's subscriptions and delivery queue (part 2,
# `websub_bridge.hub._sqlite_store`).  ``hub_enqueued`` remembers which
# (update, topic) pairs were queued in the last day, so a replayed update is
# not delivered twice.
MIGRATIONS.append(
    """
    CREATE TABLE hub_subscriptions (
        topic TEXT NOT NULL,
        callback TEXT NOT NULL,
        secret TEXT,
        lease_expires REAL NOT NULL,
        created_at REAL NOT NULL,
        host TEXT NOT NULL,
        PRIMARY KEY (topic, callback)
    );
    CREATE INDEX hub_subscriptions_by_host ON hub_subscriptions(host);
    CREATE INDEX hub_subscriptions_by_lease ON hub_subscriptions(lease_expires);
    CREATE TABLE hub_deliveries (
        id TEXT PRIMARY KEY,
        topic TEXT NOT NULL,
        callback TEXT NOT NULL,
        update_id TEXT NOT NULL,
        body BLOB NOT NULL,
        content_type TEXT NOT NULL,
        secret TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        due REAL NOT NULL,
        claimed_until REAL,
        created_at REAL NOT NULL
    );
    CREATE INDEX hub_deliveries_by_due ON hub_deliveries(due);
    CREATE TABLE hub_enqueued (
        update_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (update_id, topic)
    );
    """
)

# Version 3: where each watch of the hub's updates stopped (the WebSub hub
# role's intake, `websub_bridge.hub._intake`).  One row per watch: "*" for
# the in-process watch of every topic, the topic itself for each stream of
# the standalone bridge.  Kept here, per process, even when the hub role's
# subscriptions and queue are in Redis: each node resumes its own watch,
# and the idempotent enqueue makes the overlap of two nodes harmless.
MIGRATIONS.append(
    """
    CREATE TABLE watch_cursors (
        name TEXT PRIMARY KEY,
        event_id TEXT NOT NULL
    );
    """
)
