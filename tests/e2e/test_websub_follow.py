"""The bridge follows a WebSub hub nobody here wrote (Flask-WebSub), end to end.

Three real processes on loopback: Flask-WebSub's hub and Atom publisher
(``websub_hub_app.py``, Celery eager: it verifies our intent inside our
subscription request, as synchronous hubs do), ``twistd mercure`` with the
bridge following the feed (``--websub-public-url``, loopback admitted with
``--websub-allow-network``), and a browser-style SSE subscriber (httpx-sse)
on the Mercure hub.  A publish on the WebSub side arrives as Mercure
updates, one per new entry, signed (``http_secret``, Flask-WebSub signs
with sha512) and checked; removing the follow unsubscribes at the hub.
A restart loses no subscription and publishes no entry twice, and the
README walk-through's own EventSource snippet, run in Debian's Chromium,
lists the entries as they arrive.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from ._support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEV_SECRET,
    KEY_FLAGS,
    _die_with_parent,
    draft07_token,
    free_port,
    require_executable,
    until,
)
from .conftest import StartHub

pytestmark = pytest.mark.e2e

WAIT = 20.0
APP = Path(__file__).with_name("websub_hub_app.py")


class FlaskHub:
    """Flask-WebSub's hub and publisher in a subprocess on a loopback port."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.database = tmp_path / "flask-hub.db"
        self.log_path = tmp_path / "flask-hub.log"
        self.base = f"http://127.0.0.1:{self.port}"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(APP), str(self.port), str(self.database)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=str(tmp_path), env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the Flask-WebSub hub exited:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        until(listening, "the Flask-WebSub hub to listen")

    @property
    def feed(self) -> str:
        return self.base + "/feed"

    def subscriptions(self) -> list[tuple[str, str, str | None]]:
        """(topic, callback, secret) of every subscription the hub holds."""
        with sqlite3.connect(self.database) as db:
            return [tuple(r) for r in db.execute("select topic_url, callback_url, secret from hub")]

    def add_entry(self, title: str) -> str:
        response = httpx.post(self.base + "/entries", data={"title": title}, timeout=5)
        assert response.status_code == 201
        return response.text

    def publish(self, topic: str | None = None) -> None:
        response = httpx.post(
            self.base + "/hub", data={"hub.mode": "publish", "hub.topic": topic or self.feed},
            timeout=15,
        )
        assert response.status_code == 202, response.text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def flask_hub(tmp_path: Path) -> Iterator[FlaskHub]:
    hub = FlaskHub(tmp_path)
    try:
        yield hub
    finally:
        hub.stop()


class Subscriber:
    """An SSE subscriber on the Mercure hub, read by a background thread."""

    def __init__(self, url: str, topic: str, token: str, last_event_id: str | None = None) -> None:
        self.events: list[ServerSentEvent] = []
        self._headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            self._headers["Last-Event-ID"] = last_event_id
        self.opened = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=None))
        self._url, self._topic = url, topic
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.opened.wait(WAIT), "the SSE stream did not open"

    def _read(self) -> None:
        try:
            with connect_sse(
                self._client, "GET", self._url, params={"topic": self._topic},
                headers=self._headers,
            ) as source:
                self.opened.set()
                for event in source.iter_sse():
                    if event.event != "mercure":  # never heartbeats
                        self.events.append(event)
        except (httpx.HTTPError, RuntimeError):
            pass

    def close(self) -> None:
        self._client.close()


