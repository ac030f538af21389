"""Why a token was refused, in words safe to show and to log.

A :class:`TokenError` carries the HTTP status, the RFC 6750 ``error`` code of
the ``WWW-Authenticate: Bearer`` challenge and a ``reason`` for the operator.
Reasons are built only from claim *values* (shortened) and hub settings,
never from the token itself nor from key material, so the hub may log them
and may return them in a debug body.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

__all__ = [
    "ErrorCode",
    "TokenError",
    "forbidden_publish",
    "forbidden_subscribe",
    "format_time",
    "shorten",
]

ErrorCode = Literal["invalid_token", "invalid_request"]

_MAX_VALUE_LENGTH = 80


class TokenError(Exception):
    """A presented token (or its presentation) that cannot be accepted.

    ``TokenError(status, error, reason)``, e.g.
    ``TokenError(401, "invalid_token", "token expired at 2026-12-02T12:00:00Z")``.

    ``status`` is 401 (invalid or missing token) or 400 (malformed
    presentation); ``error`` is the RFC 6750 code, ``None`` when no token was
    presented at all; ``reason`` is a precise, secret-free human message.
    """

    status: int
    error: ErrorCode | None
    reason: str

    def __init__(self, status: int, error: ErrorCode | None, reason: str) -> None:
        super().__init__(status, error, reason)
        self.reason = reason
        self.status = status
        self.error = error

    @classmethod
    def invalid_token(cls, reason: str) -> TokenError:
        return cls(401, "invalid_token", reason)

    @classmethod
    def invalid_request(cls, reason: str) -> TokenError:
        return cls(400, "invalid_request", reason)

    @classmethod
    def missing(cls, reason: str = "no access token presented") -> TokenError:
        """401 without an error code: RFC 6750 section 3.1 for no token."""
        return cls(401, None, reason)

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:
        return f"TokenError(status={self.status}, error={self.error!r}, reason={self.reason!r})"


def shorten(value: Any, limit: int = _MAX_VALUE_LENGTH) -> str:
    """``repr`` of a claim value, cut to ``limit`` characters for messages."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def format_time(seconds: float) -> str:
    """POSIX seconds as ``2026-12-02T12:00:00Z`` (fractions dropped)."""
    try:
        moment = datetime.fromtimestamp(int(seconds), tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return repr(seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def forbidden_publish(topic: str) -> str:
    """The reason of a 403 for a publication the token does not cover."""
    return f"token has no publish grant for topic {shorten(topic, 200)}"


def forbidden_subscribe(topic: str) -> str:
    """The reason of a 403 for a subscription the token does not cover."""
    return f"token has no subscribe grant for topic {shorten(topic, 200)}"
