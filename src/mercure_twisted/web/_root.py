"""The root resource: subscriptions on plain twisted.web, the rest through Klein.

A subscription is a response that lives for minutes or hours, tens of
thousands at a time.  Routing it through Klein would keep Klein's
per-request state (a bound URL map, request adapters, the route's Deferred
chain) alive for as long as each stream; everything else (publishing, the
subscription API, metadata, the debugging page) is short-lived and keeps
Klein's routing.
"""

from __future__ import annotations

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from ._app import HUB_PATH, HubWeb

_SUBSCRIBE_PATH = HUB_PATH.encode("ascii")
_SUBSCRIBE_METHODS = frozenset({b"GET", b"HEAD", b"QUERY"})


class HubResource(Resource):
    isLeaf = True

    def __init__(self, web: HubWeb) -> None:
        super().__init__()
        self._web = web
        self._klein = web.app.resource()

    def render(self, request: IRequest) -> object:
        if request.path == _SUBSCRIBE_PATH and request.method in _SUBSCRIBE_METHODS:
            return self._web.render_subscribe(request)
        return self._klein.render(request)
