"""The bridge's real OutboundClient over an in-memory agent and a real Resource.

``RequestTraversalAgent`` runs the real ``twisted.web`` client protocol
against a real ``Site`` through in-memory transports, so redirects, headers,
bodies and HEAD behave as on the wire; only sockets are missing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from treq.testing import RequestTraversalAgent
from twisted.internet import defer, task
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request

from websub_bridge.client import OutboundClient
from websub_bridge.guard import AddressPolicy

T = TypeVar("T")


class Routes(Resource):
    """A leaf resource answering each path with a function of the request.

    Records every request as ``(method, path, headers, body)`` so tests can
    say what went out on the wire.
    """

    isLeaf = True

    def __init__(self, routes: dict[str, Callable[[Request], bytes | int]]) -> None:
        super().__init__()
        self.routes = routes
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def render(self, request: Request) -> bytes | int:
        path = request.uri.decode("ascii")
        body = request.content.read() if request.content is not None else b""
        headers = {
            name.decode("latin-1").lower(): b", ".join(values).decode("latin-1")
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        self.seen.append((request.method.decode("ascii"), path, headers, body))
        handler = self.routes.get(path.split("?", 1)[0])
        if handler is None:
            request.setResponseCode(404)
            return b"not found"
        return handler(request)


class Kit:
    """An OutboundClient over ``resource``, with a task.Clock for its timeouts."""

    def __init__(
        self,
        resource: Resource,
        *,
        policy: AddressPolicy | None = None,
        **client_kw: Any,
    ) -> None:
        self.clock = task.Clock()
        self.agent = RequestTraversalAgent(resource)
        self.client = OutboundClient(
            self.clock, policy or AddressPolicy(), agent=self.agent, **client_kw
        )

    def start(self, coroutine: Coroutine[Any, Any, T]) -> defer.Deferred[T]:
        """Run ``coroutine`` as far as the in-memory exchanges take it."""
        result = defer.Deferred.fromCoroutine(coroutine)
        self.pump()
        return result

    def pump(self) -> None:
        for _ in range(20):
            self.agent.flush()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """The result of ``coroutine``, which must finish in memory."""
        return _result(self.start(coroutine))

    def fail(self, coroutine: Coroutine[Any, Any, Any]) -> BaseException:
        """The exception ``coroutine`` fails with (it must fail in memory)."""
        return _failure(self.start(coroutine)).value


def _outcome(d: defer.Deferred[Any]) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the operation did not finish in memory"
    return out


def _result(d: defer.Deferred[T]) -> T:
    (value,) = _outcome(d)
    if isinstance(value, Failure):
        value.raiseException()
    return value  # type: ignore[no-any-return]


#: The result of a Deferred that must already have fired (a failure raised).
settle = _result


def _failure(d: defer.Deferred[Any]) -> Failure:
    (value,) = _outcome(d)
    assert isinstance(value, Failure), f"expected a failure, got {value!r}"
    return value


def loopback_policy() -> AddressPolicy:
    return AddressPolicy([ipaddress.ip_network("127.0.0.0/8")])
