"""Error answers: a precise status, a plain-text reason, RFC 6750 challenges."""

from __future__ import annotations

import re

from twisted.web.iweb import IRequest

__all__ = ["answer_error", "bearer_challenge"]

_CHALLENGE_UNSAFE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')


def bearer_challenge(error: str | None, description: str | None, metadata_url: str | None) -> bytes:
    """A ``WWW-Authenticate: Bearer`` value; descriptions limited to RFC 6750 characters."""
    params = ['realm="mercure"']
    if error:
        params.append(f'error="{error}"')
    if description:
        params.append(f'error_description="{_CHALLENGE_UNSAFE.sub("?", description)}"')
    if metadata_url:
        params.append(f'resource_metadata="{metadata_url}"')
    return ("Bearer " + ", ".join(params)).encode("ascii", "replace")


def answer_error(
    request: IRequest,
    status: int,
    message: str,
    *,
    challenge: bytes | None = None,
) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    if challenge is not None:
        request.setHeader(b"WWW-Authenticate", challenge)
    if status == 503:
        # Transient by nature (a transport reconnecting): say when to retry.
        request.setHeader(b"Retry-After", b"1")
    return (message.rstrip("\n") + "\n").encode("utf-8")
