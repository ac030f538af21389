"""The hub's Site: bounded request bodies and an access log without tokens.

twisted.web would otherwise buffer a request body of any size (spilling to
a temporary file), and its combined access log writes the whole request
URI, which for draft-07 may carry the token in the ``authorization`` query
parameter.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from ..logs import access_line
from ..shutdown import OpenConnections
from ._footprint import register_connection_attributes

__all__ = ["HubSite", "redact_uri"]

_TOKEN_PARAMETER = re.compile(rb"((?:^|[?&])(?:authorization|access_token)=)[^&]*", re.I)


def redact_uri(uri: bytes) -> bytes:
    """``uri`` with any token query parameter replaced by ``REDACTED``."""
    return _TOKEN_PARAMETER.sub(rb"\1REDACTED", uri)


def _access_log(timestamp: str, request: Any) -> str:
    uri = request.uri
    request.uri = redact_uri(uri)
    try:
        return http.combinedLogFormatter(timestamp, request)  # type: ignore[no-any-return]
    finally:
        request.uri = uri


class BoundedRequest(Request):
    """Stops storing a body once it exceeds the site's limit.

    The rest of the body is read and dropped (so the connection stays
    usable), and ``body_too_large`` tells the handler to answer 413.
    """

    body_too_large = False
    _stored = 0
    # Tens of thousands of subscription requests live at once.  A request's
    # attributes fit CPython's key-sharing instance dict only up to a
    # point; these, set late (the producer when a stream opens), would push
    # every open stream's dict into a private ~1.5 KB table, so they live in
    # slots instead.
    __slots__ = ("producer", "streamingProducer", "started_at", "derived_hub_url")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.producer = None
        self.streamingProducer = False
        #: When the request arrived (the site's clock), for the access log's duration.
        self.started_at: float | None = None
        #: The hub URL derived from this request (``HubWeb.hub_url``).
        self.derived_hub_url: str | None = None
        super().__init__(*args, **kwargs)
        # The hub reads a publish body itself (``HubWeb.read_body``);
        # twisted.web would parse every form body into ``request.args``
        # first, through the email package's header parser (a tenth of each
        # publish).  Private: tests/unit/test_hot_paths.py fails if it
        # stops being honoured.
        self._parsePOSTFormSubmission = False
        clock = getattr(getattr(self.channel, "site", None), "reactor", None)
        if clock is not None:
            self.started_at = clock.seconds()

    def _limit(self) -> int | None:
        site = getattr(self.channel, "site", None)
        return getattr(site, "max_body_size", None)

    def gotLength(self, length: int | None) -> None:
        limit = self._limit()
        if limit is not None and length is not None and length > limit:
            self.body_too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        self._stored += len(data)
        limit = self._limit()
        if limit is not None and self._stored > limit:
            self.body_too_large = True
            if self.content is not None:
                self.content.seek(0)
                self.content.truncate()
            return
        super().handleContentChunk(data)


register_connection_attributes(BoundedRequest)

_UNLOGGED_PATHS = frozenset({b"/healthz", b"/readyz", b"/metrics"})
#: Module level: a Logger read through a class takes the class's namespace.
_ACCESS_LOG = Logger(namespace="mercure.access")


class HubSite(Site):
    requestFactory = BoundedRequest

    def __init__(self, resource: IResource, *, max_body_size: int, **kwargs: Any) -> None:
        super().__init__(resource, logFormatter=_access_log, **kwargs)
        self.max_body_size = max_body_size
        self.displayTracebacks = False
        #: Closed (then aborted past shutdown_timeout) by ``shutdown.HubTree``.
        self.connections = OpenConnections()

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        if protocol is not None:
            self.connections.track(protocol)
        return protocol

    def log(self, request: Any) -> None:
        """One structured access event per answered request (publishes
        included, subscriptions when their stream ends cleanly), with its
        duration and never a token (see ``logs.access_line``).  Probes and
        scrapes are not logged: they would drown everything else."""
        if request.path in _UNLOGGED_PATHS:
            return
        started = getattr(request, "started_at", None)
        duration = self.reactor.seconds() - started if started is not None else None
        _ACCESS_LOG.info(
            '{remote} "{method} {uri} {protocol}" {status} {bytes} {duration}s',
            **access_line(request, duration),
        )
