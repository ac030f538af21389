"""/healthz and /readyz in memory: live while the reactor turns, ready when the transport answers."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from mercure_twisted.transports import TransportUnavailable
from mercure_twisted.web._health import PING_TIMEOUT

from ._web import make_hub


class HealthTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.web = make_hub()

    def get(self, path: str, method: str = "GET") -> tuple[int, str, Any]:
        d = self.web.stub.request(method, "http://hub.test" + path)
        self.web.flush()
        response = self.successResultOf(d)
        return response.code, self.successResultOf(response.content()).decode(), response

    def test_live(self) -> None:
        code, body, response = self.get("/healthz")
        self.assertEqual((code, body), (200, "ok\n"))
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-store"])

    def test_ready_when_started_and_the_transport_answers(self) -> None:
        self.web.hub.transport.ping = lambda: succeed(None)
        self.assertEqual(self.get("/readyz")[:2], (200, "ready\n"))

    def test_transport_without_ping_is_ready_once_started(self) -> None:
        self.web.hub.transport.ping = None  # as a transport that has none
        code, body, _ = self.get("/readyz")
        self.assertEqual(code, 200)

    def test_not_ready_when_the_transport_cannot_store(self) -> None:
        self.web.hub.transport.ping = lambda: fail(TransportUnavailable("redis: connection refused"))
        code, body, response = self.get("/readyz")
        self.assertEqual(code, 503)
        self.assertEqual(body, "transport unavailable: redis: connection refused\n")
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["5"])

    def test_a_ping_that_never_answers_is_503_after_the_bound(self) -> None:
        self.web.hub.transport.ping = lambda: Deferred()
        d = self.web.stub.get("http://hub.test/readyz")
        self.web.flush()
        self.assertNoResult(d)
        self.web.clock.advance(PING_TIMEOUT)
        self.web.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 503)
        self.assertIn(b"did not answer", self.successResultOf(response.content()))

    def test_not_ready_while_stopping(self) -> None:
        self.web.hub.transport.ping = lambda: succeed(None)
        self.web.service.stopService()
        code, body, _ = self.get("/readyz")
        self.assertEqual(code, 503)
        self.assertIn("not running", body)
        self.assertEqual(self.get("/healthz")[0], 200)

    def test_only_get_and_head(self) -> None:
        code, _, response = self.get("/healthz", method="POST")
        self.assertEqual(code, 405)
        self.assertEqual(response.headers.getRawHeaders("allow"), ["GET, HEAD"])
        self.assertEqual(self.get("/healthz", method="HEAD")[:2], (200, ""))
