"""The standalone ``twistd websub-bridge``, its SSE link to the Mercure hub cut and restored.

Real processes on loopback: ``twistd mercure`` (hub A, the SQLite history),
a TCP proxy of this test's own (``_tcp_proxy.TcpProxy``) in front of it, and
``twistd websub-bridge`` pointed at the *proxy* as its Mercure hub, offering
a topic as a WebSub hub (``[websub.hub]``).  Updates are published to A
directly while the proxy is cut for a few seconds: the bridge reconnects
(backoff capped by ``[websub.mercure] reconnect_max_seconds``) with
``Last-Event-ID`` and A's history replays what it missed.

* A WebSub subscriber (a threaded ``http.server`` here) receives every
  update exactly once, each signed with its secret, and the bridge's
  stream was reopened from its last update (``Last-Event-ID``).
* With one delivery at a time per callback host (``concurrency_per_host =
  1``), the burst replayed after a cut arrives in publication order.
* A second ``twistd mercure`` (hub B) whose in-process bridge *follows* the
  topic (it discovers the standalone bridge as the topic's hub from the
  ``Link`` headers of a page served here) republishes each delivery into B,
  where an httpx-sse subscriber sees every update published on A once,
  those published during the cut included.

The first and the last test check that nothing is lost or doubled, not the
order: the hub role sends up to ``concurrency_per_host`` (4) deliveries to
a host at once, so two may legitimately swap on the way; the order is the
second test's subject.

Every wait is bounded; ``Callback`` and ``TopicPage`` are also used by
``test_websub_cluster.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from ._support import HUB_PATH, KEY_FLAGS, SECRET, HubProcess, draft07_token, free_port, start_websub_bridge, until
from ._tcp_proxy import TcpProxy
from .conftest import StartHub
from .test_sse_client import Stream, client, subscribe_url

pytestmark = pytest.mark.e2e

WAIT = 20.0
PUB = draft07_token(publish=["*"])
#: The bridge subscribes to A with a token granting no subscribe topic:
#: public updates only (upstream.py refuses any other).
BRIDGE_SUBSCRIBER = draft07_token(subscribe=[])
#: The longest backoff between two attempts to reopen the cut stream.
RECONNECT_MAX = 2
#: How long the proxy stays cut.
CUT_SECONDS = 3.0


# -- what the tests serve: a subscriber's callback, a topic's page ---------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # a burst of connections is never refused


@attrs.frozen
class Received:
    """One content distribution POSTed to the callback."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def signed_with(self, secret: str) -> bool:
        header = self.headers.get("x-hub-signature", "")
        method, _, given = header.partition("=")
        if method != "sha256":
            return False
        expected = hmac.new(secret.encode("utf-8"), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, given)

    def json(self) -> Any:
        return json.loads(self.body)


