"""The outbound guard end to end: real sockets, the real resolver, loopback.

A real twisted.web server listens on 127.0.0.1. The bridge's real
``OutboundClient`` (no agent override: ``Agent`` over the guarded endpoint
factory, the reactor's own ``getaddrinfo`` resolver) must refuse every
spelling of loopback without ever connecting, and reach the server once the
operator allow-lists loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.error import CannotListenError
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from websub_bridge.client import OutboundClient
from websub_bridge.guard import AddressPolicy, GuardError

pytestmark = pytest.mark.e2e


class _Counting(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.hits = 0

    def render_GET(self, request: Request) -> bytes:
        self.hits += 1
        return b"reached"


@pytest.fixture
def server() -> Iterator[tuple[_Counting, int]]:
    resource = _Counting()
    port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")  # type: ignore[attr-defined]
    yield resource, port.getHost().port
    pytest_twisted.blockon(port.stopListening())


@pytest.fixture
def server6() -> Iterator[tuple[_Counting, int]]:
    resource = _Counting()
    try:
        port = reactor.listenTCP(0, Site(resource), interface="::1")  # type: ignore[attr-defined]
    except CannotListenError:
        pytest.skip("no IPv6 loopback on this machine")
    yield resource, port.getHost().port
    pytest_twisted.blockon(port.stopListening())


def _spellings(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/",
        f"http://localhost:{port}/",
        f"http://2130706433:{port}/",
        f"http://0x7f.1:{port}/",
        f"http://0177.0.0.1:{port}/",
        f"http://127.1:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://\uff11\uff12\uff17.0.0.1:{port}/",  # full-width digits
    ]


@pytest_twisted.ensureDeferred
async def test_loopback_is_refused_in_every_spelling(server: tuple[_Counting, int]) -> None:
    resource, port = server
    client = OutboundClient(reactor, AddressPolicy(), timeout=5)
    try:
        for url in _spellings(port) + [f"http://[::1]:{port}/"]:
            with pytest.raises(GuardError):
                await client.request("GET", url)
    finally:
        await client.close()
    assert resource.hits == 0


@pytest_twisted.ensureDeferred
async def test_loopback_is_reached_once_allow_listed(server: tuple[_Counting, int]) -> None:
    resource, port = server
    policy = AddressPolicy(
        [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    )
    client = OutboundClient(reactor, policy, timeout=5)
    try:
        for url in _spellings(port):
            response = await client.request("GET", url)
            assert (response.status, response.body) == (200, b"reached"), url
    finally:
        await client.close()
    assert resource.hits == len(_spellings(port))


@pytest_twisted.ensureDeferred
async def test_ipv6_loopback_is_refused_then_reached_once_allow_listed(
    server6: tuple[_Counting, int],
) -> None:
    resource, port = server6
    url = f"http://[::1]:{port}/"
    refusing = OutboundClient(reactor, AddressPolicy([ipaddress.ip_network("127.0.0.0/8")]), timeout=5)
    allowing = OutboundClient(reactor, AddressPolicy([ipaddress.ip_network("::1/128")]), timeout=5)
    try:
        with pytest.raises(GuardError):
            await refusing.request("GET", url)
        assert resource.hits == 0
        response = await allowing.request("GET", url)
        assert (response.status, response.body) == (200, b"reached")
    finally:
        await refusing.close()
        await allowing.close()
    assert resource.hits == 1
