"""A real ``tcp.Server`` over a loopback socket pair, for tests of what
Twisted's transport and twisted.web do with the bytes (``test_hot_paths``,
``test_footprint``): a memory reactor, so that nothing queued is flushed
behind a test's back, and the test's own ``Clock``."""

from __future__ import annotations

import socket

from twisted.internet import tcp
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from mercure_twisted.web import _sse
from mercure_twisted.web._sse import RequestSink, start_stream


class Port:
    """What ``tcp.Server`` asks of the port that accepted it."""

    _realPortNumber = 3000


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback pair: the client (blocking, 5 s timeout) and
    the server side (non-blocking, as a reactor's)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    server.setblocking(False)
    client.settimeout(5)
    return client, server


class StreamResource(Resource):
    """Opens a stream (headers and opening comment) and keeps its sink."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.sinks: list[RequestSink] = []

    def render_GET(self, request: object) -> object:
        start_stream(request)  # type: ignore[arg-type]
        self.sinks.append(RequestSink(request))  # type: ignore[arg-type]
        self.request = request
        return NOT_DONE_YET


class LoopbackStream(SynchronousTestCase):
    """A connection served by ``make_site``'s Site, to ``make_resource``'s resource."""

    def make_site(self, resource: Resource, clock: Clock) -> Site:
        return Site(resource, reactor=clock)

    def make_resource(self) -> Resource:
        return StreamResource()

    def setUp(self) -> None:
        self.client, self.server_socket = socket_pair()
        self.resource = self.make_resource()
        self.clock = Clock()
        # The pass count is the process's (one reactor); another test's
        # clock that never advances must not hold it.
        _sse._passes[:] = [0, 0]
        _sse._held.clear()
        self.site = self.make_site(self.resource, self.clock)
        self.protocol = self.site.buildProtocol(None)
        self.transport = tcp.Server(
            self.server_socket, self.protocol, ("127.0.0.1", 5555), Port(), 1, MemoryReactor()
        )
        self.protocol.makeConnection(self.transport)
        self.addCleanup(self.client.close)
        self.addCleanup(self.server_socket.close)

    def open_stream(self, version: bytes = b"HTTP/1.1") -> RequestSink:
        self.protocol.dataReceived(b"GET /s " + version + b"\r\nHost: x\r\n\r\n")
        [sink] = self.resource.sinks
        return sink

    def flush(self) -> None:
        """What the reactor does when the socket is writable."""
        self.transport.doWrite()

    def read(self) -> bytes:
        chunks = b""
        self.client.setblocking(False)
        try:
            while True:
                chunk = self.client.recv(65536)
                if not chunk:  # the server side closed: nothing more will come
                    break
                chunks += chunk
        except BlockingIOError:
            pass
        return chunks



    def assert_first_write_direct_then_held(self, sink: RequestSink) -> None:
        """A pass's first write reaches the socket at once; later ones wait,
        unqueued, for the end of the pass and leave together."""
        sink.write(b"data: 1\n\n")
        self.assertEqual(self.read(), b"9\r\ndata: 1\n\n\r\n")
        sink.write(b"data: 2\n\n")
        sink.write(b"data: 3\n\n")
        self.assertEqual(self.read(), b"")
        self.assertFalse(self.transport._tempDataBuffer or self.transport.dataBuffer)
        self.clock.advance(0)  # the reactor pass ends
        self.assertEqual(self.read(), b"9\r\ndata: 2\n\n\r\n9\r\ndata: 3\n\n\r\n")
