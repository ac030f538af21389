"""SIGTERM on the real hub: streams end cleanly, the process exits 0 within the bound.

"Cleanly" is what a client can check: the chunked response ends with its
terminating chunk (httpx raises on a stream cut short), so an EventSource
reconnects instead of reporting an error.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from ._support import DEV_SECRET, draft07_token

pytestmark = pytest.mark.e2e

TOPIC = "https://example.com/shutdown"
#: How long the test lets the process take beyond its shutdown_timeout
#: (interpreter exit) before calling the bound broken.
GRACE = 5.0


def test_sigterm_ends_streams_cleanly_and_exits_0(start_hub: Any) -> None:
    hub = start_hub("--dev", "--transport", "memory://", "--shutdown-timeout", "5")
    ended: list[str] = []
    opened = threading.Event()

    def subscribe() -> None:
        try:
            with httpx.stream("GET", hub.url, params={"topic": TOPIC},
                              timeout=httpx.Timeout(5, read=30)) as stream:
                opened.set()
                for _ in stream.iter_lines():
                    pass
            ended.append("clean")
        except httpx.HTTPError as e:
            ended.append(f"error: {e!r}")
        finally:
            opened.set()

    readers = [threading.Thread(target=subscribe, daemon=True) for _ in range(3)]
    for reader in readers:
        reader.start()
    for reader in readers:
        assert opened.wait(10)
    deadline = time.monotonic() + 10
    while hub.log().count("opened: draft-07") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.log().count("opened: draft-07") == 3, hub.log()

    assert hub.proc is not None
    hub.proc.send_signal(signal.SIGTERM)
    assert hub.proc.wait(timeout=5 + GRACE) == 0
    for reader in readers:
        reader.join(10)
    assert ended == ["clean"] * 3
    log = hub.log()
    assert "closed after" in log and "hub shutting down" in log
    assert "reached: aborted" not in log  # nothing needed the bound


def test_a_client_that_stops_reading_is_aborted_at_the_bound(start_hub: Any) -> None:
    hub = start_hub(
        "--dev", "--transport", "memory://", "--shutdown-timeout", "1",
        "--dispatch-timeout", "0",  # never cut off for lag: only the shutdown bound applies
        "--max-body-size", str(1024 * 1024),
    )
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", hub.port))
    try:
        raw.sendall(
            f"GET /.well-known/mercure?topic={TOPIC} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        )
        token = draft07_token(publish=["*"], key=DEV_SECRET)
        with httpx.Client(timeout=10) as publisher:
            # Far more than the socket buffers hold: the hub's side backs up.
            for _ in range(12):
                response = publisher.post(
                    hub.url, data={"topic": TOPIC, "data": "x" * 500_000},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 200
        assert hub.proc is not None
        hub.proc.send_signal(signal.SIGTERM)
        assert hub.proc.wait(timeout=1 + GRACE) == 0
        assert "shutdown_timeout (1.0 s) reached: aborted 1 connection(s)" in hub.log()
    finally:
        raw.close()


def test_an_idle_keep_alive_tls_connection_does_not_hold_the_stop(
    start_hub: Any, tmp_path: Any
) -> None:
    """An idle client never answers the TLS close_notify (it is not reading):
    the hub must not wait for that answer until the bound."""
    from tests.certs import CertAuthority

    from ._support import free_port

    ca = CertAuthority(tmp_path)
    leaf = ca.leaf("hub")
    port = free_port()
    hub = start_hub(
        "--dev", "--transport", "memory://", "--shutdown-timeout", "10",
        "--listen", f"ssl:{port}:interface=127.0.0.1:privateKey={leaf.key}:certKey={leaf.cert}",
    )
    with httpx.Client(verify=str(ca.path), timeout=5) as idle:
        assert idle.get(f"https://127.0.0.1:{port}/healthz").status_code == 200
        assert hub.proc is not None
        hub.proc.send_signal(signal.SIGTERM)
        assert hub.proc.wait(timeout=10 + GRACE) == 0
    assert "reached: aborted" not in hub.log(), hub.log()
