"""The SSE response: headers that defeat buffering, and the stream as a sink.

Once its headers are out, a stream needs nothing of twisted.web but chunk
framing, yet twisted.web's request and channel (parsed headers, query
arguments, paths, addresses, Deferreds, the parser's state: 3.5 of the
6.1 KB an idle subscriber took, tracemalloc) would live as long as the
stream does.  On a
chunked HTTP/1.1 response over plain TCP, ``RequestSink.register_producer``
takes the connection over instead: the sink becomes the transport's
protocol, the subscriber its producer, and twisted.web's objects are freed.
The sink then frames chunks itself, writes the access-log line when the
stream ends cleanly (``StreamRecord`` keeps what the line needs), and
closes the connection after the last chunk (clients reconnect on a new
one).  TLS, HTTP/2, HTTP/1.0 and a client that pipelined another request
keep twisted.web's response for the life of the stream.  This replaces
twisted.web's objects under a live request, which Twisted does not offer:
``tests/unit/test_hot_paths.py`` fails if what it relies on changes.

Writing one event to ten thousand streams is the hub's hottest loop.
twisted.web queues every write in the transport and sends it on the next
reactor iteration (one ``epoll_ctl`` to start watching for writability, the
``send``, another ``epoll_ctl`` to stop): three system calls and a pass
through the reactor per stream and event.  When nothing is queued before
it, ``RequestSink.write`` sends the chunk straight to the socket instead,
as libuv's ``uv_try_write`` does for Node, and queues through twisted.web
only what the socket did not take.  It relies on private attributes of
``twisted.web.http.Request`` and ``twisted.internet.tcp.Connection``;
``tests/unit/test_hot_paths.py`` fails if they change, and any other
transport (TLS, HTTP/2, a test double) takes the ordinary path.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import tcp
from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocol, IPushProducer, IReactorTime
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from zope.interface import implementer

from ..update import encode_comment

STREAM_HEADERS = (
    (b"Content-Type", b"text/event-stream; charset=utf-8"),
    # "private" as draft-07 asks when the token may have come in the query;
    # no-transform and X-Accel-Buffering stop proxies from buffering.
    (b"Cache-Control", b"private, no-cache, no-store, must-revalidate, max-age=0, no-transform"),
    (b"X-Accel-Buffering", b"no"),
    (b"X-Content-Type-Options", b"nosniff"),
)

OPENING = encode_comment()
#: The last chunk of a stream.
LAST_CHUNK = b"0\r\n\r\n"
#: Seconds a taken-over connection may take to flush its last bytes once
#: closed, before it is dropped (twisted.web's ``abortTimeout``).
ABORT_AFTER = 15.0


class StreamRecord:
    """What the access-log line of a taken-over stream needs, kept instead
    of its request: it answers what ``HubSite.log`` asks of a request."""

    __slots__ = ("_client", "method", "uri", "path", "clientproto", "_referer", "_agent",
                 "started_at", "sentLength")

    code = 200

    def __init__(self, request: Any) -> None:
        self._client: IAddress = request.getClientAddress()
        self.method: bytes = request.method
        self.uri: bytes = request.uri
        self.path: bytes = request.path
        self.clientproto: bytes = request.clientproto
        self._referer: bytes | None = request.getHeader(b"referer")
        self._agent: bytes | None = request.getHeader(b"user-agent")
        self.started_at: float | None = getattr(request, "started_at", None)
        self.sentLength: int = request.sentLength

    def getClientAddress(self) -> IAddress:
        return self._client

    def getHeader(self, name: bytes) -> bytes | None:
        name = name.lower()
        if name == b"referer":
            return self._referer
        if name == b"user-agent":
            return self._agent
        return None


@implementer(IProtocol)
class RequestSink:
    """The subscriber's ``StreamSink``: a twisted.web response until its
    headers are out, then, where it can be, the connection itself."""

    __slots__ = ("_request", "_transport", "_site", "_finished", "on_lost", "_clock",
                 "_direct_pass", "_closing")

    def __init__(self, request: IRequest) -> None:
        #: twisted.web's request; once the connection is taken over, its
        #: ``StreamRecord``.
        self._request: Any = request
        #: The TCP transport, once taken over (this sink is its protocol);
        #: kept to the end, so that the sink never goes back to ``_request``.
        self._transport: Any = None
        site = getattr(getattr(request, "channel", None), "site", None)
        self._site: Any = site
        self._finished = False
        # The site's reactor, which says when a reactor pass ends (below).
        self._clock: IReactorTime | None = getattr(site, "reactor", None)
        self._direct_pass = -1
        #: Called once if the client goes away before the stream ended.
        self.on_lost: Callable[[], None] | None = None
        #: Drops a taken-over connection that does not flush its last bytes.
        self._closing: IDelayedCall | None = None
        request.notifyFinish().addBoth(self._gone)  # type: ignore[attr-defined]

    def _gone(self, result: object) -> None:
        self._finished = True
        if isinstance(result, Failure) and self.on_lost is not None:
            on_lost, self.on_lost = self.on_lost, None
            on_lost()

    def write(self, data: bytes) -> None:
        """The first write of a reactor pass goes straight to the socket;
        later ones in the same pass are held and leave together, in one
        ``send``, when the pass ends: a burst of updates costs one system
        call per stream, not one per update.  Bytes already queued in the
        transport go first.  A response this sink cannot write to directly
        (not chunked, TLS, HTTP/2, no reactor) takes twisted.web's path."""
        if self._finished or not data:
            return
        held = _held.get(self)
        if held is not None:
            held.append(_chunk(data))
            self._request.sentLength += len(data)
            return
        transport = self._transport
        if transport is None and self._clock is not None:
            transport = _tcp_transport(self._request)
        if transport is None:
            self._request.write(data)
            return
        self._request.sentLength += len(data)
        if transport.dataBuffer or transport._tempDataBuffer:
            transport.write(_chunk(data))  # behind what is queued
        elif self._direct_pass != _passes[0]:
            _send_chunks(transport, _chunk(data))
            self._direct_pass = _passes[0]
            _end_of_pass(self._clock)  # type: ignore[arg-type]
        else:
            _held[self] = [_chunk(data)]

    def _release_held(self, chunks: list[bytes]) -> None:
        transport = self._transport or _tcp_transport(self._request)
        if transport is None or not transport.connected:  # gone meanwhile
            return
        _send_chunks(transport, b"".join(chunks) if len(chunks) > 1 else chunks[0])
        self._direct_pass = _passes[0]
        if self._clock is not None:
            _end_of_pass(self._clock)

    def finish(self) -> None:
        if self._finished:
            return
        held = _held.pop(self, None)
        if held:
            self._release_held(held)
        self.release()
        transport = self._transport
        if transport is None:
            self._request.finish()
            return
        # The stream ended cleanly: its last chunk, its access-log line, and
        # the connection closed once both are written.
        self.on_lost = None
        transport.write(LAST_CHUNK)
        self._site.log(self._request)  # taken over only with a site
        transport.loseConnection()
        self._closing = self._clock.callLater(  # type: ignore[union-attr]
            ABORT_AFTER, transport.abortConnection
        )

    def release(self) -> None:
        self._finished = True
        _held.pop(self, None)
        transport = self._transport
        if transport is not None:
            if transport.producer is not None:
                transport.unregisterProducer()
            return
        request = self._request
        if getattr(request, "producer", None) is None:
            return
        if getattr(request, "channel", None) is None:
            # Already disconnected: there is no channel to tell, but the
            # request must not think a producer is still attached.
            request.producer = None  # type: ignore[attr-defined]
        else:
            request.unregisterProducer()  # type: ignore[attr-defined]

    def abort(self) -> None:
        self._finished = True
        _held.pop(self, None)
        if self._transport is not None:
            self._transport.abortConnection()
            return
        channel = getattr(self._request, "channel", None)
        transport = getattr(channel, "transport", None)
        if transport is None:
            # An HTTP/2 stream is its own channel and has no transport:
            # aborting it resets that stream alone (RST_STREAM), not the
            # connection that carries the client's other streams.
            abort_stream = getattr(channel, "abortConnection", None)
            if abort_stream is not None:
                abort_stream()
            return
        abort = getattr(transport, "abortConnection", None)
        (abort or transport.loseConnection)()

    def register_producer(self, producer: IPushProducer) -> None:
        """Register the subscriber, on the connection itself when this sink
        can take it over (once the stream's headers are out)."""
        if self._take_over():
            self._transport.registerProducer(producer, True)
        else:
            self._request.registerProducer(producer, True)

    def _take_over(self) -> bool:
        """Become the protocol of a plain-TCP HTTP/1.1 connection whose only
        request is this stream, and let twisted.web's request and channel go."""
        request = self._request
        transport = _tcp_transport(request)
        if transport is None or self._finished or self._site is None or self._clock is None:
            return False
        try:
            channel = request.channel
            if channel.requests != [request] or channel._dataBuffer:
                return False  # another request is pipelined behind this one
            record = StreamRecord(request)
        except AttributeError:
            return False
        previous = transport.protocol
        transport.unregisterProducer()  # the channel
        transport.protocol = self
        self._transport = transport
        self._request = record
        connections = getattr(self._site, "connections", None)
        if connections is not None:
            connections.adopt(previous, self)
        # Nothing may reach the socket through twisted.web any more, and its
        # objects must not keep one another alive until the next cycle
        # collection: a finished request refuses writes, a channel without
        # its request and transport has nothing to act on.
        request.finished = 1
        del channel.requests[:]
        channel.transport = None
        transport.resumeProducing()  # read, so that a client leaving is seen
        return True

    # -- IProtocol, once the connection is taken over -----------------------

    @property
    def transport(self) -> Any:
        """The taken-over transport (what shutdown closes), or None."""
        return self._transport

    def makeConnection(self, transport: Any) -> None:
        """Not used: the sink takes over a connection already made."""

    def connectionMade(self) -> None:
        """Not used: the sink takes over a connection already made."""

    def dataReceived(self, data: bytes) -> None:
        """A subscriber has nothing more to say once its request is read:
        what it sends is dropped, and reading pauses (as twisted.web's does
        past its buffer), so that a client cannot make the hub spin on it."""
        if self._transport is not None:
            self._transport.stopReading()

    def connectionLost(self, reason: Failure) -> None:
        self._finished = True
        _held.pop(self, None)
        if self._closing is not None:
            if self._closing.active():
                self._closing.cancel()
            self._closing = None
        connections = getattr(self._site, "connections", None)
        if connections is not None:
            connections.lost(self)
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()


