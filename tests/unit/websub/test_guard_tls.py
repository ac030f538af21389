"""https through the guard: a real TLS handshake in memory.

The connection goes to the address the guard checked (pinned), yet the
certificate is verified against the host name of the URL (and SNI carries
it): a certificate for another name is refused, one for the right name
passes. The client is the production OutboundClient (Agent over the guarded
endpoints, BrowserLikePolicyForHTTPS with a test trust root); only the
sockets are in memory.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.server import Site

from websub_bridge.client import OutboundClient, OutboundError, Response
from websub_bridge.guard import AddressPolicy

from ._outbound_kit import Routes
from .test_guard_endpoint import FakeResolver


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _certificate(names: Sequence[str]) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _fetch(server_names: Sequence[str]) -> tuple[list[object], list[tuple[str, int]], Routes]:
    key_pem, cert_pem = _certificate(server_names)
    resource = Routes({"/feed": lambda r: b"over tls"})
    reactor = MemoryReactorClock()
    server_factory = TLSMemoryBIOFactory(
        PrivateCertificate.loadPEM(key_pem + cert_pem).options(),
        False,
        Site(resource),
        clock=reactor,
    )
    client = OutboundClient(
        reactor,
        AddressPolicy(),
        resolver=FakeResolver({"hub.example.com": ["93.184.215.14"]}),
        tls_policy=BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(cert_pem)),
    )
    d = defer.Deferred.fromCoroutine(client.request("GET", "https://hub.example.com/feed"))
    out: list[object] = []
    d.addBoth(out.append)
    connected = [(host, port) for host, port, *_ in reactor.tcpClients]
    client_protocol = reactor.tcpClients[0][2].buildProtocol(IPv4Address("TCP", "93.184.215.14", 443))
    server_protocol = server_factory.buildProtocol(IPv4Address("TCP", "10.9.9.9", 50000))
    pump = iosim.connect(
        server_protocol,
        iosim.makeFakeServer(server_protocol),
        client_protocol,
        iosim.makeFakeClient(client_protocol),
    )
    for _ in range(50):
        pump.flush()
        reactor.advance(0)  # TLS flushes batched writes on the next turn
        if out:
            break
    return out, connected, resource


def test_certificate_for_the_url_host_passes_over_the_pinned_address() -> None:
    out, connected, resource = _fetch(["hub.example.com"])
    assert connected == [("93.184.215.14", 443)]
    (response,) = out
    assert isinstance(response, Response), response
    assert (response.status, response.body) == (200, b"over tls")
    ((_, _, headers, _),) = resource.seen
    assert headers["host"] == "hub.example.com"


@pytest.mark.parametrize(
    "names",
    [
        ["other.example.com"],
        ["93.184.215.14"],  # a certificate for the pinned address is not one for the host
        ["*.example.org"],
        ["*.hub.example.com"],
    ],
)
def test_certificate_for_another_name_is_refused(names: list[str]) -> None:
    out, connected, resource = _fetch(names)
    assert connected == [("93.184.215.14", 443)]
    (failure,) = out
    assert isinstance(failure, Failure) and failure.check(OutboundError)
    assert resource.seen == []
