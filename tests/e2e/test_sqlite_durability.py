"""The real ``twistd mercure`` on its SQLite history: killed, restarted, full.

* Publishes answered 200, then SIGKILL at once, then a restart on the same
  file: a client reconnecting with an old ``Last-Event-ID`` receives every
  acknowledged update exactly once, in order, then live ones.
* Retention under a long publish loop: the file stays bounded, and history
  holds exactly ``--history-size`` updates.
* A second hub on the same file stops at start with one line.
* A full disk (the hub's file size limit, ``RLIMIT_FSIZE``): publishes are
  answered 503, ``/readyz`` says so, subscribers stay connected; once there
  is room again, everything works without a restart.
"""

from __future__ import annotations

import asyncio
import resource
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import _support
from ._support import KEY_FLAGS
from .test_sse_client import PUB, Stream, client, publish, run, subscribe_url, until

pytestmark = pytest.mark.e2e

TOPIC = "https://example.com/durable"
KIB = "x" * 1024


def sqlite_flags(db: Path, *more: str) -> tuple[str, ...]:
    return (*KEY_FLAGS, "--anonymous", "--transport", f"sqlite://{db}", *more)


async def publish_batch(http: httpx.AsyncClient, url: str, ids: list[str],
                        data: str = "") -> list[str]:
    """Publish ``ids`` concurrently; the ids the hub acknowledged, as answered."""
    return list(await asyncio.gather(
        *(publish(http, url, PUB, TOPIC, data=data, id=i) for i in ids)
    ))


def test_acknowledged_updates_survive_sigkill(start_hub: Any, tmp_path: Path) -> None:
    db = tmp_path / "state" / "x.db"
    first = start_hub(*sqlite_flags(db))
    acknowledged: list[str] = []

    async def before_the_kill() -> None:
        async with client() as http:
            acknowledged.append(await publish(http, first.url, PUB, TOPIC, data="old", id="old"))
            for n in range(60):  # one by one: their order is the publish order
                acknowledged.append(
                    await publish(http, first.url, PUB, TOPIC, data=f"seq {n}", id=f"seq-{n}")
                )
            # Concurrent ones share group commits; answered in whatever order.
            acknowledged.extend(
                await publish_batch(http, first.url, [f"burst-{n}" for n in range(100)])
            )

    run(before_the_kill())
    first.kill()  # SIGKILL, right after the last 200: no shutdown, no flush
    assert first.proc is not None and first.proc.returncode == -signal.SIGKILL

    second = start_hub(*sqlite_flags(db))

    async def after_the_restart() -> None:
        async with client() as http:
            url = subscribe_url(second.url, ("topic", TOPIC))
            async with Stream(http, url, headers={"Last-Event-ID": "old"}) as stream:
                assert stream.response is not None
                assert stream.response.headers["last-event-id"] == "old"  # found
                events = await stream.wait_events(len(acknowledged) - 1)
                live = await publish(http, second.url, PUB, TOPIC, data="live", id="live")
                events = await stream.wait_events(len(acknowledged))
                received = [e.id for e in events]
                # Every acknowledged update after "old", exactly once...
                assert sorted(received[:-1]) == sorted(acknowledged[1:])
                assert len(set(received)) == len(received)
                # ...in publish order where there was one, then the live one.
                assert received[:60] == [f"seq-{n}" for n in range(60)]
                assert received[-1] == live
                assert [e.data for e in events[:2]] == ["seq 0", "seq 1"]
                await asyncio.sleep(0.2)
                assert len(stream.events) == len(acknowledged), "an update came twice"

    run(after_the_restart())


def test_sigkill_in_the_middle_of_a_burst_keeps_every_acknowledged_update(
    start_hub: Any, tmp_path: Path
) -> None:
    """Killed while commits are in flight: what was answered 200 is there
    after the restart, once; what was not answered may or may not be."""
    db = tmp_path / "x.db"
    first = start_hub(*sqlite_flags(db))
    attempted = [f"burst-{n}" for n in range(400)]
    acknowledged: list[str] = []

    async def burst() -> None:
        async with client() as http:
            await publish(http, first.url, PUB, TOPIC, id="old")

            async def one(i: str) -> None:
                try:
                    acknowledged.append(await publish(http, first.url, PUB, TOPIC, id=i))
                except (httpx.HTTPError, AssertionError):
                    pass  # the hub died before answering
                if len(acknowledged) == 150:
                    first.kill()

            await asyncio.gather(*(one(i) for i in attempted))

    run(burst())
    assert first.proc is not None and first.proc.returncode == -signal.SIGKILL
    assert 150 <= len(acknowledged) < len(attempted), "the kill came after the burst"
    second = start_hub(*sqlite_flags(db))

    async def replay() -> None:
        async with client() as http:
            url = subscribe_url(second.url, ("topic", TOPIC))
            async with Stream(http, url, headers={"Last-Event-ID": "old"}) as stream:
                await stream.wait_events(len(acknowledged))
                marker = await publish(http, second.url, PUB, TOPIC, id="marker")
                await until(lambda: any(e.id == marker for e in stream.events),
                            lambda: "the marker after the replay")
                received = [e.id for e in stream.events][:-1]
                assert len(received) == len(set(received)), "an update came twice"
                assert set(acknowledged) <= set(received)
                assert set(received) <= set(attempted)

    run(replay())


