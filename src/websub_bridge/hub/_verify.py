"""Verification of intent (W3C WebSub section 5.3) and denial (5.2).

Before a subscription is stored or removed, the hub GETs the callback with a
fresh challenge; only a subscriber that echoes it really asked (anyone can
POST someone else's URL as a callback).  Redirects are not followed: the
callback is the URL that must answer, and following would let a callback
bounce the hub elsewhere.  Reasons and log events never hold the challenge
or the callback's path and query string (capabilities), only its origin.
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Sequence

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from ..client import OutboundClient, OutboundError, loggable_origin, loggable_url
from ..guard import GuardError
from ._requests import SubscriptionRequest

__all__ = ["VerificationOutcome", "send_denial", "verify_intent", "with_query"]

_MAX_BODY = 1024
log = Logger()


@attrs.frozen
class VerificationOutcome:
    """Whether the subscriber confirmed, and why not (for logs)."""

    ok: bool
    reason: str


def with_query(url: str, params: Sequence[tuple[str, str]]) -> str:
    """``url`` with ``params`` appended to its own query (section 5.3: the
    hub MUST keep the callback's existing query parameters)."""
    base = url.partition("#")[0]  # a fragment never goes on the wire
    extra = urllib.parse.urlencode(list(params))
    if "?" in base:
        head, _, query = base.partition("?")
        joined = f"{head}?{query}&{extra}" if query else f"{head}?{extra}"
    else:
        joined = f"{base}?{extra}"
    return joined


def _echoes(body: bytes, challenge: str) -> bool:
    expected = challenge.encode("ascii")
    return body in (expected, expected + b"\n", expected + b"\r\n")


async def verify_intent(
    client: OutboundClient,
    request: SubscriptionRequest,
    lease_seconds: int,
    *,
    timeout: float = 10.0,
) -> VerificationOutcome:
    """GET the callback with a fresh single-use challenge; ok only for a 2xx
    whose body is the challenge (a single trailing newline tolerated)."""
    challenge = secrets.token_urlsafe(32)
    params = [
        ("hub.mode", request.mode),
        ("hub.topic", request.topic),
        ("hub.challenge", challenge),
    ]
    if request.mode == "subscribe":
        params.append(("hub.lease_seconds", str(lease_seconds)))
    # The outcome is logged: the origin only (the path of a callback is
    # often the subscriber's capability, section 5.1).
    where = loggable_origin(request.callback)
    try:
        response = await client.request(
            "GET",
            with_query(request.callback, params),
            follow_redirects=0,
            timeout=timeout,
            max_body=_MAX_BODY,
        )
    except defer.CancelledError:
        raise
    except (GuardError, OutboundError) as e:
        error = str(e).replace(loggable_url(request.callback), where)
        return VerificationOutcome(False, f"{where}: {error}")
    if not 200 <= response.status < 300:
        return VerificationOutcome(
            False, f"{where} answered {response.status} to the verification of intent"
        )
    if not _echoes(response.body, challenge):
        return VerificationOutcome(False, f"{where} did not echo the challenge")
    return VerificationOutcome(True, f"{where} confirmed the {request.mode}")


async def send_denial(
    client: OutboundClient, callback: str, topic: str, reason: str, *, timeout: float = 10.0
) -> None:
    """Tell the subscriber its subscription was denied (section 5.2).

    Best effort: the denial is a courtesy, so a failure is logged and
    swallowed rather than raised into the request that caused it.
    """
    params = [("hub.mode", "denied"), ("hub.topic", topic), ("hub.reason", reason)]
    try:
        response = await client.request(
            "GET",
            with_query(callback, params),
            follow_redirects=0,
            timeout=timeout,
            max_body=_MAX_BODY,
        )
    except defer.CancelledError:
        raise
    except Exception as e:
        log.info(
            "websub hub denial to {origin} failed: {error}",
            origin=loggable_origin(callback),
            error=type(e).__name__,
        )
        return
    log.debug(
        "websub hub denial to {origin} answered {status}",
        origin=loggable_origin(callback),
        status=response.status,
    )
