"""A subscriber that stops reading is cut off; the others keep receiving.

The hub runs with a small per-subscriber buffer (TOML ``max_subscriber_buffer``)
and a one-second ``dispatch_timeout``.  One raw socket subscribes and never
reads (with a small receive buffer, so the kernel fills quickly); a
well-behaved subscriber (httpx) counts what it gets while large updates are
published.  The stalled connection must be closed by the hub and the
healthy one must receive every update.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ._support import KEY_FLAGS, draft07_token

pytestmark = pytest.mark.e2e

# Well beyond what the kernel buffers for one loopback connection (a few MB),
# so that the hub itself sees the backpressure.
UPDATES = 200
SIZE = 64 * 1024


def test_stalled_subscriber_is_disconnected(start_hub: Any, tmp_path: Path) -> None:
    config = tmp_path / "slow.toml"
    config.write_text("max_subscriber_buffer = 262144\ndispatch_timeout = 1\nanonymous = true\n")
    hub = start_hub(*KEY_FLAGS, "--config", str(config))
    token = draft07_token(publish=["*"])

    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.settimeout(10)
    stalled.connect((hub.host, hub.port))
    stalled.sendall(b"GET /.well-known/mercure?topic=big HTTP/1.1\r\nHost: hub\r\n\r\n")
    assert stalled.recv(64).startswith(b"HTTP/1.1 200")

    received: list[str] = []
    ready = threading.Event()

    def healthy() -> None:
        with httpx.Client(timeout=httpx.Timeout(30, connect=5)) as http:
            with http.stream("GET", hub.url, params={"topic": "big"}) as response:
                ready.set()
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        received.append(line[4:])
                        if len(received) == UPDATES:
                            return

    reader = threading.Thread(target=healthy, daemon=True)
    reader.start()
    assert ready.wait(10)
    time.sleep(0.3)

    with httpx.Client(timeout=10) as http:
        for i in range(UPDATES):
            response = http.post(hub.url, data={"topic": "big", "id": f"u{i}", "data": "x" * SIZE},
                                 headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text

    reader.join(30)
    assert received == [f"u{i}" for i in range(UPDATES)], f"healthy subscriber got {len(received)}"

    # The stalled socket: drain what the hub managed to send; it must end
    # (reset: the hub aborts it, dropping what it had buffered) long before
    # everything that was published arrived.
    total = 0
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            chunk = stalled.recv(65536)
            if not chunk:
                break
            total += len(chunk)
        else:
            pytest.fail("the hub never closed the stalled subscriber")
    except ConnectionResetError:
        pass
    stalled.close()
    assert total < UPDATES * SIZE / 2, f"stalled subscriber still got {total} bytes"
    # The info-level stream line (debug events are not logged by default).
    assert re.search(r"closed after [0-9.]+ s: slow", hub.log()), hub.log()