def test_retention_keeps_the_file_bounded(start_hub: Any, tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    hub = start_hub(*sqlite_flags(db, "--history-size", "50"))
    sizes: list[int] = []

    def on_disk() -> int:
        wal = Path(str(db) + "-wal")
        return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    async def scenario() -> None:
        async with client() as http:
            for round in range(30):  # 3,000 updates of 1 KiB, 100 at a time
                await publish_batch(http, hub.url, [f"r{round}-{n}" for n in range(100)], KIB)
                sizes.append(on_disk())
            url = subscribe_url(hub.url, ("topic", TOPIC))
            async with Stream(http, url, headers={"Last-Event-ID": "earliest"}) as stream:
                events = await stream.wait_events(50)
                await asyncio.sleep(0.2)
                assert len(stream.events) == 50
                # The newest 50, all from the last round of 100, each once.
                ids = [e.id for e in events]
                assert len(set(ids)) == 50
                assert set(ids) <= {f"r29-{n}" for n in range(100)}, ids

    run(scenario(), timeout=120)
    # The history holds 50 KiB; the WAL is capped at 4 MiB plus one commit;
    # the database reuses its pages: after the first third nothing grows.
    assert max(sizes) < 6 * 1024 * 1024, sizes
    assert max(sizes[10:]) <= max(sizes[:10]) + 512 * 1024, sizes


def test_a_second_hub_on_the_same_file_stops_at_start(start_hub: Any, tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    first = start_hub(*sqlite_flags(db))
    with pytest.raises(RuntimeError) as refused:
        start_hub(*sqlite_flags(db))
    assert "hub exited with 1 before listening" in str(refused.value)
    assert (
        f"{db} is in use by another hub process (pid {first.proc.pid}): "
        "one process per SQLite file" in str(refused.value)
    )
    assert first.alive


FILE_LIMIT = 3 * 1024 * 1024


def _limited_files() -> None:  # pragma: no cover - runs in the child
    """The hub process may not grow a file past FILE_LIMIT (a full disk).

    SIGXFSZ ignored, so that writing past the limit fails with EFBIG instead
    of killing the process; the setting survives exec.
    """
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, hard))


def test_a_full_disk_answers_503_and_recovers(start_hub: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    die_with_parent = _support._die_with_parent

    def preexec() -> None:  # pragma: no cover - runs in the child
        die_with_parent()
        _limited_files()

    monkeypatch.setattr(_support, "_die_with_parent", preexec)
    db = tmp_path / "x.db"
    hub = start_hub(*sqlite_flags(db, "--history-size", "100000"))
    monkeypatch.undo()
    assert hub.proc is not None

    async def scenario() -> None:
        async with client() as http:
            url = subscribe_url(hub.url, ("topic", TOPIC))
            async with Stream(http, url) as stream:
                refused = None
                for n in range(400):  # 4 MiB of updates cannot fit in 3 MiB files
                    response = await http.post(
                        hub.url,
                        content=f"topic={TOPIC}&id=fill-{n}&data={'y' * 16384}".encode(),
                        headers={"Authorization": f"Bearer {PUB}",
                                 "Content-Type": "application/x-www-form-urlencoded"},
                    )
                    if response.status_code != 200:
                        refused = response
                        break
                assert refused is not None, "the file limit was never reached"
                assert refused.status_code == 503, refused.text
                assert "Retry-After" in refused.headers
                stored = n
                ready = await http.get(hub.base_url + "/readyz")
                assert ready.status_code == 503
                assert (await http.get(hub.base_url + "/healthz")).status_code == 200
                await stream.wait_events(stored)
                assert not stream.ended  # subscribers keep their streams

                # Room again (as if an operator freed the disk): no restart.
                hard = resource.prlimit(hub.proc.pid, resource.RLIMIT_FSIZE)[1]
                resource.prlimit(hub.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
                assert (await http.get(hub.base_url + "/readyz")).status_code == 200
                again = await publish(http, hub.url, PUB, TOPIC, data="after", id="after")
                events = await stream.wait_events(stored + 1)
                assert events[-1].id == again
                assert [e.id for e in events] == [f"fill-{i}" for i in range(stored)] + ["after"]

    run(scenario(), timeout=120)
