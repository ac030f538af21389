"""The hub port: everything the bridge asks of a Mercure hub.

The bridge never touches the hub's engine or its token code directly: it
publishes updates and asks whether a request's publisher token may publish
on a topic, through `IHubPort`.  `InProcessPort` is the adapter used inside
``twistd mercure`` (the hub's own `Hub` and `TokenVerifier`, so tokens are
checked exactly as for a publish); part 2's standalone bridge adds an
adapter that talks to any Mercure hub over HTTP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

import attrs
from twisted.web.iweb import IRequest

from mercure_twisted.auth import TokenError, forbidden_publish, read_token
from mercure_twisted.auth import TokenVerifier
from mercure_twisted.hub import Hub
from mercure_twisted.transports import TransportUnavailable
from mercure_twisted.update import Update, new_event_id
from mercure_twisted.validation import addresses_reserved_namespace, forbidden_character

__all__ = [
    "HubUnavailable",
    "IHubPort",
    "InProcessPort",
    "NotAuthorized",
    "mercure_id",
    "topic_problem",
]


@attrs.frozen
class NotAuthorized(Exception):
    """The request may not act on the topic: ``status`` is 400, 401 or 403."""

    status: int
    reason: str
    challenge: bytes | None = None

    def __str__(self) -> str:
        return self.reason


class HubUnavailable(Exception):
    """The hub could not store the update (retry later: 503)."""


class IHubPort(Protocol):
    async def publish(
        self,
        topics: Sequence[str],
        data: str,
        *,
        private: bool = False,
        id: str | None = None,
        type: str | None = None,
    ) -> str:
        """Publish one update; returns its id.  Raises `HubUnavailable`."""

    async def authorize_publisher(self, request: IRequest, topic: str) -> None:
        """Return if ``request``'s publisher token may publish on ``topic``,
        else raise `NotAuthorized`."""

    def topic_problem(self, topic: str) -> str | None:
        """Why ``topic`` cannot be published to, or None."""


def topic_problem(topic: str, hub_url: str) -> str | None:
    """Why ``topic`` cannot be a Mercure topic on the hub at ``hub_url``, or None."""
    if not topic:
        return "empty topic"
    bad = forbidden_character(topic)
    if bad:
        return f"topic {topic!r} contains a forbidden character ({bad})"
    if topic == "*":
        return "topic '*' is reserved for the wildcard matcher"
    if addresses_reserved_namespace(topic, hub_url):
        return f"topic {topic!r} is in the hub's reserved namespace"
    return None


def mercure_id(entry_id: str | None) -> str:
    """An update id for a feed entry: the entry's own id when Mercure
    accepts it as an id, else one derived from it (stable, so that a hub
    that delivers the entry twice yields the same id), else a fresh one."""
    if entry_id is None or entry_id == "":
        return new_event_id()
    if (
        not entry_id.startswith("#")
        and entry_id != "earliest"
        and forbidden_character(entry_id) is None
        and len(entry_id) <= 2048
    ):
        return entry_id
    digest = hashlib.sha256(entry_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"urn:sha256:{digest}"


class InProcessPort:
    """The port inside ``twistd mercure``: this process's hub and verifier."""

    def __init__(
        self,
        hub: Hub,
        verifier: TokenVerifier,
        hub_url: Callable[[IRequest | None], str],
    ) -> None:
        self._hub = hub
        self._verifier = verifier
        self._hub_url = hub_url

    async def publish(
        self,
        topics: Sequence[str],
        data: str,
        *,
        private: bool = False,
        id: str | None = None,
        type: str | None = None,
    ) -> str:
        update = Update(
            topics=tuple(topics), id=id or new_event_id(), data=data, private=private, type=type
        )
        try:
            stored = await self._hub.publish(update)
        except TransportUnavailable as e:
            raise HubUnavailable(str(e)) from None
        return stored.id

    async def authorize_publisher(self, request: IRequest, topic: str) -> None:
        # The Authorization header only: the follows API is called by
        # servers and tools, never with a browser's cookie (no CSRF surface).
        try:
            presentation = read_token(request, cookie_names=(), allow_query=False)
            if presentation is None:
                raise NotAuthorized(
                    401,
                    "this API requires a Mercure publisher token (Authorization: Bearer)",
                    b'Bearer realm="mercure"',
                )
            grants = await self._verifier.verify(
                presentation.token, "publisher", self._hub_url(request)
            )
        except TokenError as e:
            raise NotAuthorized(
                e.status,
                e.reason,
                f'Bearer realm="mercure", error="{e.error}"'.encode("ascii", "replace"),
            ) from None
        if not grants.may_publish(topic):
            raise NotAuthorized(403, forbidden_publish(topic))

    def topic_problem(self, topic: str) -> str | None:
        return topic_problem(topic, self._hub_url(None))
