"""The real hub, seen by a real browser: headless Chromium's native EventSource.

The page is served by a tiny HTTP server on another origin than the hub
(same host 127.0.0.1, another port), so every subscription is a CORS request
and cookie authorization needs ``withCredentials`` plus an explicitly
allowed origin (``--cors-origins``).

Cookie / SameSite approach (what works with plain http on loopback):

* The hub is ``http://127.0.0.1:HUBPORT`` and the page ``http://127.0.0.1:PAGEPORT``.
  Ports are part of the origin but not of the *site*, so the EventSource
  request is cross-origin yet same-site: a host-only cookie for 127.0.0.1
  (``add_cookies`` with a ``url``, hence no Domain attribute) with
  ``sameSite: "Lax"`` and ``secure: False`` is sent with it.  (Cookies are
  not port-scoped either, which is fine here: the page server ignores it.)
* A page on ``http://localhost:PAGEPORT`` makes the request cross-site, and
  then nothing works over plain http (probed with Chromium 156): a Lax or
  Strict cookie is stored but withheld (EventSource is not a top-level
  navigation), ``SameSite=None`` without ``Secure`` is rejected, and
  ``SameSite=None; Secure`` for ``http://127.0.0.1`` is not stored either.
  Cross-site cookie auth needs https; the same-site arrangement tests the
  hub, not those browser policies.
* ``httpOnly: True``: the page's script never sees the token.

The browser is never downloaded (no ``playwright install``): the Debian
``/usr/bin/chromium`` is driven by Playwright's Python API, and a missing
chromium FAILS the tests (CI installs it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from ._support import CHROMIUM, CHROMIUM_ARGS, KEY_FLAGS, draft07_token, free_port, require_executable

pytestmark = pytest.mark.e2e

WAIT_MS = 10_000
PUB = draft07_token(publish=["*"])

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>mercure e2e</title></head>
<body>
<script>
  // ?hub=URL&credentials=0|1 ; every event is recorded for the test to read.
  const params = new URLSearchParams(location.search);
  window.received = [];
  window.opens = 0;
  window.errors = 0;
  window.states = [];
  const es = new EventSource(params.get("hub"), {
    withCredentials: params.get("credentials") === "1",
  });
  window.es = es;
  es.onopen = () => { window.opens += 1; };
  es.onerror = () => { window.errors += 1; window.states.push(es.readyState); };
  es.onmessage = (e) => {
    window.received.push({data: e.data, id: e.lastEventId, type: e.type});
  };
</script>
</body></html>
"""


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/":
            self.send_error(404)
            return
        body = PAGE.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PageServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _PageHandler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def page_url(self, hub_subscribe_url: str, credentials: bool) -> str:
        query = httpx.QueryParams({"hub": hub_subscribe_url, "credentials": "1" if credentials else "0"})
        return f"{self.origin}/?{query}"


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    server = PageServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_executable(CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                  headless=True, timeout=30_000)
        except Exception as e:
            pytest.fail(f"could not launch {CHROMIUM} with Playwright: {e}")
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def context_factory(browser: Any) -> Iterator[Any]:
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context()
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def publish(hub_url: str, topic: str, data: str, private: bool = False, **fields: str) -> str:
    form: dict[str, str] = {"topic": topic, "data": data, **fields}
    if private:
        form["private"] = "on"
    r = httpx.post(hub_url, data=form, headers={"Authorization": f"Bearer {PUB}"}, timeout=5)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.text


def open_page(context: Any, url: str) -> Any:
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.wait_for_function("window.opens >= 1", timeout=WAIT_MS)
    return page


def received(page: Any) -> list[str]:
    return [e["data"] for e in page.evaluate("window.received")]


def wait_received(page: Any, count: int) -> list[dict[str, str]]:
    try:
        page.wait_for_function(f"window.received.length >= {count}", timeout=WAIT_MS)
    except Exception as e:
        raise AssertionError(
            f"page got {received(page)} (wanted {count} events), "
            f"errors={page.evaluate('window.errors')}: {e}"
        ) from None
    return page.evaluate("window.received")  # type: ignore[no-any-return]


def subscribe_url(hub_url: str, **params: str) -> str:
    return f"{hub_url}?{httpx.QueryParams(params)}"


# -- (a) ------------------------------------------------------------------------


@pytest.mark.parametrize("draft", ["07", "08"])
def test_eventsource_receives_a_published_update(start_hub: Any, page_server: PageServer,
                                                 context_factory: Any, draft: str) -> None:
    hub = start_hub(*KEY_FLAGS, "--anonymous", "--cors-origins", page_server.origin)
    topic = "https://example.com/books/1"
    url = (subscribe_url(hub.url, topic="https://example.com/books/{id}") if draft == "07"
           else subscribe_url(hub.url, match=topic))
    page = open_page(context_factory(), page_server.page_url(url, credentials=False))
    data = "hello\nbrowser \u2713"
    event_id = publish(hub.url, topic, data)
    events = wait_received(page, 1)
    assert events == [{"data": data, "id": event_id, "type": "message"}]


