"""Parsing of a ``POST /websub/hub`` form (W3C WebSub sections 5.1 and 6).

Pure functions, no I/O: the HTTP resource decodes the
``application/x-www-form-urlencoded`` body into ``(name, value)`` pairs and
hands them here, so every rule about what a well-formed request is lives in
one place that property tests can hammer.  Anything malformed raises
:class:`RequestError` (and nothing else), whose one-line reason is safe to
send back to the requester.  No DNS is resolved here: the callback's
address is checked when the verification of intent connects to it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Literal

import attrs

from ..guard import GuardError, check_url

__all__ = [
    "MAX_VALUE_LENGTH",
    "PublishPing",
    "RequestError",
    "SubscriptionRequest",
    "lease_for",
    "parse_hub_request",
]

# A URL longer than this is not one we will store or call back.
MAX_VALUE_LENGTH = 4096
_SECRET_MAX_BYTES = 200  # section 5.1: hub.secret MUST be less than 200 bytes
_PUBLISH_NAMES = ("hub.url", "hub.url[]", "hub.topic")


class RequestError(Exception):
    """A hub request refused: ``status`` to answer and a one-line ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


@attrs.frozen
class SubscriptionRequest:
    """A well-formed (un)subscription request, not yet verified (section 5.1)."""

    mode: Literal["subscribe", "unsubscribe"]
    callback: str
    topic: str
    lease_seconds: int | None
    secret: str | None


@attrs.frozen
class PublishPing:
    """A publisher's notice that these topics changed (``hub.mode=publish``)."""

    urls: tuple[str, ...]


def _values(pairs: Sequence[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in pairs if key == name]


def _single(pairs: Sequence[tuple[str, str]], name: str, *, required: bool) -> str | None:
    """The one value of ``name``: a repeated parameter is ambiguous (which
    callback would we verify?), so it is refused rather than guessed."""
    values = _values(pairs, name)
    if not values:
        if required:
            raise RequestError(400, f"{name} is required")
        return None
    if len(values) > 1:
        raise RequestError(400, f"{name} is given more than once")
    value = values[0]
    if value == "":
        raise RequestError(400, f"{name} is empty")
    if len(value) > MAX_VALUE_LENGTH:
        raise RequestError(400, f"{name} is longer than {MAX_VALUE_LENGTH} characters")
    return value


def _check_http_url(name: str, value: str, *, callback: bool) -> None:
    """An absolute http(s) URL by the guard's rules (no DNS resolution).

    A callback may not carry a fragment: it would never reach the
    subscriber, so two callbacks differing only by it would be one.
    """
    if callback:
        try:
            fragment = urllib.parse.urlsplit(value).fragment
        except ValueError:
            raise RequestError(400, f"{name} is not a valid URL") from None
        if fragment or value.endswith("#"):
            raise RequestError(400, f"{name} must not have a fragment")
    try:
        check_url(value)
    except GuardError as e:
        raise RequestError(400, f"{name} is not acceptable: {e}") from None
    except (ValueError, UnicodeError):
        raise RequestError(400, f"{name} is not a valid URL") from None


def _lease(value: str | None) -> int | None:
    if value is None:
        return None
    # str.isdigit accepts non-ASCII digits; only ASCII decimal is meant.
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise RequestError(400, "hub.lease_seconds must be a positive decimal integer")
    seconds = int(value)
    if seconds <= 0:
        raise RequestError(400, "hub.lease_seconds must be a positive decimal integer")
    return seconds


def _secret(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise RequestError(400, "hub.secret is not valid text") from None
    if size >= _SECRET_MAX_BYTES:
        raise RequestError(400, f"hub.secret must be less than {_SECRET_MAX_BYTES} bytes")
    return value


def parse_hub_request(
    pairs: Sequence[tuple[str, str]],
) -> SubscriptionRequest | PublishPing:
    """The request a hub form stands for, or :class:`RequestError`.

    Parameters the hub does not understand are ignored (section 5.1: hubs
    MUST ignore them), so a subscriber's extension never breaks its request.
    """
    mode = _single(pairs, "hub.mode", required=True)
    if mode == "publish":
        return _publish(pairs)
    if mode not in ("subscribe", "unsubscribe"):
        raise RequestError(400, "hub.mode must be subscribe, unsubscribe or publish")
    callback = _single(pairs, "hub.callback", required=True)
    topic = _single(pairs, "hub.topic", required=True)
    assert callback is not None and topic is not None
    _check_http_url("hub.callback", callback, callback=True)
    _check_http_url("hub.topic", topic, callback=False)
    lease = _lease(_single(pairs, "hub.lease_seconds", required=False))
    secret = _secret(_single(pairs, "hub.secret", required=False))
    return SubscriptionRequest(
        mode="subscribe" if mode == "subscribe" else "unsubscribe",
        callback=callback,
        topic=topic,
        lease_seconds=lease,
        secret=secret,
    )


def _publish(pairs: Sequence[tuple[str, str]]) -> PublishPing:
    """Publishers disagree on the name (``hub.url``, ``hub.url[]``,
    ``hub.topic``), so all are read, in order, each URL once."""
    urls: list[str] = []
    for key, value in pairs:
        if key not in _PUBLISH_NAMES:
            continue
        if value == "":
            raise RequestError(400, f"{key} is empty")
        if len(value) > MAX_VALUE_LENGTH:
            raise RequestError(400, f"{key} is longer than {MAX_VALUE_LENGTH} characters")
        _check_http_url(key, value, callback=False)
        if value not in urls:
            urls.append(value)
    if not urls:
        raise RequestError(400, "hub.mode=publish needs at least one hub.url")
    return PublishPing(urls=tuple(urls))


def lease_for(requested: int | None, default: int, minimum: int, maximum: int) -> int:
    """The lease the hub grants: the subscriber's wish (or ``default``),
    clamped to the operator's bounds (section 5.1.1: a hint, not a demand)."""
    if not 0 < minimum <= maximum:
        raise ValueError("need 0 < minimum <= maximum")
    wanted = default if requested is None else requested
    return max(minimum, min(maximum, wanted))
