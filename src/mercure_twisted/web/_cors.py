"""CORS for cross-origin ``EventSource`` and publishers.

Credentials (the authorization cookie) are allowed only for origins listed
explicitly; the configured ``*`` answers ``*`` without credentials, since a
browser refuses the combination and reflecting any origin with credentials
would let every site read a user's private updates.
"""

from __future__ import annotations

from twisted.web.iweb import IRequest

EXPOSED = b"Link, Last-Event-ID, Mercure-Last-Event-ID, WWW-Authenticate"
ALLOWED_HEADERS = b"Authorization, Cache-Control, Content-Type, Last-Event-ID"
ALLOWED_METHODS = b"GET, HEAD, POST, QUERY, OPTIONS"


class CORSPolicy:
    def __init__(self, origins: tuple[str, ...]) -> None:
        self._any = "*" in origins
        self._origins = frozenset(o.rstrip("/") for o in origins if o != "*")

    def apply(self, request: IRequest) -> None:
        origin = request.getHeader(b"Origin")
        if origin is None:
            return
        request.setHeader(b"Vary", b"Origin")
        if origin.decode("latin-1") in self._origins:
            request.setHeader(b"Access-Control-Allow-Origin", origin)
            request.setHeader(b"Access-Control-Allow-Credentials", b"true")
        elif self._any:
            request.setHeader(b"Access-Control-Allow-Origin", b"*")
        else:
            return
        request.setHeader(b"Access-Control-Expose-Headers", EXPOSED)

    def preflight(self, request: IRequest) -> bytes:
        self.apply(request)
        request.setHeader(b"Access-Control-Allow-Methods", ALLOWED_METHODS)
        request.setHeader(b"Access-Control-Allow-Headers", ALLOWED_HEADERS)
        request.setHeader(b"Access-Control-Max-Age", b"600")
        request.setResponseCode(204)
        return b""
