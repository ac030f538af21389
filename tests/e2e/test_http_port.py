"""HttpHubPort against the real ``twistd mercure`` (SQLite history), killed and restarted.

Publishes go through ``HttpHubPort.publish`` and arrive through
``HttpHubPort.watch``; a private update never arrives; while the hub is
down a publish is ``HubUnavailable``; after a SIGKILL and a restart on the
same file, the watch reconnects with ``Last-Event-ID`` and receives the
updates published while it was away, exactly once, in order, then live ones.

To make "published while it was away" certain, the handler holds the
update being handled across the kill: the watch reconnects only once its
queue is drained, so the two updates published after the restart can only
reach it through the hub's replay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from mercure_twisted.auth import TokenVerifier
from mercure_twisted.config import HubConfig, KeySpec
from websub_bridge.http_port import HttpHubPort, check_subscriber_token
from websub_bridge.port import HubUnavailable, ReceivedUpdate

from ..unit._transport_backends import wait_until
from ._support import KEY_FLAGS, SECRET, draft07_token

pytestmark = pytest.mark.e2e

TOPIC = "https://example.com/bridged"


@pytest_twisted.ensureDeferred
async def test_publish_watch_kill_restart_resume(start_hub: Any, tmp_path: Path) -> None:
    flags = (*KEY_FLAGS, "--anonymous", "--transport", f"sqlite://{tmp_path / 'hub.db'}")
    first = start_hub(*flags)
    subscriber = draft07_token(subscribe=[])
    check_subscriber_token(subscriber)
    port = HttpHubPort(
        first.url,
        publisher_token=draft07_token(publish=["*"]),
        subscriber_token=subscriber,
        verifier=TokenVerifier(HubConfig(keys=(KeySpec("publisher", key=SECRET),)), clock=reactor),
        reactor=reactor,
        timeout=5.0,
        backoff_start=0.05,
        backoff_cap=0.5,
    )
    received: list[ReceivedUpdate] = []
    gate: Deferred[None] = Deferred()
    holding: list[str] = []

    async def handler(update: ReceivedUpdate) -> None:
        if update.id == "u2":
            holding.append(update.id)
            await gate
        received.append(update)

    try:
        assert await port.publish([TOPIC], "before", id="u0") == "u0"
        watch = port.watch(TOPIC, "u0", handler)
        await port.publish([TOPIC], "one\ntwo", id="u1", type="add")
        await port.publish([TOPIC], "secret", id="p1", private=True)
        await port.publish([TOPIC, "urn:other"], "three", id="u2")
        await wait_until(lambda: holding == ["u2"], "u1, then u2 in the handler")
        assert received == [ReceivedUpdate("u1", (TOPIC,), "one\ntwo", "add")]

        first.kill()
        with pytest.raises(HubUnavailable, match="unreachable"):
            await port.publish([TOPIC], "lost", id="never")
        start_hub(*flags, port=first.port)  # the same address, the same file
        await port.publish([TOPIC], "four", id="u3")
        await port.publish([TOPIC], "five", id="u4")
        assert watch.connections == 1  # still draining: nothing reconnected yet
        gate.callback(None)

        await wait_until(lambda: [u.id for u in received] == ["u1", "u2", "u3", "u4"],
                         "u3 and u4 replayed after the restart")
        assert watch.connections >= 2 and watch.cursor == "u4"
        await port.publish([TOPIC], "live", id="u5")
        await wait_until(lambda: received[-1].id == "u5", "a live update")
        assert [(u.id, u.data) for u in received] == [
            ("u1", "one\ntwo"), ("u2", "three"), ("u3", "four"), ("u4", "five"), ("u5", "live"),
        ]
    finally:
        await port.close()
