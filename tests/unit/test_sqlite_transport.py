"""What only the SQLite transport promises: the file, its lock, its bounds.

The contract it shares with the other transports is in
test_transport_contract.py; here are group commit, restarts, the one-process
lock, disk errors, and a file that stays bounded under a long publish loop.
Real files in ``tmp_path``, a real reactor (pytest-twisted), real threads.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.task import Clock, deferLater

from mercure_twisted.config import ConfigError, HubConfig
from mercure_twisted.transports import TransportUnavailable
from mercure_twisted.transports._sqlite import (
    BATCH_BYTES,
    WRITER_SWITCH_INTERVAL,
    SQLiteTransport,
    parse_sqlite_url,
)
from mercure_twisted.transports._sqlite_store import (
    FREE_PAGES_KEPT,
    JOURNAL_SIZE_LIMIT,
    SCHEMA_VERSION,
)
from mercure_twisted.update import Update

from ._transport_backends import wait_until

KIB = "x" * 1024


class Opened:
    """Transports opened by one test, all stopped at its end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.transports: list[SQLiteTransport] = []
        self.dispatched: list[Update] = []

    def open(self, start: bool = True, **settings: Any) -> SQLiteTransport:
        transport = SQLiteTransport(str(self.path), reactor=reactor, **settings)
        self.transports.append(transport)
        if start:
            transport.start(self.dispatched.append)
        return transport


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Opened]:
    o = Opened(tmp_path / "data" / "mercure.db")
    yield o
    for transport in o.transports:
        pytest_twisted.blockon(transport.stop())


def update(id: str, data: str = "") -> Update:
    return Update(topics=("https://example.com/t",), id=id, data=data)


async def publish_many(transport: SQLiteTransport, count: int, prefix: str = "u",
                       data: str = "", at_once: int = 500) -> None:
    for start in range(0, count, at_once):
        await gatherResults([
            transport.publish(update(f"{prefix}{i}", data))
            for i in range(start, min(count, start + at_once))
        ])


def sizes(path: Path) -> tuple[int, int]:
    """Bytes of the database file and of its WAL, as the file system sees them."""
    wal = Path(str(path) + "-wal")
    return path.stat().st_size, (wal.stat().st_size if wal.exists() else 0)


# -- group commit ------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_publishes_arriving_during_a_commit_share_the_next_one(opened: Opened) -> None:
    transport = opened.open()
    # The first 100 are called in one reactor turn: they share the commit
    # that starts at its end.  The next 100 arrive while it runs and go
    # together into the second.
    first = gatherResults([transport.publish(update(f"u{i}")) for i in range(100)])
    await deferLater(reactor, 0, lambda: None)
    assert transport.commits == 0
    second = gatherResults([transport.publish(update(f"u{i}")) for i in range(100, 200)])
    await gatherResults([first, second])
    assert transport.commits == 2
    assert [u.id for u in opened.dispatched] == [f"u{i}" for i in range(200)]


@pytest_twisted.ensureDeferred
async def test_a_group_commit_holds_at_most_batch_limit_updates(opened: Opened) -> None:
    transport = opened.open(batch_limit=50)
    await gatherResults([transport.publish(update(f"u{i}")) for i in range(201)])
    assert transport.commits == 5  # 50 + 50 + 50 + 50 + 1
    assert len(opened.dispatched) == 201


