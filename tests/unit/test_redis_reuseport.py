"""``reuseport:`` (twisted/plugins/mercure_reuseport.py): several processes,
one port, for the nodes of a Redis cluster on one machine.  The two-process
case runs end to end in tests/e2e/test_redis_cluster.py."""

from __future__ import annotations

import re

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol

from ._transport_backends import WAIT_BOUND


class Greeter(Protocol):
    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.factory.greeting)  # type: ignore[attr-defined]
        self.transport.loseConnection()


def greeter(greeting: bytes) -> Factory:
    factory = Factory.forProtocol(Greeter)
    factory.greeting = greeting  # type: ignore[attr-defined]
    return factory


async def read_from(port: int) -> bytes:
    from twisted.internet.defer import Deferred

    done: Deferred[None] = Deferred()

    class Once(Protocol):
        data = b""

        def dataReceived(self, data: bytes) -> None:
            self.data += data

        def connectionLost(self, reason: object = None) -> None:
            done.callback(None)

    protocol = Once()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), protocol)
    await done.addTimeout(WAIT_BOUND, reactor)
    return protocol.data


@pytest_twisted.ensureDeferred
async def test_two_listeners_share_one_port_and_both_serve() -> None:
    first = await serverFromString(reactor, "reuseport:0:interface=127.0.0.1").listen(greeter(b"one"))
    port = first.getHost().port
    try:
        # Without SO_REUSEPORT the port is taken...
        with pytest.raises(CannotListenError):
            await TCP4ServerEndpoint(reactor, port, interface="127.0.0.1").listen(greeter(b"tcp"))
        # ...with it, a second listener binds the same port.
        second = await serverFromString(
            reactor, f"reuseport:{port}:interface=127.0.0.1:backlog=16").listen(greeter(b"two"))
        try:
            assert second.getHost().port == port
            # The kernel spreads connections between the two: both get some.
            seen: set[bytes] = set()
            for _ in range(64):
                seen.add(await read_from(port))
                if seen == {b"one", b"two"}:
                    break
            assert seen == {b"one", b"two"}
        finally:
            await second.stopListening()
        # With one listener gone, the other still serves the port alone.
        assert await read_from(port) == b"one"
    finally:
        await first.stopListening()


@pytest.mark.parametrize("description, message", [
    ("reuseport", "needs a port"),
    ("reuseport:http", "needs a port"),
    ("reuseport:3000:interfaces=127.0.0.1", "unknown option(s) interfaces"),
    ("reuseport:3000:backlog=0", "backlog must be a positive integer"),
])
def test_bad_descriptions_are_refused_precisely(description: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        serverFromString(reactor, description)


@pytest_twisted.ensureDeferred
async def test_an_address_that_cannot_be_bound_fails_the_listen() -> None:
    with pytest.raises(CannotListenError):
        await serverFromString(reactor, "reuseport:0:interface=192.0.2.1").listen(greeter(b"x"))