def test_a_followed_feed_reaches_an_sse_subscriber_and_removal_unsubscribes(
    start_hub: StartHub, flask_hub: FlaskHub, tmp_path: Path
) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    config = tmp_path / "bridge.toml"
    config.write_text(
        "[websub]\n"
        "http_secret = true\n"
        "[[websub.follow]]\n"
        f'topic = "{flask_hub.feed}"\n'
        'mode = "entries"\n'
    )
    hub = start_hub(
        *KEY_FLAGS, "--config", str(config),
        "--websub-public-url", public, "--websub-allow-network", "127.0.0.0/8",
        port=port,
    )
    admin = draft07_token(publish=["*"])
    api = httpx.Client(base_url=public, headers={"Authorization": f"Bearer {admin}"}, timeout=5)

    def follows() -> list[dict[str, Any]]:
        response = api.get("/websub/follows")
        assert response.status_code == 200, response.text
        return list(response.json()["follows"])

    # Subscribed: Flask-WebSub verified our intent inside our request.
    (follow,) = until(lambda: [f for f in follows() if f["state"] == "active"], "an active follow")
    assert follow["hub"] == flask_hub.base + "/hub"
    assert follow["mercure_topic"] == flask_hub.feed  # the discovered rel=self
    ((topic, callback, secret),) = flask_hub.subscriptions()
    assert topic == flask_hub.feed
    assert callback.startswith(public + "/websub/callback/")
    assert secret  # http_secret = true: the deliveries are signed

    subscriber = Subscriber(hub.url, flask_hub.feed, draft07_token(subscribe=["*"]))
    try:
        first = flask_hub.add_entry("hello from WebSub")
        flask_hub.publish()
        until(lambda: len(subscriber.events) >= 1, "the first entry over SSE")
        second = flask_hub.add_entry("and another one")
        flask_hub.publish()
        until(lambda: len(subscriber.events) >= 2, "the second entry over SSE")
        assert [e.id for e in subscriber.events] == [first, second]  # each entry once
        assert "<title>hello from WebSub</title>" in subscriber.events[0].data
        assert "<title>and another one</title>" in subscriber.events[1].data
    finally:
        subscriber.close()

    # Removing the follow unsubscribes: the hub verifies, then forgets us.
    response = api.delete(f"/websub/follows/{follow['id']}")
    assert response.status_code == 202, response.text
    until(lambda: flask_hub.subscriptions() == [], "the hub to drop the subscription")
    until(lambda: api.get(f"/websub/follows/{follow['id']}").status_code == 404, "the follow to go")
    log = hub.log()
    assert "Traceback" not in log
    # The callback is a capability URL and the secret a key: never logged.
    assert "/websub/callback/REDACTED" in log
    assert callback.rsplit("/", 1)[1] not in log
    assert secret not in log


def start_bridge(start_hub: StartHub, tmp_path: Path, flask_hub: FlaskHub, port: int) -> Any:
    config = tmp_path / "bridge.toml"
    config.write_text(
        "[websub]\n"
        "http_secret = true\n"
        "[[websub.follow]]\n"
        f'topic = "{flask_hub.feed}"\n'
        'mode = "entries"\n'
    )
    return start_hub(
        *KEY_FLAGS, "--config", str(config),
        "--websub-public-url", f"http://127.0.0.1:{port}", "--websub-allow-network", "127.0.0.0/8",
        port=port,
    )


def test_a_restart_keeps_the_subscription_and_publishes_no_entry_twice(
    start_hub: StartHub, flask_hub: FlaskHub, tmp_path: Path
) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    hub = start_bridge(start_hub, tmp_path, flask_hub, port)
    api = httpx.Client(
        base_url=public, headers={"Authorization": f"Bearer {draft07_token(publish=['*'])}"}, timeout=5
    )
    until(lambda: [f for f in api.get("/websub/follows").json()["follows"] if f["state"] == "active"],
          "an active follow")
    first = flask_hub.add_entry("before the restart")
    subscriber = Subscriber(hub.url, flask_hub.feed, draft07_token(subscribe=["*"]))
    try:
        flask_hub.publish()
        until(lambda: len(subscriber.events) >= 1, "the first entry")
    finally:
        subscriber.close()
    (subscription,) = flask_hub.subscriptions()
    assert hub.terminate() == 0
    api.close()

    hub = start_bridge(start_hub, tmp_path, flask_hub, port)
    # The same subscription: nothing was asked again of the hub.
    assert flask_hub.subscriptions() == [subscription]
    # Replaying from the first entry: had it been re-published, it would be here.
    subscriber = Subscriber(hub.url, flask_hub.feed, draft07_token(subscribe=["*"]), last_event_id=first)
    try:
        second = flask_hub.add_entry("after the restart")
        flask_hub.publish()  # the feed holds both entries: only the new one is published
        until(lambda: len(subscriber.events) >= 1, "the entry published after the restart")
        assert [e.id for e in subscriber.events] == [second]
    finally:
        subscriber.close()


