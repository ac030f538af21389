"""Graceful shutdown within a bound: what ``twistd mercure`` does on SIGTERM.

The reactor stops the service tree before it tears connections down.
``HubTree.stopService`` then:

1. stops its children: the listeners stop accepting, and the hub ends every
   stream cleanly (the terminating chunk, so ``EventSource`` clients
   reconnect, elsewhere, with ``Last-Event-ID``) and flushes its transport;
2. closes every connection the sites still have (``loseConnection``:
   buffered bytes are written first, so no stream loses its last events,
   and idle keep-alive connections go too);
3. waits for all of that for at most ``shutdown_timeout`` seconds, then
   aborts the connections left (a client that stopped reading) and lets the
   process exit.

Without step 2 the reactor would drop every connection with its unwritten
bytes the moment the services had stopped.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.interfaces import IProtocol, IReactorTime
from twisted.logger import ILogObserver, Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.components import Componentized

__all__ = ["HubTree", "OpenConnections"]


class OpenConnections:
    """The live connections of one site, so that shutdown can close them."""

    def __init__(self) -> None:
        self._open: set[IProtocol] = set()
        self._empty: list[Deferred[None]] = []

    def track(self, protocol: IProtocol) -> None:
        """Remember ``protocol`` until its ``connectionLost``."""
        self._open.add(protocol)
        lost: Callable[[Any], None] = protocol.connectionLost

        def connection_lost(reason: Any) -> None:
            self._open.discard(protocol)
            try:
                lost(reason)
            finally:
                self._tell_if_empty()

        # An instance attribute shadows the class's method: no wrapper
        # protocol sits between the transport and the channel on every write.
        setattr(protocol, "connectionLost", connection_lost)

    def adopt(self, previous: IProtocol, protocol: IProtocol) -> None:
        """``protocol`` took the connection over from ``previous`` (a
        subscriber's stream, ``web._sse``): it calls ``lost`` itself when
        the connection ends, and ``previous`` is forgotten."""
        self._open.discard(previous)
        try:
            delattr(previous, "connectionLost")  # the hook ``track`` set
        except AttributeError:
            pass
        self._open.add(protocol)

    def lost(self, protocol: IProtocol) -> None:
        """The connection of ``protocol`` ended."""
        self._open.discard(protocol)
        self._tell_if_empty()

    def _tell_if_empty(self) -> None:
        if not self._open:
            waiting, self._empty = self._empty, []
            for d in waiting:
                d.callback(None)

    def __len__(self) -> int:
        return len(self._open)

    def close_all(self) -> Deferred[None]:
        """``loseConnection`` on every connection; fires once all are gone.

        Over TLS, ``loseConnection`` sends close_notify and then waits for
        the peer's: an idle keep-alive client, which is not reading, never
        sends it, and would hold the stop until the bound.  The TCP
        connection under the TLS layer is closed right after ours is sent
        (RFC 8446 section 6.1 lets the closer not wait for the answer); it
        writes everything already encrypted first, so nothing is lost.
        """
        for protocol in list(self._open):
            transport = _transport_of(protocol)
            if transport is not None:
                transport.loseConnection()
                if isinstance(transport, TLSMemoryBIOProtocol) and transport.transport is not None:
                    transport.transport.loseConnection()
        if not self._open:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._empty.append(d)
        return d

    def abort_all(self) -> int:
        """Drop every connection left now; the number dropped."""
        left = list(self._open)
        for protocol in left:
            transport = _transport_of(protocol)
            if transport is None:
                continue
            abort = getattr(transport, "abortConnection", None)
            (abort or transport.loseConnection)()
        return len(left)


def _transport_of(protocol: IProtocol) -> Any:
    """The transport of a connection; twisted.web's protocol that chooses
    between HTTP/1.1 and HTTP/2 keeps it on the channel it wraps."""
    transport = getattr(protocol, "transport", None)
    if transport is None:
        transport = getattr(getattr(protocol, "_channel", None), "transport", None)
    return transport


class HubTree(MultiService):
    """The top of ``twistd mercure``'s service tree: bounded graceful stop,
    and the log observer of ``log_format`` handed to twistd."""

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        connections: Sequence[OpenConnections] = (),
        shutdown_timeout: float = 10.0,
        log_observer: ILogObserver | None = None,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._connections = tuple(connections)
        self._timeout = shutdown_timeout
        self._log_observer = log_observer

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)
        # twistd wraps the tree in an Application after makeService and then
        # asks it for an ILogObserver before it starts logging: that is how
        # a plugin chooses its log format without --logger.
        if self._log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self._log_observer)

    def stopService(self) -> Deferred[None]:
        open_at_start = sum(len(c) for c in self._connections)
        self.log.info(
            "stopping: no new connections; ending streams and closing {connections} "
            "connection(s) within {timeout} s",
            connections=open_at_start, timeout=self._timeout,
        )
        done: Deferred[None] = Deferred()
        timer = None

        def finished(_: object = None) -> None:
            if timer is not None and timer.active():
                timer.cancel()
            if not done.called:
                done.callback(None)

        def timed_out() -> None:
            aborted = sum(c.abort_all() for c in self._connections)
            self.log.warn(
                "shutdown_timeout ({timeout} s) reached: aborted {aborted} connection(s)",
                timeout=self._timeout, aborted=aborted,
            )
            finished()

        def close_connections(_: object) -> Deferred[Any]:
            return DeferredList([c.close_all() for c in self._connections])

        children = maybeDeferred(super().stopService)
        children.addBoth(close_connections)
        children.addBoth(finished)
        if self._timeout > 0 and not done.called:
            timer = self._clock.callLater(self._timeout, timed_out)
        return done
