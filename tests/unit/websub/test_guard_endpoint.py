"""The guarded endpoint factory in memory: what is resolved, checked, connected.

A fake resolver stands in for DNS (answers are the test's to choose) and a
``MemoryReactorClock`` records every ``connectTCP``: so each test can say
exactly which address a connection went to, and that a refused one never
got a connection attempt at all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionRefusedError, DNSLookupError
from twisted.internet.interfaces import IHostnameResolver, IHostResolution, IResolutionReceiver
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.client import URI, Agent
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from websub_bridge.client import OutboundClient, OutboundError
from websub_bridge.guard import AddressPolicy, GuardedEndpointFactory, GuardError, parse_network


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass


@implementer(IHostnameResolver)
class FakeResolver:
    """Answers each name from a table; records every question."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: object = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        self.asked.append(hostName)
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        for address in self.table.get(hostName, ()):
            kind = IPv6Address if ":" in address else IPv4Address
            resolutionReceiver.addressResolved(kind("TCP", address, portNumber))
        resolutionReceiver.resolutionComplete()
        return resolution


@implementer(IPolicyForHTTPS)
class RecordingTLSPolicy:
    """Real TLS options, recording which host name they were made for."""

    def __init__(self) -> None:
        self.names: list[tuple[bytes, int]] = []

    def creatorForNetloc(self, hostname: bytes, port: int):  # type: ignore[no-untyped-def]
        self.names.append((hostname, port))
        return optionsForClientTLS(hostname.decode("ascii"))