class Callback:
    """A WebSub subscriber's callback on a loopback port, in a thread.

    GET echoes ``hub.challenge`` (and records the verification); POST
    records the body and headers and answers 204.  HTTP/1.1 with
    persistent connections, as a production subscriber's server (an
    HTTP/1.0 ``http.server`` closes every connection without saying
    ``Connection: close``, which the bridge's pool does not expect).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.verifications: list[dict[str, str]] = []
        self._received: list[Received] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                challenge = query.get("hub.challenge")
                if challenge is None or query.get("hub.mode") not in ("subscribe", "unsubscribe"):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with owner._lock:
                    owner.verifications.append(query)
                body = challenge.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                received = Received(
                    path=urllib.parse.urlsplit(self.path).path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                with owner._lock:
                    owner._received.append(received)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()

    def url(self, path: str = "/callback/1") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def verified(self, topic: str) -> bool:
        with self._lock:
            return any(v.get("hub.mode") == "subscribe" and v.get("hub.topic") == topic
                       for v in self.verifications)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2)


class TopicPage:
    """A topic's page: GET and HEAD answer the ``Link`` headers naming its
    WebSub hub (``rel="hub"``) and itself (``rel="self"``)."""

    def __init__(self, hub_url: str | None = None) -> None:
        self.hub_url = hub_url
        self.requests: list[tuple[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, with_body: bool) -> None:
                owner.requests.append((self.command, self.path))
                url = f"http://127.0.0.1:{owner.port}{self.path}"
                body = f"<!doctype html><title>{self.path}</title>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                if owner.hub_url is not None:
                    self.send_header("Link", f'<{owner.hub_url}>; rel="hub"')
                self.send_header("Link", f'<{url}>; rel="self"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer(True)

            def do_HEAD(self) -> None:
                self._answer(False)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2)


@pytest.fixture
def callback() -> Iterator[Callback]:
    server = Callback()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def page() -> Iterator[TopicPage]:
    server = TopicPage()
    try:
        yield server
    finally:
        server.close()


# -- helpers ---------------------------------------------------------------------------


def publish(hub: HubProcess, topic: str, data: str, **fields: str) -> str:
    response = httpx.post(
        hub.url, data={"topic": topic, "data": data, **fields},
        headers={"Authorization": f"Bearer {PUB}"}, timeout=5,
    )
    assert response.status_code == 200, (response.status_code, response.text)
    return response.text


def subscribe(hub_endpoint: str, topic: str, callback_url: str, secret: str | None = None) -> None:
    form = {"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": callback_url}
    if secret is not None:
        form["hub.secret"] = secret
    response = httpx.post(hub_endpoint, data=form, timeout=5)
    assert response.status_code == 202, (response.status_code, response.text)


def wait_verified(process: HubProcess, topic: str) -> None:
    """The hub role records the subscription a moment after the callback
    answered: its log line is the sign it is stored."""
    until(lambda: f"subscribe of {topic} for" in process.log()
          and re.search(rf"subscribe of {re.escape(topic)} for \S+ verified", process.log()),
          f"the verified subscription to {topic} in the log")


def bridge_config(tmp_path: Path, mercure_url: str, selectors: list[str], hub_settings: str = "") -> Path:
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'publisher_jwt_key = "{SECRET}"\n'
        "[websub.mercure]\n"
        f'url = "{mercure_url}"\n'
        f"reconnect_max_seconds = {RECONNECT_MAX}\n"
        "[websub.hub]\n"
        f"topics = {json.dumps(selectors)}\n"
        + hub_settings
    )
    return config


def start_bridge(request: pytest.FixtureRequest, tmp_path: Path, mercure_base: str,
                 selectors: list[str], hub_settings: str = "") -> tuple[HubProcess, str]:
    """The standalone bridge, its Mercure hub at ``mercure_base`` (the proxy's
    base URL); (process, public URL)."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    config = bridge_config(tmp_path, mercure_base + HUB_PATH, selectors, hub_settings)
    bridge = start_websub_bridge(
        request, tmp_path,
        "--config", str(config), "--websub-public-url", public,
        "--websub-allow-network", "127.0.0.0/8", "--data-dir", str(tmp_path / "bridge-data"),
        port=port,
        env={"WEBSUB_BRIDGE_PUBLISHER_TOKEN": PUB, "WEBSUB_BRIDGE_SUBSCRIBER_TOKEN": BRIDGE_SUBSCRIBER},
    )
    return bridge, public


@pytest.fixture
def proxies() -> Iterator[Callable[[int], TcpProxy]]:
    made: list[TcpProxy] = []

    def make(port: int) -> TcpProxy:
        proxy = TcpProxy("127.0.0.1", port)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


def stream_openings(bridge: HubProcess, topic: str) -> list[str]:
    """The cursors of the bridge's openings of ``topic``'s stream, in order."""
    return re.findall(rf"websub watch of {re.escape(topic)}: stream open on \S+ from (\S+)", bridge.log())


def wait_until_flowing(hub: HubProcess, topic: str, callback: Callback) -> list[str]:
    """Publish probes to ``hub`` until one reaches ``callback``: the bridge's
    stream is then open (a probe published before it opened is never
    replayed, the first watch starts live).  Returns the probes' ids."""
    probes: list[str] = []

    def arrived() -> bool:
        if any("probe" in r.json() for r in callback.received):
            return True
        probes.append(publish(hub, topic, json.dumps({"probe": len(probes)})))
        return False

    until(arrived, "a probe update through the bridge", interval=0.5)
    time.sleep(1.0)  # the last probes may still be on their way
    return probes


def numbered(callback: Callback) -> list[Received]:
    return [r for r in callback.received if "n" in r.json()]


