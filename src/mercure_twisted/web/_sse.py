"""The SSE response: headers that defeat buffering, and the request as a sink."""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

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


class RequestSink:
    """Adapts a twisted.web request to the subscriber's ``StreamSink``."""

    __slots__ = ("_request", "_finished", "on_lost")

    def __init__(self, request: IRequest) -> None:
        self._request = request
        self._finished = False
        #: Called once if the client goes away before the stream ended.
        self.on_lost: Callable[[], None] | None = None
        request.notifyFinish().addBoth(self._gone)  # type: ignore[attr-defined]

    def _gone(self, result: object) -> None:
        self._finished = True
        if isinstance(result, Failure) and self.on_lost is not None:
            on_lost, self.on_lost = self.on_lost, None
            on_lost()

    def write(self, data: bytes) -> None:
        if not self._finished:
            self._request.write(data)

    def finish(self) -> None:
        if self._finished:
            return
        self.release()
        self._request.finish()

    def release(self) -> None:
        self._finished = True
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
        transport = getattr(getattr(self._request, "channel", None), "transport", None)
        if transport is None:
            return
        abort = getattr(transport, "abortConnection", None)
        (abort or transport.loseConnection)()

    def register_producer(self, producer: IPushProducer) -> None:
        self._request.registerProducer(producer, True)  # type: ignore[attr-defined]


def start_stream(request: IRequest) -> None:
    """Send the headers and an opening comment, so clients see the stream open."""
    request.setResponseCode(200)
    for name, value in STREAM_HEADERS:
        request.setHeader(name, value)
    request.write(OPENING)
