"""The bridge's SQLite store: schema versions, follows, callbacks, seen entries."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from websub_bridge.store import (
    MIGRATIONS,
    Callback,
    DuplicateFollow,
    InlineExecutor,
    Store,
    ThreadExecutor,
)
from ._outbound_kit import settle




@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(InlineExecutor(str(tmp_path / "websub.db")), max_seen_entries=3)
    settle(s.migrate())
    return s


def add(store: Store, topic: str = "http://pub.example/feed") -> Any:
    return settle(store.add_follow(
        topic=topic, mercure_topic=None, private=False, lease_seconds=None,
        mode="entries", origin="api", now=1.0,
    ))


def test_migration_sets_the_user_version_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "websub.db"
    store = Store(InlineExecutor(str(path)))
    assert settle(store.migrate()) == len(MIGRATIONS)
    assert settle(store.migrate()) == len(MIGRATIONS)
    settle(store.close())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_a_file_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "websub.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer"):
        settle(Store(InlineExecutor(str(path))).migrate())


def test_later_migrations_apply_on_top(tmp_path: Path) -> None:
    store = Store(InlineExecutor(str(tmp_path / "websub.db")))
    settle(store.migrate())
    part2 = [*MIGRATIONS, "CREATE TABLE later_table (id INTEGER PRIMARY KEY)"]
    assert settle(store.migrate(part2)) == len(part2)
    assert settle(store.run(lambda c: c.execute("SELECT COUNT(*) FROM later_table").fetchone()[0])) == 0


def test_a_topic_is_followed_once(store: Store) -> None:
    add(store)
    with pytest.raises(DuplicateFollow):
        add(store)


def test_deleting_a_follow_deletes_its_callbacks_and_seen_entries(store: Store) -> None:
    follow = add(store)
    settle(store.add_callback(Callback(token="t1", follow_id=follow.id, hub_url="h", topic="t", secret="s")))
    settle(store.mark_seen(follow.id, ["a"]))
    settle(store.delete_follow(follow.id))
    assert settle(store.callback("t1")) is None
    assert settle(store.seen_count(follow.id)) == 0


def test_activation_retires_the_previous_active_callback(store: Store) -> None:
    follow = add(store)
    settle(store.add_callback(Callback(token="old", follow_id=follow.id, hub_url="h", topic="t", status="active")))
    settle(store.add_callback(Callback(token="new", follow_id=follow.id, hub_url="h", topic="t")))
    (retired,) = settle(store.activate("new", 500.0, 100.0))
    assert (retired.token, retired.mode, retired.status) == ("old", "unsubscribe", "pending")
    assert settle(store.callback("new")).status == "active"
    updated = settle(store.follow(follow.id))
    assert (updated.state, updated.lease_expires) == ("active", 500.0)


def test_seen_entries_are_bounded_keeping_the_newest(store: Store) -> None:
    follow = add(store)
    settle(store.mark_seen(follow.id, ["1", "2", "3"]))
    settle(store.mark_seen(follow.id, ["4"]))
    assert settle(store.seen_count(follow.id)) == 3
    assert settle(store.unseen(follow.id, ["1", "2", "4", "5", "5"])) == ["1", "5"]


def test_secrets_and_tokens_stay_out_of_reprs(store: Store) -> None:
    callback = Callback(token="tok-123", follow_id=1, hub_url="h", topic="t", secret="sec-456")
    assert "tok-123" not in repr(callback) and "sec-456" not in repr(callback)


def test_a_failed_interaction_rolls_back(store: Store) -> None:
    def half(c: sqlite3.Connection) -> None:
        c.execute(
            "INSERT INTO follows (topic, created_at) VALUES ('http://x.example/', 0)"
        )
        raise ValueError("boom")

    with pytest.raises(ValueError):
        settle(store.run(half))
    assert settle(store.follows()) == []


@pytest_twisted.ensureDeferred
async def test_the_thread_executor_runs_off_the_reactor_thread(tmp_path: Path) -> None:
    import threading

    from twisted.internet import reactor

    store = Store(ThreadExecutor(str(tmp_path / "websub.db"), reactor))
    try:
        await store.migrate()
        main = threading.get_ident()
        where = await store.run(lambda c: threading.get_ident())
        assert where != main
        follow = await store.add_follow(
            topic="http://pub.example/feed", mercure_topic=None, private=True, lease_seconds=60,
            mode="document", origin="config", now=5.0,
        )
        assert (await store.follow(follow.id)) == follow
    finally:
        await store.close()
    with pytest.raises(RuntimeError):
        await store.follows()
