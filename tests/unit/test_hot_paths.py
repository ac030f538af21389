"""The hot paths' reliance on Twisted internals, and what they save.

The direct socket write of ``RequestSink`` and its taking over of a
stream's connection (see ``web/_sse.py``) rely on private attributes of
twisted.web's ``Request`` and ``HTTPChannel`` and twisted.internet's TCP
``Connection``: these tests drive a real
``tcp.Server`` transport over a loopback TCP connection (with a memory reactor, so no
buffered write is ever flushed behind the test's back) and fail if those
attributes change or the fast path stops being taken.
"""

from __future__ import annotations

import gc
import weakref

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from mercure_twisted.web import _sse
from mercure_twisted.web._site import HubSite
from mercure_twisted.web._sse import ABORT_AFTER, RequestSink, StreamRecord, _tcp_transport

from ._loopback import LoopbackStream


class FastWriteTests(LoopbackStream):
    def test_private_attributes_exist(self) -> None:
        sink = self.open_stream()
        request = sink._request  # type: ignore[attr-defined]
        for name in ("chunked", "finished", "_disconnected", "sentLength", "channel"):
            self.assertTrue(hasattr(request, name), name)
        for name in ("TLS", "dataBuffer", "_tempDataBuffer", "disconnecting", "connected", "socket"):
            self.assertTrue(hasattr(self.transport, name), name)
        self.assertIs(request.channel.transport, self.transport)

    def test_queued_bytes_go_first(self) -> None:
        """Headers and the opening comment are queued: the next write queues too."""
        sink = self.open_stream()
        self.assertTrue(self.transport._tempDataBuffer or self.transport.dataBuffer)
        sink.write(b"data: one\n\n")
        self.assertEqual(self.read(), b"")
        self.flush()
        received = self.read()
        self.assertIn(b"Transfer-Encoding: chunked", received)
        self.assertTrue(received.endswith(b"3\r\n:\n\n\r\nb\r\ndata: one\n\n\r\n"), received)

    def test_sent_straight_to_the_socket(self) -> None:
        sink = self.open_stream()
        self.flush()
        self.read()
        request = sink._request  # type: ignore[attr-defined]
        before = request.sentLength
        sink.write(b"data: two\n\n")
        self.assertFalse(self.transport._tempDataBuffer or self.transport.dataBuffer)
        self.assertEqual(self.read(), b"b\r\ndata: two\n\n\r\n")
        self.assertEqual(request.sentLength, before + len(b"data: two\n\n"))

    def test_later_writes_of_a_reactor_pass_leave_together_at_its_end(self) -> None:
        sink = self.open_stream()
        self.flush()
        self.read()
        self.assert_first_write_direct_then_held(sink)
        # (Clock runs the next end of pass in the same advance; the reactor
        # would hold this one until its next pass.)
        sink.write(b"data: 4\n\n")
        self.clock.advance(0)
        self.assertEqual(self.read(), b"9\r\ndata: 4\n\n\r\n")

    def test_held_writes_go_out_before_the_end_of_the_stream(self) -> None:
        sink = self.open_stream()
        self.flush()
        self.read()
        sink.write(b"data: 1\n\n")
        sink.write(b"data: 2\n\n")
        sink.finish()
        self.flush()
        self.assertEqual(
            self.read(), b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"
        )
        self.assertEqual(_sse._held, {})

    def test_held_writes_of_a_lost_connection_are_dropped(self) -> None:
        sink = self.open_stream()
        self.flush()
        self.read()
        sink.write(b"data: 1\n\n")
        sink.write(b"data: 2\n\n")
        sink.release()
        self.assertEqual(_sse._held, {})
        self.clock.advance(0)
        self.assertEqual(self.read(), b"9\r\ndata: 1\n\n\r\n")

    def test_what_the_socket_does_not_take_is_queued_in_order(self) -> None:
        sink = self.open_stream()
        self.flush()
        self.read()
        big = b"data: " + b"x" * 4_000_000 + b"\n\n"
        sink.write(big)
        sink.write(b"data: after\n\n")
        queued = self.transport._tempDataBuffer or self.transport.dataBuffer
        self.assertTrue(queued)
        received = b""
        expected = b"%x\r\n%b\r\n" % (len(big), big) + b"d\r\ndata: after\n\n\r\n"
        for _ in range(10_000):
            if len(received) >= len(expected):
                break
            self.clock.advance(0)
            self.flush()
            received += self.read()
        self.assertEqual(received, expected)

    def test_http10_is_not_chunked_and_takes_the_ordinary_path(self) -> None:
        sink = self.open_stream(b"HTTP/1.0")
        self.flush()
        self.read()
        self.assertIsNone(_tcp_transport(sink._request))  # type: ignore[attr-defined]
        sink.write(b"data: x\n\n")
        self.flush()
        self.assertEqual(self.read(), b"data: x\n\n")

    def test_other_requests_take_the_ordinary_path(self) -> None:
        class Stub:
            chunked = 1
            finished = False
            _disconnected = False

        self.assertIsNone(_tcp_transport(Stub()))

    def test_a_wrapper_that_delegates_to_tcp_takes_the_ordinary_path(self) -> None:
        """A TLS wrapper (like ``TLSMemoryBIOProtocol``) passes unknown
        attributes to the TCP transport under it, whose ``TLS`` is False: the
        direct write must still never bypass the encryption."""
        sink = self.open_stream()
        self.flush()
        self.read()
        inner = self.transport

        class Delegating:
            def __getattr__(self, name: str) -> object:
                return getattr(inner, name)

        request = sink._request  # type: ignore[attr-defined]
        request.channel.transport = Delegating()
        self.assertFalse(request.channel.transport.TLS)
        self.assertIsNone(_tcp_transport(request))


