"""A slow subscriber on HTTP/2 is cut off by resetting its stream alone.

Drives twisted.web's real ``H2Connection`` in memory with the ``h2``
library as the client: the stream of the aborted subscriber gets a
RST_STREAM, the connection (and the client's other streams) stay.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from tests.unit._loopback import StreamResource


class H2AbortTests(SynchronousTestCase):
    def test_abort_resets_only_that_stream(self) -> None:
        from twisted.web._http2 import H2Connection

        reactor = MemoryReactorClock()
        resource = StreamResource()
        site = Site(resource, reactor=reactor)
        server = H2Connection(reactor)
        server.site = site
        server.factory = site
        server.requestFactory = site.requestFactory
        transport = StringTransport()
        server.makeConnection(transport)

        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        client.initiate_connection()
        headers = [(":method", "GET"), (":path", "/s"), (":scheme", "https"), (":authority", "x")]
        client.send_headers(1, headers, end_stream=True)
        client.send_headers(3, headers, end_stream=True)
        server.dataReceived(client.data_to_send())
        reactor.advance(0)
        self.assertEqual(len(resource.sinks), 2)

        resource.sinks[0].abort()
        reactor.advance(0)
        events = client.receive_data(transport.value())
        resets = [e.stream_id for e in events if isinstance(e, h2.events.StreamReset)]
        self.assertEqual(resets, [1])
        self.assertFalse(any(isinstance(e, h2.events.ConnectionTerminated) for e in events))
        self.assertFalse(transport.disconnecting)

        # The other stream still carries events.
        transport.clear()
        resource.sinks[1].write(b"data: still here\n\n")
        reactor.advance(0)
        events = client.receive_data(transport.value())
        data = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
        self.assertIn(b"still here", data)
