"""The hub's Site: bounded request bodies and an access log without tokens.

twisted.web would otherwise buffer a request body of any size (spilling to
a temporary file), and its combined access log writes the whole request
URI, which for draft-07 may carry the token in the ``authorization`` query
parameter.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.web import http
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

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


class HubSite(Site):
    requestFactory = BoundedRequest

    def __init__(self, resource: IResource, *, max_body_size: int, **kwargs: Any) -> None:
        super().__init__(resource, logFormatter=_access_log, **kwargs)
        self.max_body_size = max_body_size
        self.displayTracebacks = False
