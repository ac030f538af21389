"""The real hub over TLS: Chromium on HTTP/2 (many streams, one connection),
an HTTP/1.1 client, and a certificate reloaded on SIGHUP without dropping
the streams already open.

Certificates are made at test time by a test CA (``tests/certs.py``); the
clients trust that CA (httpx) or ignore certificate errors (Chromium, whose
certificate store the test cannot touch).
"""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from cryptography import x509

from tests.certs import CertAuthority

from ._support import CHROMIUM, CHROMIUM_ARGS, DEV_SECRET, draft07_token, free_port, require_executable

pytestmark = pytest.mark.e2e

WAIT = 10.0
TOPIC = "https://example.com/tls"
#: More EventSource streams than HTTP/1.1 allows per origin (six).
STREAMS = 10


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def tls_hub(start_hub: Any, tmp_path: Path, *flags: str) -> tuple[Any, int, CertAuthority, Path, Path]:
    ca = CertAuthority(tmp_path)
    leaf = ca.leaf("first")
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(leaf.cert, cert)
    shutil.copy(leaf.key, key)
    port = free_port()
    hub = start_hub(
        "--dev", "--transport", "memory://",
        "--listen", f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}",
        *flags,
    )
    return hub, port, ca, cert, key


def publish(hub: Any, data: str) -> None:
    token = draft07_token(publish=["*"], key=DEV_SECRET)
    response = httpx.post(hub.url, data={"topic": TOPIC, "data": data},
                          headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 200, response.text


def served_serial(port: int, ca: Path) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def test_chromium_gets_http2_and_many_streams_on_one_connection(
    start_hub: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    hub, port, _, _, _ = tls_hub(start_hub, tmp_path)
    origin = f"https://127.0.0.1:{port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=require_executable(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True)
            page = context.new_page()
            page.goto(origin + "/healthz")
            assert page.evaluate(
                "performance.getEntriesByType('navigation')[0].nextHopProtocol"
            ) == "h2"
            page.evaluate(
                """([url, n]) => {
                    window.opened = 0; window.received = [];
                    window.sources = [];
                    for (let i = 0; i < n; i++) {
                        const es = new EventSource(url);
                        es.onopen = () => { window.opened++; };
                        es.onmessage = (e) => window.received.push(i + ':' + e.data);
                        window.sources.push(es);
                    }
                }""",
                [f"{origin}/.well-known/mercure?topic={TOPIC}", STREAMS],
            )
            # Over HTTP/1.1 the seventh stream would wait for a free connection
            # forever: all of them opening proves they share one h2 connection.
            page.wait_for_function(f"window.opened === {STREAMS}", timeout=WAIT * 1000)
            publish(hub, "over h2")
            page.wait_for_function(f"window.received.length === {STREAMS}", timeout=WAIT * 1000)
            received = page.evaluate("window.received")
            assert sorted(received) == sorted(f"{i}:over h2" for i in range(STREAMS))
            protocols = page.evaluate(
                "[...new Set(performance.getEntriesByType('resource')"
                ".map((e) => e.nextHopProtocol).filter((p) => p))]"
            )
            assert protocols in ([], ["h2"]), protocols  # streams still open may have none yet
        finally:
            browser.close()


def test_http11_client_over_tls(start_hub: Any, tmp_path: Path) -> None:
    hub, port, ca, _, _ = tls_hub(start_hub, tmp_path)
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca.path)), http1=True, http2=False,
                      timeout=httpx.Timeout(5, read=WAIT)) as client:
        health = client.get(f"https://localhost:{port}/healthz")
        assert health.http_version == "HTTP/1.1"
        assert health.text == "ok\n"
        with client.stream("GET", f"https://localhost:{port}/.well-known/mercure",
                           params={"topic": TOPIC}) as stream:
            assert stream.status_code == 200
            assert stream.http_version == "HTTP/1.1"
            lines = stream.iter_lines()
            assert next(lines).startswith(":")  # the opening comment
            publish(hub, "over http/1.1")
            for line in lines:
                if line.startswith("data: "):
                    assert line == "data: over http/1.1"
                    break


def test_sighup_reloads_the_certificate_without_dropping_streams(
    start_hub: Any, tmp_path: Path
) -> None:
    hub, port, ca, cert, key = tls_hub(start_hub, tmp_path)
    first = served_serial(port, ca.path)
    received: list[str] = []
    opened = threading.Event()
    failure: list[BaseException] = []

    def subscribe() -> None:
        try:
            with httpx.Client(verify=ssl.create_default_context(cafile=str(ca.path)), timeout=httpx.Timeout(5, read=30)) as client:
                with client.stream("GET", f"https://localhost:{port}/.well-known/mercure",
                                   params={"topic": TOPIC}) as stream:
                    opened.set()
                    for line in stream.iter_lines():
                        if line.startswith("data: "):
                            received.append(line[6:])
                            return
        except BaseException as e:  # reported by the main thread
            failure.append(e)
            opened.set()

    reader = threading.Thread(target=subscribe, daemon=True)
    reader.start()
    assert opened.wait(WAIT) and not failure, failure

    second = ca.leaf("second")
    shutil.copy(second.cert, cert)
    shutil.copy(second.key, key)
    assert hub.proc is not None
    hub.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded: new connections use it" in hub.log(), "the reload in the log")

    assert served_serial(port, ca.path) == second.serial != first
    publish(hub, "after the reload")
    reader.join(WAIT)
    assert not failure, failure
    assert received == ["after the reload"], "the stream opened before the reload was dropped"
    assert hub.alive
