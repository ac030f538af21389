"""Selector matrix in the browser: a same-origin EventSource and fetch() publisher.

Each case opens a native ``EventSource`` on the hub's own origin (the
debugging page of a ``--dev`` hub is the page), publishes with ``fetch`` and
a draft-07 token without ``exp`` (as Go-hub tutorials mint them), and checks
whether the update arrives, with its id and multi-line data intact.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ._support import (
    CHROMIUM, CHROMIUM_ARGS, DEV_SECRET, HubProcess, draft07_token, free_port, require_executable,
)

pytestmark = pytest.mark.e2e

TOKEN = draft07_token(publish=["*"], subscribe=["*"], key=DEV_SECRET)
NONCE = uuid.uuid4().hex

# name, update topics, subscription selectors (topic= or match_urlpattern=), private, received
CASES = [
    ("raw string", [f"a-{NONCE}"], [("topic", f"a-{NONCE}")], False, True),
    ("alternate topic", [f"x-{NONCE}", f"b-{NONCE}"], [("topic", f"b-{NONCE}")], False, True),
    ("several selectors", [f"c-{NONCE}"], [("topic", "foo"), ("topic", f"c-{NONCE}")], False, True),
    ("URI", [f"https://example.net/foo/{NONCE}"], [("topic", f"https://example.net/foo/{NONCE}")], False, True),
    ("URI template", [f"https://example.net/t/{NONCE}"], [("topic", "https://example.net/t/{id}")], False, True),
    ("URL pattern", [f"https://example.net/p/{NONCE}"], [("match_urlpattern", "https://example.net/p/:id")], False, True),
    ("wildcard", [f"w-{NONCE}"], [("topic", "*")], False, True),
    ("other raw string", [f"d-{NONCE}"], [("topic", "another-name")], False, False),
    ("other URI template", [f"https://example.net/foo/{NONCE}"], [("topic", "https://example.net/bar/{var}")], False, False),
    ("private, anonymous subscriber", [f"e-{NONCE}"], [("topic", f"e-{NONCE}")], True, False),
    ("private URI template, anonymous", [f"https://example.net/q/{NONCE}"], [("topic", "https://example.net/q/{id}")], True, False),
]

SCRIPT = """async ([selectors, topics, isPrivate, token, id]) => {
  const url = new URL("/.well-known/mercure", location.origin);
  for (const [name, value] of selectors) url.searchParams.append(name, value);
  const data = "data for\\n\\n  " + id;
  const es = new EventSource(url);
  await new Promise((resolve, reject) => { es.onopen = resolve; setTimeout(reject, 5000); });
  const received = new Promise((resolve) => {
    es.onmessage = (e) => { if (e.lastEventId === id && e.data === data) resolve(true); };
    setTimeout(() => resolve(false), 2000);
  });
  const body = new URLSearchParams();
  for (const topic of topics) body.append("topic", topic);
  body.set("id", id);
  body.set("data", data);
  if (isPrivate) body.set("private", "on");
  const response = await fetch("/.well-known/mercure", {
    method: "POST", body, headers: {Authorization: "Bearer " + token}});
  const text = await response.text();
  const result = {received: await received, status: response.status, body: text,
                  type: response.headers.get("Content-Type")};
  es.close();
  return result;
}"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    hub = HubProcess(free_port(), ("--dev",), tmp_path_factory.mktemp("hub") / "hub.log")
    hub.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=require_executable(CHROMIUM), args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page()
                page.goto(hub.url + "/ui/")
                yield page
            finally:
                browser.close()
    finally:
        hub.terminate()


@pytest.mark.parametrize("name, topics, selectors, private, expected", CASES, ids=[c[0] for c in CASES])
def test_selector_matrix(page: Any, name: str, topics: list[str], selectors: list[tuple[str, str]],
                         private: bool, expected: bool) -> None:
    id = f"id-{uuid.uuid4().hex}"
    result = page.evaluate(SCRIPT, [selectors, topics, private, TOKEN, id])
    assert result["status"] == 200, result
    assert result["type"].startswith("text/plain"), result
    assert result["body"] == id
    assert result["received"] is expected, result
