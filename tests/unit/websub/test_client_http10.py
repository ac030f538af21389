"""The outbound client against a real HTTP/1.0 server (Python's stock
``http.server``), which closes each connection after its answer without
saying so: a reused connection would fail every request after the first."""

from __future__ import annotations

import http.server
import ipaddress
import threading
from collections.abc import Iterator

import pytest
import pytest_twisted
from twisted.internet import reactor

from websub_bridge.client import OutboundClient
from websub_bridge.guard import AddressPolicy


class _Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the default: one request per connection

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http10() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cb"
    finally:
        server.shutdown()
        server.server_close()


@pytest_twisted.ensureDeferred
async def test_every_post_to_an_http10_server_gets_its_answer(http10: str) -> None:
    client = OutboundClient(reactor, AddressPolicy([ipaddress.ip_network("127.0.0.0/8")]), timeout=5)
    try:
        for i in range(6):
            response = await client.request("POST", http10, body=f"n{i}".encode())
            assert response.status == 204
    finally:
        await client.close()
