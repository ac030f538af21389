"""The HTTP plumbing shared by the bridge's resources.

Each of them (the follow role's callbacks and API, the hub role's
``/websub/hub``) is a leaf that answers from a coroutine: `AsyncLeaf`
runs it, writes its `Reply` unless the client has gone, and turns an
unexpected exception into a logged 500 rather than a hung request.  A
refusal is a `Refused` exception carrying its status and a plain-text
reason safe to send back.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

__all__ = ["AsyncLeaf", "Refused", "Reply", "read_body", "text_reply"]

#: (status, body, content type, WWW-Authenticate challenge or None).
Reply = tuple[int, bytes, str, bytes | None]


class Refused(Exception):
    """A request refused with ``status`` and a one-line ``reason``."""

    def __init__(self, status: int, reason: str, challenge: bytes | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.challenge = challenge


def text_reply(status: int, text: str, challenge: bytes | None = None) -> Reply:
    body = text.rstrip("\n") + "\n" if text else ""
    return status, body.encode("utf-8"), "text/plain; charset=utf-8", challenge


def read_body(request: IRequest, limit: int) -> bytes:
    """The request body, or `Refused` 413 when it is larger than ``limit``
    (the hub's site marks a body it stopped reading ``body_too_large``)."""
    length = request.getHeader(b"content-length")
    if getattr(request, "body_too_large", False) or (
        length is not None and length.isdigit() and int(length) > limit
    ):
        raise Refused(413, f"request body larger than {limit} bytes")
    if request.content is None:
        return b""
    request.content.seek(0)
    body = request.content.read(limit + 1)
    if len(body) > limit:
        raise Refused(413, f"request body larger than {limit} bytes")
    return bytes(body)


class AsyncLeaf(Resource):
    """A leaf resource whose answer comes from ``answer(request)``."""

    isLeaf = True
    log = Logger()

    async def answer(self, request: IRequest) -> Reply:
        raise NotImplementedError

    def loggable_path(self, request: IRequest) -> str:
        """The path as logs may show it (override to hide capabilities)."""
        return str(request.path.decode("latin-1"))

    async def _answer(self, request: IRequest) -> Reply:
        try:
            return await self.answer(request)
        except Refused as e:
            return text_reply(e.status, e.reason, e.challenge)

    def render(self, request: IRequest) -> Any:
        d = Deferred.fromCoroutine(self._answer(request))
        request.notifyFinish().addErrback(lambda _: None)  # type: ignore[attr-defined]

        def answered(reply: Reply) -> None:
            status, body, content_type, challenge = reply
            if getattr(request, "_disconnected", False) or getattr(request, "finished", False):
                return
            request.setResponseCode(status)
            request.setHeader(b"Content-Type", content_type.encode("ascii"))
            request.setHeader(b"Cache-Control", b"no-store")
            request.setHeader(b"X-Content-Type-Options", b"nosniff")
            if challenge is not None:
                request.setHeader(b"WWW-Authenticate", challenge)
            if status not in (204, 304):
                request.setHeader(b"Content-Length", str(len(body)).encode("ascii"))
                if request.method != b"HEAD":
                    request.write(body)
            request.finish()  # type: ignore[attr-defined]

        def failed(failure: Failure) -> Reply:
            self.log.failure(
                "websub request {path} failed", failure, path=self.loggable_path(request)
            )
            return text_reply(500, "internal error")

        d.addErrback(failed).addCallback(answered)
        return NOT_DONE_YET