def publish_across_a_cut(proxy: TcpProxy, publish_one: Callable[[int], str]) -> dict[int, str]:
    """1-5, cut (every open connection closed, new ones refused), 6-15,
    the rest of ``CUT_SECONDS``, restore, 16-20; returns n -> update id."""
    published: dict[int, str] = {}
    for n in range(1, 6):
        published[n] = publish_one(n)
    assert proxy.cut() >= 1, "the bridge's stream to A did not go through the proxy"
    cut_at = time.monotonic()
    for n in range(6, 16):
        published[n] = publish_one(n)  # to A directly
    time.sleep(max(0.0, CUT_SECONDS - (time.monotonic() - cut_at)))
    assert proxy.refused >= 1, "the bridge did not try to reconnect during the cut"
    proxy.restore()
    for n in range(16, 21):
        published[n] = publish_one(n)
    return published


# -- the tests -----------------------------------------------------------------------


def test_a_standalone_bridge_cut_from_its_hub_and_restored_loses_nothing(
    start_hub: StartHub, request: pytest.FixtureRequest, tmp_path: Path,
    callback: Callback, proxies: Callable[[int], TcpProxy],
) -> None:
    topic = "https://example.com/books/1"
    secret = "a-secret-of-this-subscriber-only"
    hub = start_hub(*KEY_FLAGS)  # the SQLite history: what the replay reads
    proxy = proxies(hub.port)
    bridge, public = start_bridge(request, tmp_path, proxy.base_url, ["https://example.com/books/{id}"])

    subscribe(public + "/websub/hub", topic, callback.url(), secret)
    until(lambda: callback.verified(topic), "the verification of intent")
    wait_verified(bridge, topic)
    probes = wait_until_flowing(hub, topic, callback)

    published = publish_across_a_cut(proxy, lambda n: publish(hub, topic, json.dumps({"n": n})))
    until(lambda: len(numbered(callback)) >= 20,
          lambda: f"20 deliveries, got {[r.json()['n'] for r in numbered(callback)]}", timeout=30)
    time.sleep(2.0)  # nothing more is coming: no duplicate
    deliveries = numbered(callback)
    # Each once.  Not asserted here: their order (the hub role sends up to
    # concurrency_per_host = 4 at once, so two may swap on the way: see
    # test_deliveries_to_one_subscriber_keep_the_publication_order).
    assert sorted(r.json()["n"] for r in deliveries) == list(range(1, 21)), [
        r.json()["n"] for r in deliveries
    ]
    for r in deliveries:
        assert r.path == "/callback/1"
        assert r.signed_with(secret), (r.json(), r.headers.get("x-hub-signature"))
        assert r.headers["link"] == f'<{public}/websub/hub>; rel="hub", <{topic}>; rel="self"'
        assert r.headers["content-type"] == "application/json"

    # The stream was reopened from where it stood (Last-Event-ID), not live.
    openings = stream_openings(bridge, topic)
    assert len(openings) >= 2, openings
    assert openings[0] == "None"
    assert all(cursor != "None" for cursor in openings[1:]), openings
    assert set(openings[1:]) <= set(published.values()) | set(probes), openings
    log = bridge.log()
    assert "updates may have been lost" not in log
    assert "Traceback" not in log
    assert secret not in log


def test_deliveries_to_one_subscriber_keep_the_publication_order(
    start_hub: StartHub, request: pytest.FixtureRequest, tmp_path: Path,
    callback: Callback, proxies: Callable[[int], TcpProxy],
) -> None:
    """With one request at a time per callback host (``concurrency_per_host
    = 1``: no two deliveries in flight to overtake each other), the burst
    replayed after a cut reaches the subscriber in the order Mercure
    published it."""
    topic = "https://example.com/books/1"
    hub = start_hub(*KEY_FLAGS)
    proxy = proxies(hub.port)
    bridge, public = start_bridge(request, tmp_path, proxy.base_url, ["https://example.com/books/{id}"],
                                  "concurrency_per_host = 1\n")
    subscribe(public + "/websub/hub", topic, callback.url())
    until(lambda: callback.verified(topic), "the verification of intent")
    wait_verified(bridge, topic)
    wait_until_flowing(hub, topic, callback)
    assert proxy.cut() >= 1
    for n in range(1, 11):
        publish(hub, topic, json.dumps({"n": n}))
    proxy.restore()  # the bridge's stream resumes: the ten come as one burst
    until(lambda: len(numbered(callback)) >= 10,
          lambda: f"10 deliveries, got {[r.json()['n'] for r in numbered(callback)]}", timeout=30)
    time.sleep(1.0)
    arrived = [r.json()["n"] for r in numbered(callback)]
    assert sorted(arrived) == list(range(1, 11)), arrived  # each once
    assert arrived == list(range(1, 11)), f"arrival order {arrived}"


