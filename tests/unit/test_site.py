"""The hub's Site over an in-memory connection: body bound, redacted access log."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from mercure_twisted.config import KeySpec
from mercure_twisted.app import build_application
from mercure_twisted.config import HubConfig
from mercure_twisted.web._site import _access_log, redact_uri
from twisted.internet.task import Clock

SECRET = "test-secret-that-is-long-enough-for-hs256!"


def raw_request(site, data: bytes) -> bytes:  # type: ignore[no-untyped-def]
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(data)
    return transport.value()


class SiteTests(SynchronousTestCase):
    def setUp(self) -> None:
        config = HubConfig(max_body_size=64, keys=(KeySpec(role="publisher", key=SECRET),))
        self.site, self.service = build_application(config, Clock())

    def test_declared_oversized_body_is_413_without_storing_it(self) -> None:
        body = b"topic=t&data=" + b"x" * 1000
        response = raw_request(self.site, b"POST /.well-known/mercure HTTP/1.1\r\nHost: h\r\n"
                               b"Content-Type: application/x-www-form-urlencoded\r\n"
                               b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.assertTrue(response.startswith(b"HTTP/1.1 413 "), response[:60])

    def test_chunked_oversized_body_is_413(self) -> None:
        chunk = b"x" * 50
        request = (b"POST /.well-known/mercure HTTP/1.1\r\nHost: h\r\n"
                   b"Content-Type: application/x-www-form-urlencoded\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):
            request += b"%x\r\n%s\r\n" % (len(chunk), chunk)
        request += b"0\r\n\r\n"
        response = raw_request(self.site, request)
        self.assertTrue(response.startswith(b"HTTP/1.1 413 "), response[:60])

    def test_token_never_in_access_log(self) -> None:
        self.assertEqual(redact_uri(b"/.well-known/mercure?topic=a&authorization=eyJ.x.y&b=1"),
                         b"/.well-known/mercure?topic=a&authorization=REDACTED&b=1")
        self.assertEqual(redact_uri(b"/?Authorization=secret"), b"/?Authorization=REDACTED")

        class FakeRequest:
            uri = b"/.well-known/mercure?authorization=eyJsecret"
            method = b"GET"
            clientproto = b"HTTP/1.1"
            code = 200
            sentLength = 0

            def getClientAddress(self) -> IPv4Address:
                return IPv4Address("TCP", "127.0.0.1", 1)

            def getHeader(self, name: bytes) -> None:
                return None

        line = _access_log("[ts]", FakeRequest())
        self.assertNotIn("eyJsecret", line)
        self.assertIn("authorization=REDACTED", line)
