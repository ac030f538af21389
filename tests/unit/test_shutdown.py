"""Graceful stop within a bound, in memory: streams end, connections close, stragglers are aborted."""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.internet.error import ConnectionDone
from twisted.trial.unittest import SynchronousTestCase

from mercure_twisted.app import build_application
from mercure_twisted.config import HubConfig
from mercure_twisted.shutdown import HubTree, OpenConnections

from ._web import make_hub, open_stream


def connected(connections: OpenConnections) -> tuple[Protocol, StringTransport]:
    protocol = Protocol()
    transport = StringTransport()
    connections.track(protocol)
    protocol.makeConnection(transport)
    return protocol, transport


class SlowService(Service):
    """A child whose stop (a transport flush) takes as long as the test says."""

    def __init__(self) -> None:
        self.stopping: Deferred[None] = Deferred()

    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        super().stopService()
        return self.stopping


class HubTreeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.connections = OpenConnections()
        self.tree = HubTree(self.clock, (self.connections,), shutdown_timeout=10)
        self.tree.startService()

    def test_connections_are_closed_after_the_children_stop(self) -> None:
        protocol, transport = connected(self.connections)
        child = SlowService()
        child.setServiceParent(self.tree)
        child.startService()
        d = self.tree.stopService()
        self.assertFalse(transport.disconnecting, "closed before the hub had drained")
        child.stopping.callback(None)
        self.assertTrue(transport.disconnecting)  # loseConnection: buffered bytes first
        self.assertNoResult(d)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(d)
        self.assertEqual(len(self.connections), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stragglers_are_aborted_at_the_bound(self) -> None:
        protocol, transport = connected(self.connections)
        d = self.tree.stopService()
        self.assertTrue(transport.disconnecting)
        self.clock.advance(9.9)
        self.assertNoResult(d)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnected)  # abortConnection
        self.successResultOf(d)

    def test_a_hub_flush_that_hangs_is_bounded_too(self) -> None:
        child = SlowService()
        child.setServiceParent(self.tree)
        d = self.tree.stopService()
        self.assertNoResult(d)
        self.clock.advance(10)
        self.successResultOf(d)

    def test_no_connections_stops_at_once(self) -> None:
        self.successResultOf(self.tree.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])


class DrainTests(SynchronousTestCase):
    def test_stop_ends_streams_cleanly(self) -> None:
        web = make_hub(anonymous=True)
        stream = open_stream(web, web.url("?topic=https://example.com/a"))
        web.service.stopService()
        web.flush()
        # The response ended with its terminating chunk: no data loss.
        self.successResultOf(stream.done)
        self.assertEqual(web.hub.subscribers, {})

    def test_the_site_tracks_its_connections(self) -> None:
        site, _ = build_application(HubConfig(), Clock())
        protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertEqual(len(site.connections), 1)
        site.connections.close_all()
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(site.connections), 0)


class LogObserverTests(SynchronousTestCase):
    def test_the_tree_hands_its_log_observer_to_twistds_application(self) -> None:
        from twisted.application.service import Application
        from twisted.logger import ILogObserver

        def observer(event: object) -> None:
            pass

        application = Application("mercure")
        HubTree(Clock(), log_observer=observer).setServiceParent(application)
        self.assertIs(application.getComponent(ILogObserver), observer)

    def test_text_leaves_twistds_own(self) -> None:
        from twisted.application.service import Application
        from twisted.logger import ILogObserver

        application = Application("mercure")
        HubTree(Clock()).setServiceParent(application)
        self.assertIsNone(application.getComponent(ILogObserver, None))
