"""Every connection's attributes in CPython's compact layout, whatever the load at start.

CPython keeps the attributes of an instance in a small array indexed by a
table of names that its whole class shares, as long as each name is in that
table.  The table only takes new names while the class is young: each new
instance lowers how many more it accepts, down to one (CPython 3.11's
``init_inline_values``).  twisted.internet and twisted.web set several names
late in a connection's life: the write buffer's on the first write, the
parser's on the first request line, the producer's when a stream opens.  A
hub that starts under a reconnection storm accepts hundreds of connections
before the first of them has sent its request, those names miss the table,
and from then on every instance that sets them carries a private dict
instead: 0.55 KB more for each TCP transport and each HTTP channel, 1.2 KB of
an idle subscriber's 7 (tracemalloc over 2,000 subscribers opened at once).

Setting each such name once on a throwaway instance, before the first real
one exists, puts them all in the table.  Where the interpreter lays out
attributes otherwise, this costs one small object per class and changes
nothing.  ``tests/unit/test_footprint.py`` fails when Twisted starts setting
a name that is not listed here.
"""

from __future__ import annotations

from typing import Iterable

from twisted.internet import tcp
from twisted.web import http

__all__ = ["register_attribute_names", "register_connection_attributes"]

#: What ``tcp.Server`` and its bases set over a connection's life.
TCP_SERVER_ATTRIBUTES = (
    "reactor", "_tempDataBuffer", "_tempDataLen", "socket", "fileno", "protocol",
    "server", "client", "sessionno", "hostname", "logstr", "repstr", "connected",
    "producer", "streamingProducer", "dataBuffer", "offset", "disconnecting",
    "disconnected", "_writeDisconnected", "_writeDisconnecting", "producerPaused",
    "_aborting", "doRead", "doWrite", "_addressType",
)

#: What ``http.HTTPChannel`` and its bases set while serving requests (the
#: table holds 29 names: the rare ones, a timed-out client's, are left out).
HTTP_CHANNEL_ATTRIBUTES = (
    "requests", "_handlingRequest", "_dataBuffer", "_transferDecoder", "factory",
    "callLater", "timeOut", "requestFactory", "site", "connectionLost", "connected",
    "transport", "_TimeoutMixin__timeoutCall", "_networkProducer", "_busyReceiving",
    "_buffer", "_receivedHeaderSize", "_HTTPChannel__first_line", "_command", "_path",
    "_version", "_HTTPChannel__header", "_receivedHeaderCount", "persistent", "length",
    "_savedTimeOut", "line_mode", "_requestProducer", "_requestProducerStreaming",
)

#: What twisted.web's ``Request`` and the hub's subclass set while a request
#: is read and answered (what is set as it ends, ``finished``, is left out).
REQUEST_ATTRIBUTES = (
    "notifications", "channel", "client", "host", "requestHeaders", "received_cookies",
    "responseHeaders", "cookies", "transport", "queued", "_parsePOSTFormSubmission",
    "_adapterCache", "content", "args", "method", "uri", "clientproto", "path", "site",
    "prepath", "postpath", "sitepath", "code", "code_message", "startedWriting",
    "chunked", "sentLength", "_stored",
)


def register_attribute_names(cls: type, names: Iterable[str]) -> None:
    """Put ``names`` in the attribute table ``cls``'s instances share."""
    placeholder: object = object.__new__(cls)
    for name in names:
        object.__setattr__(placeholder, name, None)


def register_connection_attributes(request_class: type) -> None:
    """Register the names of every class a hub connection is made of."""
    register_attribute_names(tcp.Server, TCP_SERVER_ATTRIBUTES)
    register_attribute_names(http.HTTPChannel, HTTP_CHANNEL_ATTRIBUTES)
    register_attribute_names(request_class, REQUEST_ATTRIBUTES)
