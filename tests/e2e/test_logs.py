"""``--log-format json`` on the real hub: one JSON object per line, never a token.

The token is sent the three ways a client can send it (Authorization
header, ``authorization`` query parameter, cookie), on publishes and on
subscriptions that open and close; then every line of the process's output
must parse as JSON and none may contain the token or its signature.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import httpx
import pytest

from ._support import DEV_SECRET, draft07_token, free_port

pytestmark = pytest.mark.e2e

TOPIC = "https://example.com/logs"


def test_json_lines_with_access_and_stream_events_and_no_token(start_hub: Any) -> None:
    port = free_port()
    hub = start_hub("--dev", "--transport", "memory://", "--log-format", "json",
                    "--publish-origins", f"http://127.0.0.1:{port}", port=port)
    token = draft07_token(publish=["*"], subscribe=["*"], key=DEV_SECRET)
    signature = token.rsplit(".", 1)[1]
    with httpx.Client(timeout=httpx.Timeout(5, read=10)) as client:
        assert client.post(hub.url, data={"topic": TOPIC, "data": "header"},
                           headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.post(hub.url, params={"authorization": token},
                           data={"topic": TOPIC, "data": "query"}).status_code == 200
        assert client.post(hub.url, data={"topic": TOPIC, "data": "cookie"},
                           headers={"Cookie": f"mercureAuthorization={token}",
                                    "Origin": hub.base_url}).status_code == 200
        # A refused token is logged as refused, still without the token.
        assert client.post(hub.url, data={"topic": TOPIC},
                           headers={"Authorization": f"Bearer {token}x"}).status_code == 401
        for how in ("header", "query", "cookie"):
            kwargs: dict[str, Any] = {"params": {"topic": TOPIC}}
            if how == "header":
                kwargs["headers"] = {"Authorization": f"Bearer {token}"}
            elif how == "query":
                kwargs["params"]["authorization"] = token
            else:
                kwargs["headers"] = {"Cookie": f"mercureAuthorization={token}"}
            with client.stream("GET", hub.url, **kwargs) as stream:
                assert stream.status_code == 200
                lines = stream.iter_lines()  # kept: closing it closes the stream
                next(lines)
    deadline = time.monotonic() + 10  # the hub sees the three clients leave
    while hub.log().count("closed after") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.proc is not None
    hub.proc.send_signal(signal.SIGTERM)
    assert hub.proc.wait(timeout=15) == 0

    lines = [l for l in hub.log().splitlines() if l and not l.startswith("$ ")]
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    text = "\n".join(lines)
    assert token not in text and signature not in text
    assert all({"time", "level", "namespace", "message"} <= e.keys() for e in events)

    access = [e for e in events if e["namespace"] == "mercure.access"]
    publishes = [e for e in access if e["method"] == "POST"]
    assert [e["status"] for e in publishes] == [200, 200, 200, 401]
    assert all(isinstance(e["duration"], float) for e in publishes)
    assert "authorization=REDACTED" in publishes[1]["uri"]
    streams = [e for e in events if e["namespace"] == "mercure.stream"]
    opened = [e for e in streams if "opened" in e["message"]]
    closed = [e for e in streams if "closed" in e["message"]]
    assert len(opened) == 3 and len(closed) == 3
    assert all(e["matchers"] == [TOPIC] for e in opened)
    assert all(e["reason"] == "client disconnected" and e["duration"] >= 0 for e in closed)