def test_a_document_follow_added_with_the_api_publishes_private_updates(
    start_hub: StartHub, flask_hub: FlaskHub, tmp_path: Path
) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    hub = start_hub(
        *KEY_FLAGS, "--websub-public-url", public, "--websub-allow-network", "127.0.0.0/8", port=port
    )
    target = "https://app.example/status"
    api = httpx.Client(
        base_url=public, headers={"Authorization": f"Bearer {draft07_token(publish=[target])}"}, timeout=5
    )
    response = api.post("/websub/follows", json={
        "topic": flask_hub.base + "/status", "mercure_topic": target, "private": True,
    })
    assert response.status_code == 201, response.text
    follow_id = response.json()["id"]
    until(lambda: api.get(f"/websub/follows/{follow_id}").json()["state"] == "active", "an active follow")
    (( _, _, secret),) = flask_hub.subscriptions()
    assert secret is None  # an http hub and no http_secret: no secret sent

    allowed = Subscriber(hub.url, target, draft07_token(subscribe=[target]))
    try:
        httpx.post(flask_hub.base + "/status", data={"text": "degraded"}, timeout=5)
        flask_hub.publish(flask_hub.base + "/status")
        until(lambda: allowed.events, "the private update")
        (event,) = allowed.events
        assert event.data == "degraded"
    finally:
        allowed.close()


def readme_page(hub_base: str, flask_base: str) -> bytes:
    """The README walk-through's EventSource snippet, pointed at this test's ports."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Follow a WebSub feed"):]
    start = section.index("```html\n") + len("```html\n")
    snippet = section[start:section.index("```", start)]
    snippet = snippet.replace("http://127.0.0.1:3000", hub_base).replace("http://127.0.0.1:5000", flask_base)
    return f"<!doctype html><html><head><meta charset='utf-8'></head><body>{snippet}</body></html>".encode()


def test_the_readme_walk_through_shows_entries_arriving_in_a_browser(
    start_hub: StartHub, flask_hub: FlaskHub, tmp_path: Path
) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    require_executable(CHROMIUM)
    from playwright.sync_api import sync_playwright

    port = free_port()
    hub_base = f"http://127.0.0.1:{port}"
    # The walk-through's command line.
    start_hub("--dev", "--websub-public-url", hub_base, "--websub-allow-network", "127.0.0.0/8", port=port)
    token = draft07_token(publish=[flask_hub.feed], key=DEV_SECRET)
    response = httpx.post(
        hub_base + "/websub/follows", json={"topic": flask_hub.feed, "mode": "entries"},
        headers={"Authorization": f"Bearer {token}"}, timeout=5,
    )
    assert response.status_code == 201, response.text
    until(
        lambda: httpx.get(hub_base + "/websub/follows", headers={"Authorization": f"Bearer {token}"},
                          timeout=5).json()["follows"][0]["state"] == "active",
        "an active follow",
    )

    body = readme_page(hub_base, flask_hub.base)

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page()
                page.set_default_timeout(WAIT * 1000)
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/", wait_until="load")
                # The snippet's EventSource (a global `source`) is open.
                page.wait_for_function("typeof source !== 'undefined' && source.readyState === 1")
                for title in ("Hello", "World"):
                    flask_hub.add_entry(title)
                    flask_hub.publish()
                page.wait_for_function("document.querySelectorAll('#entries li').length >= 2")
                assert page.eval_on_selector_all("#entries li", "items => items.map(i => i.textContent)") == [
                    "Hello", "World",
                ]
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()


def test_without_an_allowed_network_a_loopback_feed_is_refused_by_the_guard(
    start_hub: StartHub, flask_hub: FlaskHub
) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    start_hub(*KEY_FLAGS, "--websub-public-url", public, port=port)
    token = draft07_token(publish=["*"])
    api = httpx.Client(base_url=public, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    for topic in (flask_hub.feed, flask_hub.feed.replace("127.0.0.1", "localhost"),
                  flask_hub.feed.replace("127.0.0.1", "2130706433")):
        response = api.post("/websub/follows", json={"topic": topic})
        assert response.status_code == 201, response.text
    def failed() -> list[dict[str, Any]] | None:
        listed = api.get("/websub/follows").json()["follows"]
        return listed if all(f["last_error"] for f in listed) else None

    follows = until(failed, "every follow to fail")
    assert len(follows) == 3
    for follow in follows:
        assert follow["state"] == "pending"
        assert follow["hub"] is None  # nothing was ever discovered
        assert "an address the bridge may not reach" in follow["last_error"]
    assert flask_hub.subscriptions() == []
