"""The hub port: everything the bridge asks of a Mercure hub.

The bridge never touches the hub's engine or its token code directly: it
publishes updates and asks whether a request's publisher token may publish
on a topic, and it reads the hub's public updates with `IHubPort.watch`.
`InProcessPort` is the adapter used inside ``twistd mercure`` (the hub's own
`Hub` and `TokenVerifier`, so tokens are checked exactly as for a publish);
``websub_bridge.http_port`` is the adapter of the standalone bridge, which
talks to any Mercure hub over HTTP and SSE.

Watching is per topic or, where the adapter can (``watches_all``), of every
public update at once: over SSE an event does not say which of the
subscribed topics it was published to, so the HTTP adapter opens one stream
per concrete topic, while the in-process adapter sees each update's topics.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
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
    "ReceivedUpdate",
    "UpdateHandler",
    "Watch",
    "check_publisher",
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


@attrs.frozen
class ReceivedUpdate:
    """A public Mercure update as the bridge sees it.

    ``topics`` are the update's topics where the adapter knows them (in
    process); over SSE they are the one watched topic.
    """

    id: str
    topics: tuple[str, ...]
    data: str
    type: str | None = None


#: Receives the watched updates one at a time, in order: the next one is
#: handed over only once the previous call's awaitable has finished, so a
#: handler that stores a cursor after each update never skips one.  A
#: handler that raises loses that update (it is logged): handlers retry
#: what they must themselves.
UpdateHandler = Callable[[ReceivedUpdate], Awaitable[None]]


class Watch(Protocol):
    def stop(self) -> None:
        """Stop receiving (an update being handled finishes; no more follow)."""


class IHubPort(Protocol):
    #: True when ``watch(None, ...)`` is supported: every public update, of
    #: every topic, on one watch.
    watches_all: bool

    def watch(self, topic: str | None, since: str | None, on_update: UpdateHandler) -> Watch:
        """Hand ``on_update`` the public updates of ``topic`` (of every topic
        when None and ``watches_all``), first those stored after ``since``
        (when it is not None, as with ``Last-Event-ID``), then live ones,
        without a gap or a duplicate between the two.  Private updates are
        never handed over."""

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


async def check_publisher(
    verifier: TokenVerifier, request: IRequest, topic: str, hub_url: str
) -> None:
    """`IHubPort.authorize_publisher` for the adapters that check tokens
    themselves: ``request``'s publisher token, verified by ``verifier`` for
    the hub at ``hub_url`` (a draft-08 token's audience), must grant
    publishing on ``topic``; else `NotAuthorized` (400, 401 with a Bearer
    challenge, or 403)."""
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
        grants = await verifier.verify(presentation.token, "publisher", hub_url)
    except TokenError as e:
        raise NotAuthorized(
            e.status,
            e.reason,
            f'Bearer realm="mercure", error="{e.error}"'.encode("ascii", "replace"),
        ) from None
    if not grants.may_publish(topic):
        raise NotAuthorized(403, forbidden_publish(topic))


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

    watches_all = True

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
        await check_publisher(self._verifier, request, topic, self._hub_url(request))

    def topic_problem(self, topic: str) -> str | None:
        return topic_problem(topic, self._hub_url(None))

    def watch(self, topic: str | None, since: str | None, on_update: UpdateHandler) -> Watch:
        return _HubWatch(self._hub, topic, since, on_update)


class _HubWatch:
    """Updates of this process's hub, from its dispatch (`Hub.add_listener`).

    With ``since``, live updates are held while history is read and released
    after it, skipping those the replay covered (the same rule as a
    subscriber's replay).  A history read that fails is retried every few
    seconds, still holding: nothing live is lost meanwhile.
    """

    log = Logger()
    RETRY_SECONDS = 5.0

    def __init__(self, hub: Hub, topic: str | None, since: str | None, on_update: UpdateHandler) -> None:
        self._hub = hub
        self._topic = topic
        self._on_update = on_update
        self._queue: deque[ReceivedUpdate] = deque()
        self._draining = False
        self._stopped = False
        self._retry: IDelayedCall | None = None
        self._held: list[Update] | None = [] if since is not None else None
        self._remove = hub.add_listener(self._live)
        if since is not None:
            self._read_history(since)

    def stop(self) -> None:
        self._stopped = True
        self._remove()
        self._queue.clear()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()

    def _wanted(self, update: Update) -> bool:
        return not update.private and (self._topic is None or self._topic in update.topics)

    def _live(self, update: Update) -> None:
        if self._stopped or not self._wanted(update):
            return
        if self._held is not None:
            self._held.append(update)
        else:
            self._push(update)

    def _read_history(self, since: str) -> None:
        d = Deferred.fromCoroutine(self._replay(since))
        d.addErrback(lambda f: self.log.failure("websub watch replay failed", f))

    async def _replay(self, since: str) -> None:
        try:
            history = await self._hub.transport.history(since)
        except Exception as e:
            if self._stopped:
                return
            self.log.warn(
                "websub watch could not read history after {since} ({error}); retrying",
                since=since, error=str(e),
            )
            self._retry = self._hub.clock.callLater(self.RETRY_SECONDS, self._read_history, since)
            return
        if self._stopped:
            return
        held, self._held = self._held or [], None
        if not history.found:
            self.log.warn(
                "websub watch: {since} is no longer in the hub's history; updates "
                "published before this start may be missing",
                since=since,
            )
        for update in history.updates:
            if self._wanted(update):
                self._push(update)
        covered = history.found and history.up_to is not None
        for update in held:
            if covered and update.position is not None and update.position <= history.up_to:
                continue
            self._push(update)

    def _push(self, update: Update) -> None:
        self._queue.append(ReceivedUpdate(update.id, update.topics, update.data, update.type))
        if not self._draining:
            self._draining = True
            d = Deferred.fromCoroutine(self._drain())
            d.addErrback(lambda f: self.log.failure("websub watch failed", f))

    async def _drain(self) -> None:
        try:
            while self._queue and not self._stopped:
                item = self._queue.popleft()
                try:
                    await self._on_update(item)
                except Exception:
                    self.log.failure("websub: handling update {id} failed", id=item.id)
        finally:
            self._draining = False