def test_updates_cross_from_hub_to_hub_through_the_bridge_across_a_cut(
    start_hub: StartHub, request: pytest.FixtureRequest, tmp_path: Path,
    page: TopicPage, proxies: Callable[[int], TcpProxy],
) -> None:
    topic = page.url("/books/1")
    hub_a = start_hub(*KEY_FLAGS)
    proxy = proxies(hub_a.port)
    bridge, bridge_public = start_bridge(request, tmp_path, proxy.base_url, [page.url("/books/{id}")])
    page.hub_url = bridge_public + "/websub/hub"

    # Hub B follows the topic: it discovers the bridge from the page's Links.
    b_port = free_port()
    b_public = f"http://127.0.0.1:{b_port}"
    b_config = tmp_path / "hub-b.toml"
    b_config.write_text(
        "[websub]\n"
        "http_secret = true\n"  # B sends a secret: the bridge signs, B checks
        "[[websub.follow]]\n"
        f'topic = "{topic}"\n'
        'mode = "document"\n'
    )
    hub_b = start_hub(
        *KEY_FLAGS, "--config", str(b_config),
        "--websub-public-url", b_public, "--websub-allow-network", "127.0.0.0/8", port=b_port,
    )
    api = httpx.Client(base_url=b_public, headers={"Authorization": f"Bearer {PUB}"}, timeout=5)
    try:
        def active() -> list[dict[str, Any]]:
            response = api.get("/websub/follows")
            assert response.status_code == 200, response.text
            return [f for f in response.json()["follows"] if f["state"] == "active"]

        (follow,) = until(active, "B's follow to be active")
        assert follow["hub"] == bridge_public + "/websub/hub"
        assert follow["mercure_topic"] == topic
    finally:
        api.close()
    wait_verified(bridge, topic)

    async def scenario() -> None:
        async with client() as http:
            token = draft07_token(subscribe=["*"])
            async with Stream(http, subscribe_url(hub_b.url, ("topic", topic)),
                              {"Authorization": f"Bearer {token}"}) as on_b:
                def datas() -> list[Any]:
                    return [json.loads(e.data) for e in on_b.events if e.data]

                def numbers() -> list[int]:
                    return [d["n"] for d in datas() if "n" in d]

                # A probe through A -> bridge -> B: the bridge's stream is open.
                deadline = time.monotonic() + WAIT
                probes = 0
                while not any("probe" in d for d in datas()):
                    assert time.monotonic() < deadline, "no probe reached B through the bridge"
                    await asyncio.to_thread(publish, hub_a, topic, json.dumps({"probe": probes}))
                    probes += 1
                    await asyncio.sleep(0.5)
                await asyncio.sleep(1.0)  # the last probes may still come

                await asyncio.to_thread(
                    publish_across_a_cut, proxy,
                    lambda n: publish(hub_a, topic, json.dumps({"n": n})),
                )
                deadline = time.monotonic() + 30
                while len(numbers()) < 20:
                    assert not on_b.ended, f"B's stream ended after {numbers()}"
                    assert time.monotonic() < deadline, f"20 updates on B, got {numbers()}"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(2.0)  # nothing more is coming: no duplicate
                # Each once (the order: see the test above).
                assert sorted(numbers()) == list(range(1, 21)), numbers()
                ids = [e.id for e in on_b.events]
                assert len(set(ids)) == len(ids)  # B published each delivery once

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert len(stream_openings(bridge, topic)) >= 2
    for process in (bridge, hub_b):
        assert "Traceback" not in process.log()
    assert "updates may have been lost" not in bridge.log()
    assert "failed its signature check" not in hub_b.log()