TABLE = {
    "hub.example.com": ["93.184.215.14"],
    "dual.example.com": ["2606:4700::1", "93.184.215.15"],
    "mixed.example.com": ["93.184.215.14", "10.0.0.7"],
    "mixed6.example.com": ["2606:4700::1", "fe80::1"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
    "empty.example.com": [],
}


def _connect(
    url: bytes,
    policy: AddressPolicy | None = None,
    tls: IPolicyForHTTPS | None = None,
) -> tuple[MemoryReactorClock, FakeResolver, defer.Deferred[Protocol]]:
    reactor = MemoryReactorClock()
    resolver = FakeResolver(TABLE)
    factory = GuardedEndpointFactory(
        reactor, policy or AddressPolicy(), resolver, tls_policy=tls, connect_timeout=7
    )
    endpoint = factory.endpointForURI(URI.fromBytes(url))
    return reactor, resolver, endpoint.connect(Factory.forProtocol(Protocol))


def _connected_hosts(reactor: MemoryReactorClock) -> list[tuple[str, int]]:
    return [(host, port) for host, port, *_ in reactor.tcpClients]


def _failure(d: defer.Deferred[Protocol]) -> Failure:
    out: list[object] = []
    d.addErrback(out.append)
    assert out and isinstance(out[0], Failure)
    return out[0]


def test_connects_to_the_resolved_address_on_the_url_port() -> None:
    reactor, resolver, _ = _connect(b"http://hub.example.com:8080/")
    assert resolver.asked == ["hub.example.com"]
    assert _connected_hosts(reactor) == [("93.184.215.14", 8080)]
    assert reactor.tcpClients[0][3] == 7  # the connect timeout


@pytest.mark.parametrize(
    "url", [b"http://mixed.example.com/", b"http://mixed6.example.com/", b"http://metadata.example.com/"]
)
def test_one_refused_address_in_the_answer_refuses_the_lot(url: bytes) -> None:
    reactor, _, d = _connect(url)
    failure = _failure(d)
    assert failure.check(GuardError)
    assert "may not reach" in str(failure.value)
    assert reactor.tcpClients == []


def test_ipv4_mapped_answers_are_judged_and_connected_as_ipv4() -> None:
    reactor, _, d = _connect(b"http://mapped.example.com/")
    assert _failure(d).check(GuardError)
    assert reactor.tcpClients == []
    reactor, _, _ = _connect(
        b"http://mapped.example.com/", AddressPolicy([parse_network("127.0.0.0/8")])
    )
    assert _connected_hosts(reactor) == [("127.0.0.1", 80)]


@pytest.mark.parametrize(
    "url",
    [
        b"http://127.0.0.1/",
        b"http://2130706433/",
        b"http://0x7f.1/",
        b"http://0177.0.0.1/",
        b"http://127.1/",
        b"http://[::1]/",
        b"http://[::ffff:127.0.0.1]/",
        b"http://[::ffff:7f00:1]/",
    ],
)
def test_numeric_hosts_are_never_resolved_and_loopback_is_refused(url: bytes) -> None:
    reactor, resolver, d = _connect(url)
    assert _failure(d).check(GuardError)
    assert resolver.asked == []
    assert reactor.tcpClients == []


@pytest.mark.parametrize(
    "url", [b"http://2130706433/", b"http://0x7f.1/", b"http://127.1/", b"http://[::ffff:127.0.0.1]/"]
)
def test_numeric_loopback_connects_to_the_address_it_spells_when_allowed(url: bytes) -> None:
    reactor, resolver, _ = _connect(url, AddressPolicy([parse_network("127.0.0.0/8")]))
    assert resolver.asked == []
    assert _connected_hosts(reactor) == [("127.0.0.1", 80)]


def test_each_checked_address_is_tried_in_order_with_no_second_resolution() -> None:
    reactor, resolver, d = _connect(b"http://dual.example.com/")
    assert _connected_hosts(reactor) == [("2606:4700::1", 80)]
    first = reactor.tcpClients[0][2]
    first.clientConnectionFailed(reactor.connectors[0], Failure(ConnectionRefusedError()))
    assert _connected_hosts(reactor) == [("2606:4700::1", 80), ("93.184.215.15", 80)]
    second = reactor.tcpClients[1][2]
    second.clientConnectionFailed(reactor.connectors[1], Failure(ConnectionRefusedError()))
    assert _failure(d).check(ConnectionRefusedError)
    assert resolver.asked == ["dual.example.com"]


def test_no_answer_is_a_dns_error() -> None:
    reactor, _, d = _connect(b"http://empty.example.com/")
    assert _failure(d).check(DNSLookupError)
    assert reactor.tcpClients == []


def test_https_verifies_the_original_name_but_connects_to_the_checked_address() -> None:
    tls = RecordingTLSPolicy()
    reactor, _, _ = _connect(b"https://hub.example.com/", tls=tls)
    assert _connected_hosts(reactor) == [("93.184.215.14", 443)]
    assert tls.names == [(b"hub.example.com", 443)]
    protocol = reactor.tcpClients[0][2].buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    hello = transport.value()
    assert hello[:1] == b"\x16"  # a TLS handshake record: the ClientHello
    assert b"hub.example.com" in hello  # SNI is the original host name


def test_plain_http_has_no_tls() -> None:
    tls = RecordingTLSPolicy()
    reactor, _, _ = _connect(b"http://hub.example.com/", tls=tls)
    assert tls.names == []
    protocol = reactor.tcpClients[0][2].buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    assert transport.value() == b""  # nothing until a request: no handshake


def test_other_schemes_have_no_endpoint() -> None:
    from twisted.web.error import SchemeNotSupported

    factory = GuardedEndpointFactory(MemoryReactorClock(), AddressPolicy(), FakeResolver(TABLE))
    with pytest.raises(SchemeNotSupported):
        factory.endpointForURI(URI.fromBytes(b"ftp://hub.example.com/"))


def test_an_agent_over_the_factory_surfaces_the_guard_error() -> None:
    reactor = MemoryReactorClock()
    agent = Agent.usingEndpointFactory(
        reactor, GuardedEndpointFactory(reactor, AddressPolicy(), FakeResolver(TABLE))
    )
    d = agent.request(b"GET", b"http://metadata.example.com/latest/meta-data/")
    failure = _failure(d)  # type: ignore[arg-type]
    assert failure.check(GuardError)
    assert reactor.tcpClients == []


def test_the_whole_client_sends_the_original_host_to_the_pinned_address() -> None:
    """OutboundClient with its production agent, down to the bytes sent."""
    reactor = MemoryReactorClock()
    client = OutboundClient(reactor, AddressPolicy(), resolver=FakeResolver(TABLE))
    d = defer.Deferred.fromCoroutine(client.request("GET", "http://hub.example.com/feed?token=x"))
    assert _connected_hosts(reactor) == [("93.184.215.14", 80)]
    protocol = reactor.tcpClients[0][2].buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    sent = transport.value()
    assert sent.startswith(b"GET /feed?token=x HTTP/1.1\r\n")
    assert b"\r\nHost: hub.example.com\r\n" in sent
    assert b"\r\nUser-Agent: mercure-twisted-websub/0.1\r\n" in sent
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    out: list[object] = []
    d.addBoth(out.append)
    (response,) = out
    assert getattr(response, "body", None) == b"ok"
    assert getattr(response, "url", None) == "http://hub.example.com/feed?token=x"


def test_the_whole_client_refuses_a_private_answer_as_guard_error() -> None:
    reactor = MemoryReactorClock()
    client = OutboundClient(reactor, AddressPolicy(), resolver=FakeResolver(TABLE))
    d = defer.Deferred.fromCoroutine(client.request("GET", "http://mixed.example.com/"))
    failure = _failure(d)  # type: ignore[arg-type]
    assert failure.check(GuardError) and not failure.check(OutboundError)
    assert reactor.tcpClients == []


def test_the_policy_is_reused_unchanged() -> None:
    policy = AddressPolicy([ipaddress.ip_network("10.0.0.0/8")])
    assert OutboundClient(MemoryReactorClock(), policy).policy is policy
