"""Writes flushed at the end of the reactor pass (see ``web/_flush.py``)."""

from __future__ import annotations

from typing import Any

from twisted.internet import epollreactor, main, tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from mercure_twisted.web import _flush

from ._loopback import Port, socket_pair


class _Reactor(MemoryReactorClock):
    """Records what the real reactor's write path would disconnect."""

    def __init__(self) -> None:
        super().__init__()
        self.disconnected: list[Any] = []

    def _disconnectSelectable(self, selectable: Any, why: Any, isRead: bool) -> None:
        self.disconnected.append(why)
        self.removeWriter(selectable)
        selectable.connectionLost(Failure(why))


class _Lost(Protocol):
    def __init__(self) -> None:
        self.reason: Failure | None = None

    def connectionLost(self, reason: Failure = main.CONNECTION_DONE) -> None:  # type: ignore[assignment]
        self.reason = reason


class FlushTests(SynchronousTestCase):
    def setUp(self) -> None:
        _flush.install()
        self.addCleanup(_flush.uninstall)
        self.client, server_socket = socket_pair()
        self.addCleanup(self.client.close)
        self.reactor = _Reactor()
        self.protocol = _Lost()
        self.transport = tcp.Server(
            server_socket, self.protocol, ("127.0.0.1", 5555), Port(), 1, self.reactor
        )
        self.protocol.makeConnection(self.transport)
        self.addCleanup(server_socket.close)

    def received(self) -> bytes:
        self.client.setblocking(False)
        data = b""
        try:
            while chunk := self.client.recv(1 << 20):
                data += chunk
        except (BlockingIOError, ConnectionResetError):
            pass
        return data

    def test_sent_at_the_end_of_the_pass_without_registering(self) -> None:
        self.transport.write(b"one ")
        self.transport.writeSequence([b"two ", b"three"])
        self.assertEqual(self.received(), b"")
        self.assertNotIn(self.transport, self.reactor.getWriters())
        self.reactor.advance(0)
        self.assertEqual(self.received(), b"one two three")
        self.assertNotIn(self.transport, self.reactor.getWriters())

    def test_a_full_socket_is_registered_for_what_is_left(self) -> None:
        big = b"x" * 20_000_000
        self.transport.write(big)
        self.reactor.advance(0)
        self.assertIn(self.transport, self.reactor.getWriters())
        received = self.received()
        while len(received) < len(big):
            self.transport.doWrite()
            received += self.received()
        self.assertEqual(len(received), len(big))

    def test_a_closing_connection_ends_once_flushed(self) -> None:
        self.transport.write(b"last")
        self.transport.loseConnection()
        self.reactor.advance(0)
        self.assertEqual(self.received(), b"last")
        self.assertIsNotNone(self.protocol.reason)
        self.assertEqual(len(self.reactor.disconnected), 1)

    def test_an_aborted_connection_drops_what_was_queued(self) -> None:
        self.transport.write(b"never")
        self.transport.abortConnection()
        self.reactor.advance(0)
        self.assertIsNotNone(self.protocol.reason)
        self.assertEqual(self.received(), b"")

    def test_a_failing_write_drops_the_connection_and_is_logged(self) -> None:
        def broken() -> None:
            raise OSError("boom")

        self.transport.doWrite = broken  # type: ignore[method-assign]
        self.transport.write(b"x")
        with capturedLogs() as events:
            self.reactor.advance(0)
        self.assertEqual(len(self.reactor.disconnected), 1)
        self.assertIsInstance(self.reactor.disconnected[0], OSError)
        self.assertTrue(any(e.get("log_failure") for e in events))
        self.flushLoggedErrors(OSError)

    def test_uninstall_restores_twisted(self) -> None:
        self.assertTrue(_flush.installed())
        _flush.uninstall()
        self.assertFalse(_flush.installed())
        self.transport.write(b"now")
        self.assertIn(self.transport, self.reactor.getWriters())
        _flush.install()


    def test_what_the_flush_relies_on_exists(self) -> None:
        self.assertTrue(callable(getattr(epollreactor.EPollReactor, "_disconnectSelectable", None)))
        for name in ("dataBuffer", "offset", "_tempDataBuffer", "doWrite", "connected", "reactor"):
            self.assertTrue(hasattr(self.transport, name), name)
        self.assertIs(tcp.Server.startWriting, _flush._start_writing)  # type: ignore[attr-defined]
