"""The debugging page in headless Chromium: a click publishes, the event appears.

The page is the hub's own (``--dev`` turns ``debug_ui`` on), so everything is
same-origin.  The test leaves a screenshot next to its log in pytest's
temporary directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from ._support import (
    CHROMIUM, CHROMIUM_ARGS, DEV_SECRET, draft07_token, draft08_token, require_executable,
)

pytestmark = pytest.mark.e2e


def test_publish_from_the_page_reaches_its_subscription(start_hub: Any, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    hub = start_hub("--dev")
    token = draft07_token(publish=["*"], subscribe=["*"], key=DEV_SECRET)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=require_executable(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(hub.url + "/ui/")
            page.fill("#token", token)
            page.dispatch_event("#token", "input")
            assert "may publish to: [\"*\"]" in page.inner_text("#token-info")
            page.fill("#sub-topics", "https://example.com/books/{id}")
            page.click("#subscribe-button")
            page.wait_for_selector("#sub-status.good", timeout=10_000)
            page.fill("#pub-topics", "https://example.com/books/7")
            page.fill("#pub-data", "written from the page")
            page.click("#publish-button")
            page.wait_for_selector("#events li", timeout=10_000)
            assert "written from the page" in page.inner_text("#events")
            assert page.inner_text("#pub-status").startswith("Published: urn:uuid:")
            page.screenshot(path=str(tmp_path / "debug-page.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "debug-page.png").stat().st_size > 0


def launch(p: Any) -> Any:
    return p.chromium.launch(executable_path=require_executable(CHROMIUM), args=CHROMIUM_ARGS)


def test_pasted_tokens_show_their_grants(start_hub: Any, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    hub = start_hub("--dev")
    draft07 = draft07_token(publish=["https://example.com/books/{id}"],
                            subscribe=["https://example.com/users/1"], key=DEV_SECRET)
    draft08 = draft08_token(
        hub.url,
        {"type": "mercure", "actions": ["subscribe"],
         "topics": [{"match": "https://example.com/books/:id", "match_type": "urlpattern"}]},
        {"type": "mercure", "actions": ["publish"], "topics": [{"match": "https://example.com/a"}]},
        key=DEV_SECRET,
    )
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(hub.url + "/ui/")
            page.fill("#token", draft07)
            info = page.inner_text("#token-info")
            assert "draft-07 token" in info
            assert 'may publish to: ["https://example.com/books/{id}"]' in info
            page.fill("#token-topic", "https://example.com/books/7")
            assert page.inner_text("#token-check").startswith(
                "may publish to it; may not receive its private updates")
            page.fill("#token-topic", "https://example.com/users/1")
            assert page.inner_text("#token-check").startswith(
                "may not publish to it; may receive its private updates")

            page.fill("#token", draft08)
            info = page.inner_text("#token-info")
            assert "draft-08 token" in info
            assert '["subscribe"] on [{"match":"https://example.com/books/:id","match_type":"urlpattern"}]' in info
            page.fill("#token-topic", "https://example.com/books/7")
            assert page.inner_text("#token-check").startswith(
                "may not publish to it; may receive its private updates")
            page.fill("#token-topic", "https://example.com/a")
            assert page.inner_text("#token-check").startswith(
                "may publish to it; may not receive")
            page.screenshot(path=str(tmp_path / "debug-page-token.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "debug-page-token.png").stat().st_size > 0


#: The table row of the subscription made from outside the page.
OUTSIDE_ROW = "#subscriptions td:text-is('https://example.com/outside')"


def test_active_subscriptions_live(start_hub: Any, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    hub = start_hub("--dev")
    token = draft07_token(publish=["*"], subscribe=["*"], key=DEV_SECRET)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(hub.url + "/ui/")
            page.fill("#token", token)
            page.check("#live-subscriptions")
            page.wait_for_selector("#subscriptions-status.good", timeout=10_000)
            # A subscriber from outside the page appears without a click.
            with httpx.stream("GET", hub.url, params={"topic": "https://example.com/outside"},
                              timeout=httpx.Timeout(5, read=30)) as stream:
                assert stream.status_code == 200
                page.wait_for_selector(OUTSIDE_ROW, timeout=10_000)
                page.screenshot(path=str(tmp_path / "debug-page-subscriptions.png"), full_page=True)
            # ...and disappears once it has gone.
            page.wait_for_selector(OUTSIDE_ROW, state="detached", timeout=10_000)
        finally:
            browser.close()


def test_the_page_explains_when_the_subscription_api_is_off(start_hub: Any, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    config = tmp_path / "no-subscriptions.toml"
    config.write_text("dev = true\nsubscriptions = false\n")
    hub = start_hub("--config", str(config))
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            page.goto(hub.url + "/ui/")
            page.fill("#token", draft07_token(subscribe=["*"], key=DEV_SECRET))
            page.click("#refresh-subscriptions")
            page.wait_for_selector("#subscriptions-status.bad", timeout=10_000)
            assert "The subscription API is off on this hub" in page.inner_text(
                "#subscriptions-status")
        finally:
            browser.close()
