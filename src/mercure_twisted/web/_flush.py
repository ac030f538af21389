"""Bytes written to a TCP connection leave at the end of the reactor pass.

A Twisted TCP transport that is written to registers its socket for
writability (``epoll_ctl``), the next poll reports it writable, the bytes
are sent, and the socket is unregistered (``epoll_ctl`` again): for each
answer to a publish, two system calls and one more poll event around its
one ``send``.  With ``install``, ``tcp.Server.startWriting`` instead puts
the connection on a list that is flushed once, at the end of the current
reactor pass (``callLater(0)``), with the transport's own ``doWrite``:
what the socket takes is sent then, and only a connection whose socket
did not take everything is registered for writability, as before.
Measured on the benchmark's publish phase: +10% publishes/s with no
subscriber (A/B, 4 alternating pairs, every pair faster).

``twistd mercure`` installs it for its listening ports' connections (the
class attribute is the process's: clients, ``tcp.Client``, are not
concerned).  It relies on ``FileDescriptor.doWrite``'s return value and
the reactor's ``_disconnectSelectable``, as the reactor's own write path
does: ``tests/unit/test_flush.py`` fails if they change.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from twisted.internet import tcp
from twisted.logger import Logger

__all__ = ["install", "installed", "uninstall"]

_log = Logger(namespace="mercure.flush")

#: Twisted's own ``startWriting``, which registers the socket at once.
_register: Callable[[Any], None] = tcp.Server.startWriting
#: Connections written to in this reactor pass, in order (a dict: no repeat).
_pending: dict[Any, None] = {}
_scheduled = [False]


def _start_writing(transport: Any) -> None:
    """``tcp.Server.startWriting``, once installed: flush at the end of the pass."""
    if transport in _pending:
        return
    _pending[transport] = None
    if not _scheduled[0]:
        _scheduled[0] = True
        transport.reactor.callLater(0, _flush)


def _flush() -> None:
    _scheduled[0] = False
    transports = list(_pending)
    _pending.clear()
    for transport in transports:
        if not transport.connected:
            continue
        try:
            why = transport.doWrite()
        except BaseException:
            why = sys.exc_info()[1]
            _log.failure("writing to {transport} failed", transport=transport)
        if why:
            # What the reactor does with a write that ended the connection.
            transport.reactor._disconnectSelectable(transport, why, False)
        elif len(transport.dataBuffer) > transport.offset or transport._tempDataBuffer:
            _register(transport)  # the socket is full: wait until it is writable


def install() -> None:
    tcp.Server.startWriting = _start_writing  # type: ignore[method-assign]


def uninstall() -> None:
    tcp.Server.startWriting = _register  # type: ignore[method-assign]
    if _pending:  # nothing queued may be left waiting for a flush that changed
        _flush()


def installed() -> bool:
    return tcp.Server.startWriting is _start_writing  # type: ignore[comparison-overlap]