#: [reactor passes counted, an end of pass scheduled]: the count moves on
#: once per reactor pass in which something was sent directly.
_passes = [0, 0]
#: Chunks written to a stream after its direct send of this reactor pass.
_held: dict[RequestSink, list[bytes]] = {}


def _end_of_pass(clock: IReactorTime) -> None:
    if not _passes[1]:
        _passes[1] = 1
        clock.callLater(0, _next_pass)


def _next_pass() -> None:
    _passes[0] += 1
    _passes[1] = 0
    if _held:
        held = list(_held.items())
        _held.clear()
        for sink, chunks in held:
            sink._release_held(chunks)


_last_chunk: tuple[bytes, bytes] = (b"", b"")


def _chunk(data: bytes) -> bytes:
    """``data`` in HTTP/1.1 chunked framing; one event goes to every stream
    in a row, so the last framing is kept and reused."""
    global _last_chunk
    last, chunk = _last_chunk
    if last is data:
        return chunk
    chunk = b"%x\r\n%b\r\n" % (len(data), data)
    _last_chunk = (data, chunk)
    return chunk


def _tcp_transport(request: Any) -> Any:
    """The plain TCP transport of a chunked HTTP/1.1 response that is still
    open, or None (headers not sent, not chunked, TLS, HTTP/2, closing)."""
    try:
        if not request.chunked or request.finished or request._disconnected:
            return None
        transport = request.channel.transport
        # Only a plain tcp.Connection: a TLS wrapper must encrypt what it
        # is given, whatever its TLS attribute says.
        if not isinstance(transport, tcp.Connection):
            return None
        if transport.TLS or transport.disconnecting or not transport.connected:
            return None
        transport.socket, transport.dataBuffer, transport._tempDataBuffer
    except AttributeError:
        return None
    return transport


def _send_chunks(transport: Any, chunks: bytes) -> None:
    """Straight to the socket when nothing is queued before them; whatever
    the socket does not take (or an error) is left to twisted.web."""
    if transport.dataBuffer or transport._tempDataBuffer:
        transport.write(chunks)
        return
    try:
        sent = transport.socket.send(chunks)
    except BlockingIOError:
        sent = 0
    except OSError:  # twisted.web sees the error and closes the connection
        sent = 0
    if sent < len(chunks):
        transport.write(chunks[sent:])


def start_stream(request: IRequest) -> None:
    """Send the headers and an opening comment, so clients see the stream open."""
    request.setResponseCode(200)
    for name, value in STREAM_HEADERS:
        request.setHeader(name, value)
    request.write(OPENING)
    if getattr(request, "startedWriting", False):
        # The headers are on the wire and nothing reads them again: a
        # stream that lives for hours need not keep them (~1 KB each),
        # nor the hub URL they were derived with (HubWeb.hub_url, 0.1 KB).
        request.responseHeaders = Headers()
        if getattr(request, "derived_hub_url", None) is not None:
            request.derived_hub_url = None  # type: ignore[attr-defined]
