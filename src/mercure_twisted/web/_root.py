"""The root resource: subscriptions on plain twisted.web, the rest through Klein.

A subscription is a response that lives for minutes or hours, tens of
thousands at a time.  Routing it through Klein would keep Klein's
per-request state (a bound URL map, request adapters, the route's Deferred
chain) alive for as long as each stream; everything else (publishing, the
subscription API, metadata, the debugging page) is short-lived and keeps
Klein's routing, except publishing: it is the hub's busiest short request,
and Klein's routing (URL map binding, adapters, two Deferred chains) cost
about a fifth of each publish, so ``POST`` on the hub path calls the same
``HubWeb.publish`` directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET

from ..logs import register_capability_prefix
from ._app import HUB_PATH, HubWeb

if TYPE_CHECKING:
    from ..metrics import HubMetrics
    from ._health import OperationsResource

_HUB_PATH = HUB_PATH.encode("ascii")
_SUBSCRIBE_METHODS = frozenset({b"GET", b"HEAD", b"QUERY"})


def mounted_at(mounts: Mapping[bytes, IResource], path: bytes) -> IResource | None:
    """The resource of the longest prefix in ``mounts`` that ``path`` is at
    or under (so that ``/websub/hub`` can be mounted beside ``/websub``)."""
    found: IResource | None = None
    longest = -1
    for prefix, resource in mounts.items():
        if (path == prefix or path.startswith(prefix + b"/")) and len(prefix) > longest:
            found, longest = resource, len(prefix)
    return found


class HubResource(Resource):
    isLeaf = True

    def __init__(
        self,
        web: HubWeb,
        operations: OperationsResource | None = None,
        metrics: HubMetrics | None = None,
    ) -> None:
        super().__init__()
        self._web = web
        self._klein = web.app.resource()
        # /healthz, /readyz (and /metrics unless it has its own listener):
        # probes are answered without Klein and without a token.
        self._operations = operations
        self._metrics = metrics
        # Path prefix -> leaf resource mounted by an optional component
        # (the WebSub bridge under /websub), wired in by tap.py.
        self._mounts: dict[bytes, IResource] = {}

    @property
    def web(self) -> HubWeb:
        """The hub's HTTP face (its hub, verifier and hub URL), for what is mounted."""
        return self._web

    def mount(
        self, prefix: str, resource: IResource, *, capability_prefixes: Sequence[str] = ()
    ) -> None:
        """Serve ``prefix`` and everything under it with ``resource``, a leaf
        that routes on ``request.path`` itself.  The hub's own paths win.
        The segment after each of ``capability_prefixes`` is a secret: the
        logs never show it."""
        if not prefix.startswith("/") or prefix.endswith("/") or prefix.startswith(HUB_PATH):
            raise ValueError(f"cannot mount {prefix!r}")
        self._mounts[prefix.encode("ascii")] = resource
        for capability in capability_prefixes:
            register_capability_prefix(capability)

    def _mounted(self, path: bytes) -> IResource | None:
        return mounted_at(self._mounts, path)

    def render(self, request: IRequest) -> object:
        if request.path == _HUB_PATH and request.method in _SUBSCRIBE_METHODS:
            return self._web.render_subscribe(request)
        if self._mounts:
            mounted = self._mounted(request.path)
            if mounted is not None:
                return mounted.render(request)
        if self._operations is not None and self._operations.serves(request.path):
            return self._operations.render(request)
        if request.path == _HUB_PATH and request.method == b"POST":
            if self._metrics is not None:
                self._metrics.observe_publish(request, self._web.clock)
            return self._render_publish(request)
        return self._klein.render(request)

    def _render_publish(self, request: IRequest) -> object:
        """``HubWeb.publish`` without Klein: what it answers, or a 500."""
        d = Deferred.fromCoroutine(self._web.publish(request))

        def answered(body: bytes) -> None:
            if _gone(request):
                return
            request.write(body)
            request.finish()  # type: ignore[attr-defined]

        def failed(failure: Failure) -> None:
            if _gone(request):
                return
            request.processingFailed(failure)  # type: ignore[attr-defined]

        d.addCallbacks(answered, failed)
        return NOT_DONE_YET


def _gone(request: IRequest) -> bool:
    return bool(getattr(request, "finished", False) or getattr(request, "_disconnected", False))