# -- (b) ------------------------------------------------------------------------


def test_private_updates_need_the_authorization_cookie(start_hub: Any, page_server: PageServer,
                                                       context_factory: Any) -> None:
    hub = start_hub(*KEY_FLAGS, "--anonymous", "--cors-origins", page_server.origin)
    selector = "https://example.com/secret/{id}"
    token = draft07_token(subscribe=["https://example.com/secret/1"])
    url = subscribe_url(hub.url, topic=selector)

    # No cookie at all (a fresh context), credentials on: anonymous.
    anonymous = open_page(context_factory(), page_server.page_url(url, credentials=True))

    authorized_context = context_factory()
    authorized_context.add_cookies([{
        "name": "mercureAuthorization",
        "value": token,
        # url (not domain): a host-only cookie for the hub's host.
        "url": hub.base_url,
        "httpOnly": True,
        "secure": False,
        "sameSite": "Lax",
    }])
    authorized = open_page(authorized_context, page_server.page_url(url, credentials=True))
    # Same context, same cookie jar, but withCredentials false: the browser
    # must not send the cookie cross-origin, so no private update either.
    no_credentials = open_page(authorized_context, page_server.page_url(url, credentials=False))

    publish(hub.url, "https://example.com/secret/1", "public before")
    publish(hub.url, "https://example.com/secret/1", "private for 1", private=True)
    publish(hub.url, "https://example.com/secret/2", "private for 2", private=True)
    publish(hub.url, "https://example.com/secret/1", "public after")

    wait_received(authorized, 3)
    wait_received(anonymous, 2)
    wait_received(no_credentials, 2)
    # "public after" is last: once a page has it, nothing else is coming.
    assert received(authorized) == ["public before", "private for 1", "public after"]
    assert received(anonymous) == ["public before", "public after"]
    assert received(no_credentials) == ["public before", "public after"]
    # The token stayed out of the page's reach.
    assert "mercureAuthorization" not in authorized.evaluate("document.cookie")


def test_cookie_without_cors_credentials_origin_is_refused(start_hub: Any,
                                                          page_server: PageServer,
                                                          context_factory: Any) -> None:
    """An origin not in --cors-origins gets ``*`` without credentials: a
    credentialed EventSource must fail rather than leak private updates."""
    hub = start_hub(*KEY_FLAGS, "--anonymous", "--cors-origins", "*")
    token = draft07_token(subscribe=["*"])
    context = context_factory()
    context.add_cookies([{"name": "mercureAuthorization", "value": token, "url": hub.base_url,
                          "httpOnly": True, "secure": False, "sameSite": "Lax"}])
    page = context.new_page()
    page.goto(page_server.page_url(subscribe_url(hub.url, topic="urn:x"), credentials=True))
    page.wait_for_function("window.errors >= 1", timeout=WAIT_MS)
    publish(hub.url, "urn:x", "private", private=True)
    page.wait_for_timeout(300)
    assert page.evaluate("window.opens") == 0
    assert received(page) == []


# -- (c) ------------------------------------------------------------------------


@pytest.mark.parametrize("draft", ["07", "08"])
def test_browser_reconnects_with_last_event_id(start_hub: Any, page_server: PageServer,
                                               context_factory: Any, draft: str) -> None:
    """--write-timeout 2 makes the hub end the stream; e2 is published while
    the browser waits to reconnect; its automatic reconnection (sending
    Last-Event-ID: e1 by itself) gets e2 exactly once, and never e1 again."""
    hub = start_hub(*KEY_FLAGS, "--anonymous", "--cors-origins", page_server.origin,
                    "--write-timeout", "2")
    topic = "https://example.com/books/9"
    url = (subscribe_url(hub.url, topic=topic) if draft == "07"
           else subscribe_url(hub.url, match=topic))
    page = open_page(context_factory(), page_server.page_url(url, credentials=False))
    # retry 2500 ms: the window during which the browser is disconnected.
    e1 = publish(hub.url, topic, "e1", retry="2500")
    wait_received(page, 1)
    page.wait_for_function("window.errors >= 1", timeout=WAIT_MS)  # the hub cut the stream
    assert page.evaluate("window.es.readyState") == 0, "EventSource is not reconnecting"
    e2 = publish(hub.url, topic, "e2")
    # Still disconnected after the publish: e2 can only come from history.
    assert page.evaluate("window.es.readyState") == 0, "reconnected too early for this test"
    assert page.evaluate("window.opens") == 1
    events = wait_received(page, 2)
    assert page.evaluate("window.opens") == 2
    # Stay through the next cut and reconnection: still no duplicate.
    page.wait_for_function("window.opens >= 3", timeout=WAIT_MS)
    page.wait_for_timeout(300)
    events = page.evaluate("window.received")
    assert [(e["id"], e["data"]) for e in events] == [(e1, "e1"), (e2, "e2")], json.dumps(events)