@pytest_twisted.ensureDeferred
async def test_a_group_commit_holds_about_batch_bytes_of_data(opened: Opened) -> None:
    transport = opened.open()
    big = "z" * (BATCH_BYTES // 2)
    await gatherResults([transport.publish(update(f"big{i}", big)) for i in range(7)])
    assert transport.commits == 4  # 2 + 2 + 2 (each reaching BATCH_BYTES) + 1
    assert [u.id for u in opened.dispatched] == [f"big{i}" for i in range(7)]


# -- restarts -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_lower_history_size_after_restart_is_applied_in_chunks(opened: Opened) -> None:
    first = opened.open(history_size=100)
    await publish_many(first, 100)
    await first.stop()
    clock = Clock()
    second = opened.open(history_size=10, chunk=7, clock=clock)
    assert second.history_length() == 100  # nothing deleted at open
    clock.advance(1)  # the maintenance step, then its next chunks
    await wait_until(lambda: second.history_length() == 10, "history trimmed to 10")
    history = await second.history("earliest")
    assert [u.id for u in history.updates] == [f"u{i}" for i in range(90, 100)]


@pytest_twisted.ensureDeferred
async def test_positions_are_never_reused_even_after_history_emptied(opened: Opened) -> None:
    first = opened.open(history_size=0)
    a = await first.publish(update("a"))
    await first.stop()
    second = opened.open(history_size=0)
    b = await second.publish(update("b"))
    assert b.position > a.position
    assert second.last_event_id() == "b"


# -- one process per file ----------------------------------------------------------------


def test_a_second_process_is_refused_with_one_line(opened: Opened) -> None:
    opened.open(start=False)
    script = (
        "import sys\n"
        "from twisted.internet import reactor\n"
        "from mercure_twisted.config import ConfigError\n"
        "from mercure_twisted.transports._sqlite import SQLiteTransport\n"
        "try:\n"
        "    SQLiteTransport(sys.argv[1], reactor=reactor)\n"
        "except ConfigError as e:\n"
        "    print(e)\n"
        "    sys.exit(3)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(opened.path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert result.stdout == (
        f"sqlite transport: {opened.path} is in use by another hub process (pid {os.getpid()}): "
        "one process per SQLite file (use redis:// for several)\n"
    )


@pytest_twisted.ensureDeferred
async def test_the_lock_is_released_on_stop(opened: Opened) -> None:
    first = opened.open()
    with pytest.raises(ConfigError, match="in use by another hub process"):
        opened.open()
    await first.stop()
    second = opened.open()
    await second.publish(update("after"))


# -- unusable files ------------------------------------------------------------------------


def test_a_folder_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.db").mkdir()
    with pytest.raises(ConfigError, match=r"x\.db is a folder, not a file"):
        SQLiteTransport(str(tmp_path / "x.db"), reactor=reactor)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.db").write_bytes(b"certainly not SQLite " * 100)
    with pytest.raises(ConfigError, match="cannot use .* as the SQLite history: file is not a database"):
        SQLiteTransport(str(tmp_path / "x.db"), reactor=reactor)


@pytest_twisted.ensureDeferred
async def test_a_corrupted_file_is_refused_at_start(opened: Opened) -> None:
    first = opened.open()
    await publish_many(first, 300, data=KIB)
    await first.stop()
    with open(opened.path, "r+b") as f:  # every page but the header page
        size = f.seek(0, os.SEEK_END)
        for page in range(1, size // 4096):
            f.seek(page * 4096)
            f.write(b"\xa5" * 4096)
    with pytest.raises(ConfigError, match="database disk image is malformed"):
        opened.open()


def test_a_folder_that_cannot_be_created_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("")
    with pytest.raises(ConfigError, match="cannot create the folder"):
        SQLiteTransport(str(tmp_path / "plain-file" / "x.db"), reactor=reactor)


def test_another_programs_sqlite_file_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "x.db") as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(ConfigError, match="SQLite file of something else"):
        SQLiteTransport(str(tmp_path / "x.db"), reactor=reactor)


def stopped(transport: SQLiteTransport) -> None:
    """Stop a transport that never started: closing its file is immediate."""
    d = transport.stop()
    assert d.called


def test_a_newer_schema_is_refused(opened: Opened) -> None:
    stopped(opened.open(start=False))
    with sqlite3.connect(opened.path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigError, match=f"has schema {SCHEMA_VERSION + 1}, newer than"):
        opened.open(start=False)


def test_schema_version_and_pragmas_of_a_new_file(opened: Opened) -> None:
    opened.open(start=False)
    with sqlite3.connect(opened.path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL


# -- disk errors ------------------------------------------------------------------------------


async def fill_the_file(transport: SQLiteTransport) -> None:
    """Cap the file at its current size: SQLite's own "database or disk is
    full" (SQLITE_FULL), the error a full disk gives, from then on."""

    def cap() -> None:
        db = transport._store._writer
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")

    await transport._on_writer(cap)


@pytest_twisted.ensureDeferred
async def test_a_full_disk_fails_the_publish_and_the_hub_keeps_serving(opened: Opened) -> None:
    transport = opened.open(history_size=3)
    await publish_many(transport, 3, data=KIB)
    await fill_the_file(transport)
    with pytest.raises(TransportUnavailable, match="database or disk is full"):
        await transport.publish(update("too big", "y" * 200_000))
    assert transport.last_event_id() == "u2"
    assert [u.id for u in (await transport.history("earliest")).updates] == ["u0", "u1", "u2"]
    # Retention makes room: an update of the usual size is stored again.
    stored = await transport.publish(update("fits", KIB))
    assert stored.position is not None
    assert [u.id for u in opened.dispatched] == ["u0", "u1", "u2", "fits"]


@pytest_twisted.ensureDeferred
async def test_ping_fails_while_nothing_can_be_written(opened: Opened) -> None:
    transport = opened.open()
    await publish_many(transport, 3, data=KIB)
    await fill_the_file(transport)
    # Fill the last free pages, then nothing fits, not even the probe.
    for i in range(100):
        try:
            await transport.publish(update(f"fill{i}", KIB))
        except TransportUnavailable:
            break
    else:
        raise AssertionError("the capped file never filled up")
    with pytest.raises(TransportUnavailable, match="database or disk is full"):
        await transport.ping()


@pytest_twisted.ensureDeferred
async def test_stop_lets_running_replays_finish(opened: Opened) -> None:
    transport = opened.open()
    await publish_many(transport, 300)
    replays = [transport.history("earliest") for _ in range(5)]
    await transport.stop()
    for replay in replays:
        assert len((await replay).updates) == 300


@pytest_twisted.ensureDeferred
async def test_a_stopped_transport_refuses_publishes(opened: Opened) -> None:
    transport = opened.open()
    await transport.stop()
    with pytest.raises(TransportUnavailable, match="stopped"):
        await transport.publish(update("late"))
    with pytest.raises(TransportUnavailable, match="stopped"):
        await transport.ping()


# -- a bounded file ----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_file_stays_bounded_under_a_long_publish_loop(opened: Opened) -> None:
    transport = opened.open(history_size=200)
    await publish_many(transport, 4_000, prefix="warm", data=KIB)
    warm_db, _ = sizes(opened.path)
    biggest_db = biggest_wal = 0
    for round in range(40):  # 20,000 updates of 1 KiB; history holds 200
        await publish_many(transport, 500, prefix=f"r{round}-", data=KIB)
        db, wal = sizes(opened.path)
        biggest_db, biggest_wal = max(biggest_db, db), max(biggest_wal, wal)
    assert transport.history_length() == 200
    # Freed pages are reused: the database does not follow the writes...
    assert biggest_db <= warm_db + 128 * 1024, (warm_db, biggest_db)
    assert biggest_db < 2 * 1024 * 1024
    # ...and the WAL is checkpointed and truncated back to its limit (plus
    # at most the commit that went past it).
    assert biggest_wal <= JOURNAL_SIZE_LIMIT + 1024 * 1024, biggest_wal
    with sqlite3.connect(opened.path) as db:
        assert db.execute("SELECT COUNT(*) FROM updates").fetchone()[0] == 200


@pytest_twisted.ensureDeferred
async def test_age_retention_deletes_and_returns_the_space(opened: Opened) -> None:
    clock = Clock()
    transport = opened.open(history_size=10_000, history_max_age=60, chunk=500, clock=clock)
    await publish_many(transport, 3_000, data=KIB)
    with sqlite3.connect(opened.path) as db:
        full_pages = db.execute("PRAGMA page_count").fetchone()[0]
    assert full_pages * 4096 > 3_000 * 1024
    clock.advance(61)  # every update is past history_max_age; maintenance runs
    await wait_until(lambda: transport.history_length() == 0, "expired updates deleted")
    await wait_until(lambda: not transport._maintaining, "maintenance done")
    with sqlite3.connect(opened.path) as db:
        assert db.execute("SELECT COUNT(*) FROM updates").fetchone()[0] == 0
        assert db.execute("PRAGMA freelist_count").fetchone()[0] <= FREE_PAGES_KEPT
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    assert pages <= FREE_PAGES_KEPT + 16, (full_pages, pages)
    # Checkpointed: the database file itself gave the space back.
    assert sizes(opened.path)[0] < full_pages * 4096 / 2


# -- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path", "synchronous"),
    [
        ("sqlite:///var/lib/mercure/m.db", "/var/lib/mercure/m.db", "NORMAL"),
        ("sqlite://m.db", "/data/m.db", "NORMAL"),
        ("sqlite://sub/m.db?synchronous=full", "/data/sub/m.db", "FULL"),
        ("sqlite:///a%20b.db?synchronous=NORMAL", "/a b.db", "NORMAL"),
    ],
)
def test_urls(url: str, path: str, synchronous: str) -> None:
    assert parse_sqlite_url(url, "/data") == (path, synchronous)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "names no file"),
        ("sqlite:///var/lib/", "names no file"),
        ("sqlite:///m.db?synchronous=off", "synchronous must be normal or full, not 'off'"),
        ("sqlite:///m.db?cache=shared", "unknown option 'cache'"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_sqlite_url(url, "/data")


def test_from_url_uses_the_hub_settings(tmp_path: Path) -> None:
    config = HubConfig(transport="sqlite://h.db", data_dir=str(tmp_path),
                       history_size=7, history_max_age=30)
    transport = SQLiteTransport.from_url(config.transport, config=config, reactor=reactor)
    try:
        assert transport.path == str(tmp_path / "h.db")
        assert (transport._history_size, transport._max_age) == (7, 30)
    finally:
        stopped(transport)


def test_a_group_commit_reports_the_seqs_its_rows_got(tmp_path: Path) -> None:
    """The batch is one executemany; its seqs are computed from the last
    row's, which holds only if AUTOINCREMENT hands out consecutive seqs
    inside the transaction, after deletions of the oldest rows too."""
    from mercure_twisted.transports._sqlite_store import SQLiteStore

    store = SQLiteStore(str(tmp_path / "h.db"), synchronous="NORMAL")
    try:
        reported: list[int] = []
        for round in range(6):
            batch = [
                Update(topics=("urn:t",), id=f"u{round}-{i}", data=str(i)) for i in range(round + 3)
            ]
            written = store.write(batch, 0.0, history_size=10, chunk=100)
            reported.extend(written.seqs)
            assert len(written.seqs) == len(batch)
        with sqlite3.connect(str(tmp_path / "h.db")) as db:
            rows = db.execute("SELECT seq, id FROM updates ORDER BY seq").fetchall()
        assert len(rows) == 10  # history_size kept
        by_id = {id: seq for seq, id in rows}
        tail = reported[-10:]
        assert [by_id[id] for id in [r[1] for r in rows]] == tail
        assert reported == sorted(set(reported))  # increasing, never reused
    finally:
        store.close()


@pytest_twisted.ensureDeferred
async def test_the_gil_switch_interval_is_short_while_running_and_restored(opened: Opened) -> None:
    before = sys.getswitchinterval()
    transport = opened.open()
    assert sys.getswitchinterval() == pytest.approx(min(before, WRITER_SWITCH_INTERVAL))
    await transport.publish(update("u"))
    await transport.stop()
    assert sys.getswitchinterval() == before


@pytest_twisted.ensureDeferred
async def test_a_commit_that_keeps_a_row_writes_no_meta_and_restarts_name_the_newest(
    opened: Opened,
) -> None:
    first = opened.open(history_size=2)
    await publish_many(first, 5)
    positions = [u.position for u in opened.dispatched]
    db = first._store._writer
    assert db.execute("SELECT value FROM meta WHERE key = 'last_id'").fetchone() is None
    await first.stop()
    second = opened.open(history_size=2)
    assert second.last_event_id() == "u4"
    stored = await second.publish(update("after"))
    assert stored.position == positions[-1] + 1  # seqs carry on, never reused
    assert [u.id for u in (await second.history("earliest")).updates] == ["u4", "after"]


@pytest_twisted.ensureDeferred
async def test_age_retention_emptying_the_history_keeps_the_last_id(opened: Opened) -> None:
    clock = Clock()
    first = opened.open(history_max_age=10.0, maintenance_interval=0, clock=clock)
    await publish_many(first, 3)
    clock.advance(60)
    result = await first._on_writer(first._store.maintain, clock.seconds() - 10.0, 1000, 1000)
    assert result.deleted == 3
    await first.stop()
    second = opened.open()
    assert second.last_event_id() == "u2"
    assert (await second.publish(update("next"))).position == 4


@pytest_twisted.ensureDeferred
async def test_a_commit_of_more_rows_than_one_insert_takes_keeps_every_position(
    opened: Opened,
) -> None:
    transport = opened.open(history_size=5000)
    await publish_many(transport, 1100, at_once=1100)
    assert transport.commits == 2  # 1000 (two INSERT statements), then 100
    assert [u.position for u in opened.dispatched] == list(range(1, 1101))
    replay = await transport.history("u499")
    assert [u.id for u in replay.updates][:2] == ["u500", "u501"]