class _Producer:
    def __init__(self) -> None:
        self.events: list[str] = []

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.events.append("stop")


class TakeOverTests(LoopbackStream):
    """A stream whose headers are out becomes its connection's protocol."""

    def make_site(self, resource: Resource, clock: Clock) -> Site:
        # The hub's Site (connections tracked, access log), as in ``twistd mercure``.
        return HubSite(resource, max_body_size=1024, reactor=clock)

    def take_over(self, request_line: bytes = b"GET /s?authorization=secret HTTP/1.1") -> tuple[RequestSink, _Producer]:
        self.protocol.dataReceived(request_line + b"\r\nHost: x\r\nUser-Agent: ua/1\r\n\r\n")
        [sink] = self.resource.sinks
        producer = _Producer()
        sink.register_producer(producer)  # type: ignore[arg-type]
        return sink, producer

    def test_the_sink_becomes_the_protocol_and_the_subscriber_the_producer(self) -> None:
        sink, producer = self.take_over()
        self.assertIs(self.transport.protocol, sink)
        self.assertIs(self.transport.producer, producer)
        self.assertIs(sink.transport, self.transport)
        self.assertIsInstance(sink._request, StreamRecord)  # type: ignore[attr-defined]
        self.assertEqual(set(self.site.connections._open), {sink})  # type: ignore[attr-defined]
        self.flush()
        received = self.read()
        self.assertIn(b"Transfer-Encoding: chunked", received)
        self.assertTrue(received.endswith(b"3\r\n:\n\n\r\n"), received)

    def test_twisted_web_objects_freed_without_the_cycle_collector(self) -> None:
        gc.disable()
        self.addCleanup(gc.enable)
        channel = weakref.ref(self.protocol._channel)  # type: ignore[attr-defined]
        protocol = weakref.ref(self.protocol)
        sink, _ = self.take_over()
        del self.protocol
        request = weakref.ref(self.resource.request)
        del self.resource.request
        self.assertIsNone(request())
        self.assertIsNone(channel())
        self.assertIsNone(protocol())

    def test_events_framed_as_chunks_straight_to_the_socket(self) -> None:
        sink, _ = self.take_over()
        self.flush()
        self.read()
        self.assert_first_write_direct_then_held(sink)

    def test_an_empty_write_is_not_the_last_chunk(self) -> None:
        sink, _ = self.take_over()
        self.flush()
        self.read()
        sink.write(b"")
        sink.write(b"data: 1\n\n")
        self.assertEqual(self.read(), b"9\r\ndata: 1\n\n\r\n")

    def test_events_wait_behind_queued_bytes(self) -> None:
        sink, _ = self.take_over()
        sink.write(b"data: 1\n\n")  # the headers are still queued
        self.assertEqual(self.read(), b"")
        self.flush()
        self.assertTrue(self.read().endswith(b"3\r\n:\n\n\r\n9\r\ndata: 1\n\n\r\n"))

    def test_clean_end_last_chunk_access_line_and_close(self) -> None:
        sink, producer = self.take_over()
        self.flush()
        self.read()
        sink.write(b"data: 1\n\n")
        sink.write(b"data: 2\n\n")
        with capturedLogs() as events:
            sink.finish()
        self.assertIsNone(self.transport.producer)
        self.assertTrue(self.transport.disconnecting)
        self.flush()
        self.assertEqual(self.read(), b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n")
        [access] = [e for e in events if e.get("log_namespace") == "mercure.access"]
        self.assertEqual(access["status"], 200)
        self.assertEqual(access["method"], "GET")
        self.assertEqual(access["user_agent"], "ua/1")
        self.assertNotIn("secret", access["uri"])
        self.assertEqual(access["bytes"], len(b":\n\n") + 2 * len(b"data: 1\n\n"))
        self.assertEqual(producer.events, [])

    def test_a_connection_that_does_not_flush_its_end_is_dropped(self) -> None:
        sink, _ = self.take_over()
        aborted: list[bool] = []
        self.transport.abortConnection = lambda: aborted.append(True)  # type: ignore[method-assign]
        sink.finish()
        self.clock.advance(ABORT_AFTER - 1)
        self.assertEqual(aborted, [])
        self.clock.advance(1)
        self.assertEqual(aborted, [True])

    def test_client_gone_tells_the_subscriber_and_shutdown(self) -> None:
        sink, producer = self.take_over()
        lost: list[bool] = []
        sink.on_lost = lambda: lost.append(True)
        waiting = self.site.connections.close_all()
        self.assertFalse(waiting.called)
        self.transport.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(producer.events, ["stop"])
        self.assertEqual(lost, [True])
        self.assertTrue(waiting.called)
        sink.write(b"data: late\n\n")
        sink.finish()

    def test_close_after_the_end_cancels_the_abort(self) -> None:
        sink, _ = self.take_over()
        sink.finish()
        self.transport.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_what_the_client_sends_afterwards_pauses_reading(self) -> None:
        sink, _ = self.take_over()
        self.flush()
        self.read()
        self.transport.startReading()
        sink.dataReceived(b"GET /next HTTP/1.1\r\n\r\n")
        self.assertEqual(self.read(), b"")
        self.assertEqual(len(self.resource.sinks), 1)

    def test_pipelined_request_keeps_twisted_web(self) -> None:
        self.protocol.dataReceived(
            b"GET /s HTTP/1.1\r\nHost: x\r\n\r\nGET /t HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        [sink] = self.resource.sinks
        sink.register_producer(_Producer())  # type: ignore[arg-type]
        self.assertIs(self.transport.protocol, self.protocol)
        self.assertNotIsInstance(sink._request, StreamRecord)  # type: ignore[attr-defined]

    def test_http10_keeps_twisted_web(self) -> None:
        sink, _ = self.take_over(b"GET /s HTTP/1.0")
        self.assertIs(self.transport.protocol, self.protocol)

    def test_private_attributes_of_the_take_over_exist(self) -> None:
        self.protocol.dataReceived(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
        channel = self.protocol._channel  # type: ignore[attr-defined]
        [sink] = self.resource.sinks
        self.assertEqual(channel.requests, [sink._request])  # type: ignore[attr-defined]
        self.assertEqual(channel._dataBuffer, [])
        self.assertIs(self.transport.producer, channel)
        self.assertIs(self.transport.protocol, self.protocol)


class StreamFootprintTests(SynchronousTestCase):
    """What an open stream keeps (see ``BoundedRequest`` and ``start_stream``)."""

    def test_producer_attributes_live_in_slots(self) -> None:
        from mercure_twisted.web._site import BoundedRequest
        from twisted.web.test.requesthelper import DummyChannel

        request = BoundedRequest(DummyChannel())
        self.assertIsNone(request.producer)
        request.registerProducer(_Producer(), True)
        self.assertNotIn("producer", request.__dict__)
        self.assertNotIn("streamingProducer", request.__dict__)
        self.assertIsInstance(request.producer, _Producer)
        request.unregisterProducer()
        self.assertIsNone(request.producer)

    def test_response_headers_dropped_once_sent(self) -> None:
        case = FastWriteTests("test_private_attributes_exist")
        case.setUp()
        try:
            sink = case.open_stream()
            request = sink._request  # type: ignore[attr-defined]
            self.assertEqual(list(request.responseHeaders.getAllRawHeaders()), [])
            case.flush()
            self.assertIn(b"X-Accel-Buffering: no", case.read())
        finally:
            case.doCleanups()


    def test_derived_hub_url_dropped_once_the_stream_started(self) -> None:
        from mercure_twisted.web._site import BoundedRequest
        from mercure_twisted.web._sse import start_stream
        from twisted.web.test.requesthelper import DummyChannel

        request = BoundedRequest(DummyChannel())
        request.method, request.clientproto = b"GET", b"HTTP/1.1"
        request.derived_hub_url = "http://x/.well-known/mercure"
        start_stream(request)
        self.assertTrue(request.startedWriting)
        self.assertIsNone(request.derived_hub_url)


class FormBodyTests(SynchronousTestCase):
    """``BoundedRequest`` leaves a publish body to the hub (see ``web/_site.py``)."""

    def test_twisted_still_has_the_switch(self) -> None:
        from twisted.web.test.requesthelper import DummyChannel

        self.assertIs(Request(DummyChannel())._parsePOSTFormSubmission, True)  # type: ignore[attr-defined]

    def test_form_body_not_parsed_into_args(self) -> None:
        from mercure_twisted.web._site import BoundedRequest
        from twisted.web.test.requesthelper import DummyChannel

        body = b"topic=https%3A%2F%2Fexample.com%2F1&data=x"
        for factory, parsed in ((BoundedRequest, False), (Request, True)):
            request = factory(DummyChannel())
            request.process = lambda: None  # type: ignore[method-assign]
            request.requestHeaders.setRawHeaders(
                b"content-type", [b"application/x-www-form-urlencoded"]
            )
            request.gotLength(len(body))
            request.handleContentChunk(body)
            request.requestReceived(b"POST", b"/.well-known/mercure", b"HTTP/1.1")
            self.assertEqual(b"topic" in request.args, parsed, factory)
            self.assertEqual(request.content.read(), body)


class TemplatePrefixIndexTests(SynchronousTestCase):
    """Templates filed by literal prefix find exactly what evaluating all finds."""

    TEMPLATES = [
        "https://example.com/books/{id}",
        "https://example.com/books/{id}/reviews{/rid}",
        "https://example.com/{+path}",
        "{scheme}://example.com/x",
        "https://example.com/caf\u00e9/{id}",
        "https://example.com/a b/{id}",
        "https://example.com/feeds/1/{id}",
        "https://example.com/feeds/12/{id}",
        "https://example.com/books{?q}",
    ]
    TOPICS = [
        "https://example.com/books/1",
        "https://example.com/books/1/reviews/2",
        "https://example.com/anything/at/all",
        "urn:x://example.com/x",
        "https://example.com/caf%C3%A9/3",
        "https://example.com/caf\u00e9/3",
        "https://example.com/a%20b/3",
        "https://example.com/feeds/12/7",
        "https://example.com/feeds/1/7",
        "https://example.com/books?q=1",
        "https://example.com/books/{id}",
        "short",
    ]

    def test_same_as_evaluating_every_template(self) -> None:
        from mercure_twisted.index import TopicIndex
        from mercure_twisted.matching import compile_selector

        index: TopicIndex[str] = TopicIndex()
        matchers = {t: compile_selector(t) for t in self.TEMPLATES}
        for template, matcher in matchers.items():
            index.add(template, [matcher])
        for topic in self.TOPICS:
            expected = {t for t, m in matchers.items() if m.matches(topic)}
            self.assertEqual(set(index.candidates((topic,))), expected, topic)
        self.assertEqual(
            set(index.candidates(tuple(self.TOPICS))),
            {t for t, m in matchers.items() if any(m.matches(x) for x in self.TOPICS)},
        )
        for template, matcher in matchers.items():
            index.remove(template, [matcher])
        self.assertEqual(index._prefixed, {})  # type: ignore[attr-defined]
        self.assertEqual(list(index.candidates(tuple(self.TOPICS))), [])

