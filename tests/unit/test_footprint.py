"""Connection attribute names registered up front (see ``web/_footprint.py``)."""

from __future__ import annotations

import sys

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from mercure_twisted.web import _footprint
from mercure_twisted.web._site import HubSite

from ._loopback import LoopbackStream


class _Recording(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[object] = []

    def render(self, request: object) -> object:
        self.requests.append(request)
        request.setHeader(b"content-type", b"text/plain")  # type: ignore[attr-defined]
        request.write(b"x" * 100)  # type: ignore[attr-defined]
        return NOT_DONE_YET


def _late_names(registered: bool) -> int:
    """Size of the attribute dict of an instance that sets five names only
    after 40 instances of its class exist."""

    class Connection:
        def __init__(self) -> None:
            self.early = 1

    if registered:
        _footprint.register_attribute_names(Connection, ["early"] + [f"late{i}" for i in range(5)])
    connections = [Connection() for _ in range(40)]
    for connection in connections:
        for i in range(5):
            setattr(connection, f"late{i}", i)
    return sys.getsizeof(vars(connections[-1]))


class RegistrationTests(SynchronousTestCase):
    def test_late_names_stay_compact_once_registered(self) -> None:
        unregistered = _late_names(registered=False)
        if unregistered <= _late_names(registered=True):
            self.skipTest("this interpreter does not give late names a dict of their own")
        self.assertLess(_late_names(registered=True), unregistered)


class NamesCoveredTests(LoopbackStream):
    """Every name Twisted sets on a hub connection's objects is registered:
    a Twisted release that sets a new one fails here, and the list in
    ``web/_footprint.py`` is extended (up to the table's 29 names)."""

    def make_resource(self) -> Resource:
        return _Recording()

    def make_site(self, resource: Resource, clock: Clock) -> Site:
        return HubSite(resource, max_body_size=1024, reactor=clock)

    def test_names_of_a_connection_that_served_requests(self) -> None:
        self.protocol.dataReceived(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        [first] = self.resource.requests
        self.flush()
        first.finish()  # type: ignore[attr-defined]
        self.protocol.dataReceived(
            b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: a/b\r\n"
            b"Content-Length: 3\r\n\r\nabc"
        )
        [_, second] = self.resource.requests
        self.flush()
        channel = self.protocol._channel  # type: ignore[attr-defined]
        self.assertLessEqual(set(vars(self.transport)), set(_footprint.TCP_SERVER_ATTRIBUTES))
        self.assertLessEqual(set(vars(channel)), set(_footprint.HTTP_CHANNEL_ATTRIBUTES))
        for request in (first, second):
            set_names = set(vars(request)) - {"finished", "_disconnected"}
            self.assertLessEqual(set_names, set(_footprint.REQUEST_ATTRIBUTES))
        second.finish()  # type: ignore[attr-defined]

    def test_tables_hold_them_all(self) -> None:
        for names in (
            _footprint.TCP_SERVER_ATTRIBUTES,
            _footprint.HTTP_CHANNEL_ATTRIBUTES,
            _footprint.REQUEST_ATTRIBUTES,
        ):
            self.assertLessEqual(len(names), 29)
            self.assertEqual(len(set(names)), len(names))
