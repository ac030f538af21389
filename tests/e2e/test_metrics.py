"""The real hub's /metrics, /healthz and /readyz, on the main listener and on --metrics-listen."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ._support import KEY_FLAGS, draft07_token, free_port

pytestmark = pytest.mark.e2e

TOPIC = "https://example.com/metrics"


def values(text: str) -> dict[str, float]:
    return {
        s.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}" if s.labels else ""): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def test_metrics_listener_apart_from_the_public_one(start_hub: Any) -> None:
    metrics_port = free_port()
    # No --dev: it turns on subscription events, which are updates too.
    hub = start_hub(*KEY_FLAGS, "--anonymous", "--transport", "memory://",
                    "--metrics-listen", f"tcp:{metrics_port}:interface=127.0.0.1")
    metrics = f"http://127.0.0.1:{metrics_port}"
    token = draft07_token(publish=["*"])
    with httpx.Client(timeout=httpx.Timeout(5, read=10)) as client:
        assert client.get(hub.base_url + "/metrics").status_code == 404
        assert client.get(hub.base_url + "/healthz").text == "ok\n"
        assert client.get(hub.base_url + "/readyz").text == "ready\n"
        assert client.get(metrics + "/readyz").status_code == 200
        with client.stream("GET", hub.url, params={"topic": TOPIC}) as stream:
            lines = stream.iter_lines()  # kept: closing the iterator closes the stream
            next(lines)
            assert client.post(hub.url, data={"topic": TOPIC, "data": "x"},
                               headers={"Authorization": f"Bearer {token}"}).status_code == 200
            assert client.post(hub.url, data={"topic": TOPIC}).status_code == 401
            scrape = client.get(metrics + "/metrics")
            assert scrape.headers["content-type"].startswith("text/plain; version=")
            got = values(scrape.text)
    assert got["mercure_subscribers_connected"] == 1
    assert got["mercure_subscribers_total"] == 1
    assert got["mercure_updates_total"] == 1
    assert got["mercure_publish_requests_total{outcome=accepted}"] == 1
    assert got["mercure_publish_requests_total{outcome=unauthorized}"] == 1
    assert got["mercure_publish_duration_seconds_count"] == 2
    assert got["mercure_history_size"] == 1
    assert got["process_open_fds"] > 0
