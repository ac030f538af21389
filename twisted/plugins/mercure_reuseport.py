"""``reuseport:PORT[:interface=ADDR][:backlog=N]``: a TCP server endpoint with SO_REUSEPORT.

Several ``twistd mercure`` processes on one machine (one per core, the
Redis transport keeps them one hub) can then listen on the same port, and
the kernel spreads the new connections among them.  Twisted's ``tcp:``
endpoint has no such option: this one binds the socket itself and hands it
to ``reactor.adoptStreamPort``.  Linux 3.9+ and the BSDs; every process
must use ``reuseport:`` (a plain ``tcp:`` listener on the port refuses the
others, as before).

Self-contained on purpose: a plugin module imports nothing of the hub, so
that ``twistd --help`` never breaks on the hub's imports.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import defer, interfaces
from twisted.internet.error import CannotListenError
from twisted.plugin import IPlugin
from zope.interface import implementer

DEFAULT_BACKLOG = 4096


@implementer(interfaces.IStreamServerEndpoint)
class ReusePortEndpoint:
    """Listens on ``(interface, port)`` with SO_REUSEADDR and SO_REUSEPORT."""

    def __init__(self, reactor: Any, port: int, interface: str = "", backlog: int = DEFAULT_BACKLOG) -> None:
        self._reactor = reactor
        self._port = port
        self._interface = interface
        self._backlog = backlog

    def listen(self, factory: Any) -> defer.Deferred[Any]:
        return defer.execute(self._listen, factory)

    def _listen(self, factory: Any) -> Any:
        family = socket.AF_INET6 if ":" in self._interface else socket.AF_INET
        if not hasattr(socket, "SO_REUSEPORT"):
            raise CannotListenError(self._interface, self._port,
                                    OSError("SO_REUSEPORT is not available on this system"))
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self._interface, self._port))
            sock.listen(self._backlog)
            sock.setblocking(False)
            # adoptStreamPort duplicates the descriptor: ours is closed below.
            return self._reactor.adoptStreamPort(sock.fileno(), family, factory)
        except OSError as e:
            raise CannotListenError(self._interface, self._port, e) from None
        finally:
            sock.close()


@implementer(IPlugin, interfaces.IStreamServerEndpointStringParser)
class ReusePortParser:
    prefix = "reuseport"

    def parseStreamServer(self, reactor: Any, *args: str, **kwargs: str) -> ReusePortEndpoint:
        if len(args) != 1 or not args[0].isdigit():
            raise ValueError("reuseport: needs a port: reuseport:3000[:interface=ADDR][:backlog=N]")
        unknown = set(kwargs) - {"interface", "backlog"}
        if unknown:
            raise ValueError(f"reuseport: unknown option(s) {', '.join(sorted(unknown))}")
        backlog = kwargs.get("backlog", str(DEFAULT_BACKLOG))
        if not backlog.isdigit() or int(backlog) < 1:
            raise ValueError(f"reuseport: backlog must be a positive integer, not {backlog!r}")
        return ReusePortEndpoint(reactor, int(args[0]), kwargs.get("interface", ""), int(backlog))


reuseport = ReusePortParser()
