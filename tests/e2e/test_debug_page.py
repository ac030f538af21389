"""The debugging page in headless Chromium: a click publishes, the event appears.

The page is the hub's own (``--dev`` turns ``debug_ui`` on), so everything is
same-origin.  The test leaves a screenshot next to its log in pytest's
temporary directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ._support import CHROMIUM, CHROMIUM_ARGS, DEV_SECRET, draft07_token, require_executable

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
