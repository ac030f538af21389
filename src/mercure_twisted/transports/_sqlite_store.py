"""The blocking half of the SQLite transport: the file, its schema, its queries.

Nothing here knows the reactor.  ``SQLiteTransport`` calls these methods on
its own threads: the writer methods on its single writer thread (one
connection, so writes are serialized without any lock of ours), the reader
methods on its reader threads, each with a connection of its own.  Keeping
the SQL here, synchronous, lets it be read (and tested) as plain code.

The file: one ``updates`` table whose ``seq`` (``AUTOINCREMENT``: never
reused, even once every row was deleted) is the position of an update, an
index on the event id for replay lookups, and a ``meta`` table that keeps
the newest update's id when retention leaves no row (while a row is left,
the newest row names it).  ``PRAGMA user_version`` numbers the schema for
future migrations.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
from typing import Any

import attrs

from ..update import Update

__all__ = ["SCHEMA_VERSION", "LockFile", "SQLiteStore", "StoreError"]

#: The schema this code writes; ``PRAGMA user_version`` of the file.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    topics TEXT NOT NULL,      -- JSON array, canonical topic first
    data TEXT NOT NULL,
    private INTEGER NOT NULL,
    type TEXT,
    retry INTEGER,
    stored_at REAL NOT NULL    -- the hub clock's seconds, for history_max_age
);
CREATE INDEX updates_by_id ON updates (id, seq);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLUMNS = "seq, id, topics, data, private, type, retry"

#: The WAL file is truncated back to this size after a checkpoint, so a
#: burst that made it grow does not leave it large.
JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024
#: Free pages tolerated before ``incremental_vacuum`` gives them back to the
#: file system; below it they are reused by the next inserts.
FREE_PAGES_KEPT = 256
#: Pages vacuumed per maintenance step (4 MiB with 4 KiB pages).
VACUUM_CHUNK = 1024


class StoreError(Exception):
    """The file cannot be used (one line for the operator)."""


class LockFile:
    """An exclusive ``flock`` on ``<db>.lock``: one hub process per file.

    Dispatch to subscribers happens in the process that commits an update,
    so a second hub on the same file would store updates its neighbour's
    subscribers never receive.  The lock is released by the kernel when the
    process dies, so a ``kill -9`` never leaves a stale lock behind.
    """

    def __init__(self, db_path: str) -> None:
        self.path = db_path + ".lock"
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"cannot create the lock file {self.path}: {e.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = self._holder()
            os.close(self._fd)
            self._fd = None
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreError(
                    f"{db_path} is in use by another hub process{holder}: "
                    "one process per SQLite file (use redis:// for several)"
                ) from None
            raise StoreError(f"cannot lock {self.path}: {e.strerror}") from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def _holder(self) -> str:
        try:
            with open(self.path) as f:
                pid = f.read().strip()
        except OSError:
            return ""
        return f" (pid {pid})" if pid.isdigit() else ""

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


@attrs.frozen
class StoreState:
    """What the file holds, as the writer last saw it."""

    count: int
    last_id: str | None
    last_seq: int | None


@attrs.frozen
class Written:
    """The result of one group commit: a position per row, and the new count."""

    seqs: tuple[int, ...]
    count: int


@attrs.frozen
class Found:
    """A replay read: was the id found, the rows after it, the newest position."""

    found: bool
    updates: tuple[Update, ...]
    up_to: int | None


@attrs.frozen
class Maintained:
    """One maintenance step: rows deleted, pages vacuumed, more work left."""

    deleted: int
    vacuumed: int
    count: int
    more: bool


#: Rows per INSERT statement: 8 values each, well under SQLite's 32,766
#: bound variables.
_ROWS_PER_INSERT = 500
_ROW_PLACEHOLDERS = "(?, ?, ?, ?, ?, ?, ?, ?)"


def _row(seq: int, update: Update, now: float) -> tuple[Any, ...]:
    return (
        seq,
        update.id,
        json.dumps(list(update.topics), ensure_ascii=False),
        update.data,
        int(update.private),
        update.type,
        update.retry,
        now,
    )


def _update(row: tuple[Any, ...]) -> Update:
    seq, id, topics, data, private, type, retry = row
    return Update(
        topics=tuple(json.loads(topics)),
        id=id,
        data=data,
        private=bool(private),
        type=type,
        retry=retry,
        position=seq,
    )


class SQLiteStore:
    """One SQLite file in WAL mode: the writer connection and the queries."""

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        try:
            self._writer = self._connect()
            self._configure(synchronous)
            self.state = self._load_state()
        except sqlite3.Error as e:
            self.close()
            raise StoreError(f"cannot use {path} as the SQLite history: {e}") from None

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions, ours are explicit.
        # check_same_thread=False: a connection is used by one thread at a
        # time, but not always the one that opened it (it is opened at start,
        # on the main thread, so that an unusable file stops twistd there).
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 5000")
        return db

    def _configure(self, synchronous: str) -> None:
        db = self._writer
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema {version}, newer than this hub's {SCHEMA_VERSION}: "
                "upgrade mercure-twisted or use another file"
            )
        if version == 0 and tables:
            raise StoreError(f"{self.path} is an SQLite file of something else, not a mercure history")
        # Before the first table exists: freed pages can then be returned
        # to the file system without a full VACUUM.
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: SQLite cannot use WAL mode here (got {mode!r})")
        db.execute(f"PRAGMA synchronous = {synchronous}")
        db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        if version == 0:
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        # Future schema versions migrate here, one step per version.

    def _load_state(self) -> StoreState:
        db = self._writer
        count = db.execute("SELECT COUNT(*) FROM updates").fetchone()[0]
        newest = db.execute("SELECT id FROM updates ORDER BY seq DESC LIMIT 1").fetchone()
        if newest is None:  # retention left no row: the id was kept in meta
            newest = db.execute("SELECT value FROM meta WHERE key = 'last_id'").fetchone()
        seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'updates'").fetchone()
        return StoreState(count=count, last_id=newest[0] if newest else None,
                          last_seq=seq[0] if seq else None)

    # -- the writer thread ------------------------------------------------------

    def write(self, updates: list[Update], now: float, history_size: int, chunk: int) -> Written:
        """Insert ``updates`` in one transaction (a group commit).

        The rows that history_size pushes out go in the same transaction
        when they are at most ``chunk`` (the steady state: as many as were
        inserted), so that history never holds more than history_size after
        a commit; a larger excess (history_size was lowered) is left to
        ``maintain``, chunk by chunk.

        Few statements, because each one hands Python's GIL back and takes
        it again, and under load the reactor thread holds it: the
        benchmark suite measured a commit of 8 at 1 ms on a busy hub
        against 0.3 ms alone, when each row was its own step.  So the rows
        go in one multi-row INSERT with their seqs given (the store is the
        file's only writer, and AUTOINCREMENT still records the highest),
        and no statement asks for them back.
        """
        db = self._writer
        count = self.state.count
        excess = count + len(updates) - history_size
        first = (self.state.last_seq or 0) + 1
        seqs = list(range(first, first + len(updates)))
        db.execute("BEGIN IMMEDIATE")
        try:
            if 0 < excess <= chunk and count:
                # Old rows first: the inserts then reuse the pages they
                # free, and a file with no room left still takes updates
                # as long as history_size makes room for them.
                count -= self._delete_oldest(min(excess, count), count, self.state.last_id)
            for start in range(0, len(updates), _ROWS_PER_INSERT):
                part = updates[start:start + _ROWS_PER_INSERT]
                db.execute(
                    "INSERT INTO updates (seq, id, topics, data, private, type, retry, stored_at) "
                    "VALUES " + ", ".join([_ROW_PLACEHOLDERS] * len(part)),
                    [value for seq, update in zip(seqs[start:], part)
                     for value in _row(seq, update, now)],
                )
            count += len(updates)
            if 0 < excess <= chunk and count > history_size:
                # The batch alone is more than history_size (or it is 0).
                count -= self._delete_oldest(count - history_size, count, updates[-1].id)
            db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self.state = StoreState(count=count, last_id=updates[-1].id, last_seq=seqs[-1])
        return Written(seqs=tuple(seqs), count=count)

    def _delete_oldest(self, n: int, count: int, newest_id: str | None) -> int:
        """Delete the ``n`` oldest of ``count`` rows, ``newest_id`` the id of the last.

        The newest update's id outlives its row (it is the hub's last event
        id after a restart): when every row goes, it is written to meta.
        While a row is left, the newest row names it, so a commit that
        keeps one writes nothing more.
        """
        cursor = self._writer.execute(
            "DELETE FROM updates WHERE seq <= "
            "(SELECT seq FROM updates ORDER BY seq LIMIT 1 OFFSET ?)",
            (n - 1,),
        )
        if cursor.rowcount >= count and newest_id is not None:
            self._writer.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_id', ?)", (newest_id,)
            )
        return cursor.rowcount

    def _rollback(self) -> None:
        try:
            self._writer.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the transaction was already rolled back by SQLite

    def maintain(self, cutoff: float | None, history_size: int, chunk: int) -> Maintained:
        """One small step of retention: at most ``chunk`` rows deleted, in
        their own transaction, then at most ``VACUUM_CHUNK`` free pages
        returned.  ``cutoff``: rows stored before it are past history_max_age.
        """
        db = self._writer
        count = self.state.count
        deleted = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            n = min(max(0, count - history_size), chunk)
            if cutoff is not None:
                # Expired rows form a prefix of the log: count the leading
                # run of them among the oldest ``chunk`` rows.
                stamps = db.execute(
                    "SELECT stored_at FROM updates ORDER BY seq LIMIT ?", (chunk,)
                ).fetchall()
                expired = 0
                for (stored_at,) in stamps:
                    if stored_at >= cutoff:
                        break
                    expired += 1
                n = max(n, expired)
            if n:
                deleted = self._delete_oldest(n, count, self.state.last_id)
            db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        count -= deleted
        self.state = attrs.evolve(self.state, count=count)
        vacuumed = 0
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        if free > FREE_PAGES_KEPT:
            # executescript steps the pragma to the end; execute() would
            # free a single page (one sqlite3_step).
            db.executescript(
                f"PRAGMA incremental_vacuum({min(free - FREE_PAGES_KEPT, VACUUM_CHUNK)});"
            )
            # In WAL mode the file shrinks when the vacuum is checkpointed.
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            left = db.execute("PRAGMA freelist_count").fetchone()[0]
            vacuumed = free - left
            free = left
        more = (
            deleted == chunk
            or (deleted > 0 and count > history_size)
            # another vacuum step only if this one made progress
            or (vacuumed > 0 and free > FREE_PAGES_KEPT)
        )
        return Maintained(deleted=deleted, vacuumed=vacuumed, count=count, more=more)

    def probe(self, size: int = 1024) -> None:
        """Commit a write as a publish would, leaving nothing behind.

        A row of ``size`` bytes goes into ``updates`` (with a negative
        ``seq``, which neither takes a position nor shows in history) and
        out again, and the commit writes the WAL: this fails when the file
        cannot take such an update now (no room, read-only, I/O error,
        corruption).
        """
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO updates (seq, id, topics, data, private, type, retry, stored_at) "
                "VALUES (-1, '', '[]', ?, 0, NULL, NULL, 0)",
                ("x" * size,),
            )
            db.execute("DELETE FROM updates WHERE seq = -1")
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', 'ok')")
            db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    # -- reader threads -----------------------------------------------------------

    def open_reader(self) -> sqlite3.Connection:
        db = self._connect()
        db.execute("PRAGMA query_only = 1")
        return db

    @staticmethod
    def read(db: sqlite3.Connection, last_event_id: str, cutoff: float | None) -> Found:
        """Rows after ``last_event_id`` (all for ``earliest``) in one snapshot.

        A reused id resolves to its earliest occurrence still in history.
        Rows older than ``cutoff`` (history_max_age) count as gone even
        before maintenance deleted them.
        """
        age = "" if cutoff is None else " AND stored_at >= :cutoff"
        params = {"id": last_event_id, "cutoff": cutoff}
        db.execute("BEGIN")  # one snapshot for up_to and the rows
        try:
            up_to = db.execute("SELECT MAX(seq) FROM updates").fetchone()[0]
            if last_event_id == "earliest":
                found, after = True, None
            else:
                after = db.execute(
                    "SELECT MIN(seq) FROM updates WHERE id = :id" + age, params
                ).fetchone()[0]
                found = after is not None
            if not found:
                rows: list[tuple[Any, ...]] = []
            elif after is None:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM updates WHERE 1{age} ORDER BY seq", params
                ).fetchall()
            else:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM updates WHERE seq > :after{age} ORDER BY seq",
                    {**params, "after": after},
                ).fetchall()
        finally:
            db.execute("COMMIT")
        return Found(found=found, updates=tuple(_update(r) for r in rows), up_to=up_to)

    def close(self) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None:
            try:
                writer.close()
            except sqlite3.Error:
                pass
