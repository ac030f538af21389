"""HTTP of the follow role, mounted under ``/websub`` on the hub's listener.

* ``/websub/callback/<token>``: what hubs call.  GET is a verification of
  intent (or a denial), POST a content distribution.  The token alone
  identifies the subscription (never the ``Link`` headers of a delivery).
* ``/websub/follows`` (GET list, POST add) and ``/websub/follows/<id>``
  (GET, DELETE): the run-time API, authorized by a Mercure publisher token
  (``Authorization: Bearer``) granting publication on the follow's Mercure
  topic.

Every refusal is a precise status with a plain-text reason; nothing here
logs a token, a secret or a signature.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from twisted.logger import Logger
from twisted.web.iweb import IRequest

from .._leaf import AsyncLeaf, Refused, Reply, read_body
from ..config import FollowSpec, follow_spec
from ..port import IHubPort, NotAuthorized
from ..store import DuplicateFollow, Follow
from ._machine import Answer, Follower, TooManyFollows

__all__ = ["BridgeResource", "follow_document"]

PREFIX = "/websub"
_CALLBACK = re.compile(r"/websub/callback/([A-Za-z0-9_-]{1,128})")
_FOLLOWS = "/websub/follows"
_FOLLOW = re.compile(r"/websub/follows/([0-9]{1,18})")
#: A topic no token is expected to grant: asking for it checks the token only.
_NO_TOPIC = "urn:websub-bridge:token-check"
#: Largest body of a follows API request.
MAX_API_BODY = 64 * 1024


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    import datetime

    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def follow_document(follow: Follow) -> dict[str, Any]:
    """A follow as the API shows it: never its callback tokens or secrets."""
    return {
        "id": follow.id,
        "topic": follow.topic,
        "mercure_topic": follow.target_topic,
        "private": follow.private,
        "mode": follow.mode,
        "lease_seconds": follow.lease_seconds,
        "state": follow.state,
        "hub": follow.hub_url,
        "self": follow.self_url,
        "lease_expires": _iso(follow.lease_expires),
        "denial_reason": follow.denial_reason,
        "last_error": follow.last_error,
        "origin": follow.origin,
    }


_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no", ""})


def _form_table(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name, value in pairs:
        if name in table:
            raise Refused(400, f"field {name!r} is given twice")
        if name == "private":
            lowered = value.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise Refused(400, "'private' must be true or false")
            table[name] = lowered in _TRUE
        elif name == "lease_seconds":
            if not value.strip().isdigit():
                raise Refused(400, "'lease_seconds' must be a positive integer")
            table[name] = int(value)
        elif value == "" and name == "mercure_topic":
            continue
        else:
            table[name] = value
    return table


class BridgeResource(AsyncLeaf):
    """``/websub/...``: a leaf; routes on the whole path itself."""

    log = Logger()

    def __init__(self, follower: Follower, port: IHubPort, *, max_body_size: int) -> None:
        super().__init__()
        self._follower = follower
        self._port = port
        self._max_body_size = max_body_size

    def loggable_path(self, request: IRequest) -> str:
        return _safe_path(request)

    async def answer(self, request: IRequest) -> Reply:
        path = request.path.decode("latin-1")
        method = request.method
        if path.startswith("/websub/callback/"):
            match = _CALLBACK.fullmatch(path)
            if match is None:
                return _text(Answer(404, "no subscription has this callback"))
            if method == b"GET":
                return _text(await self._verification(request, match.group(1)))
            if method == b"POST":
                return _text(await self._delivery(request, match.group(1)))
            raise Refused(405, "callbacks answer GET (verification) and POST (content)")
        if path in (_FOLLOWS, _FOLLOWS + "/"):
            if method == b"GET":
                return await self._list(request)
            if method == b"POST":
                return await self._add(request)
            raise Refused(405, "use GET to list follows or POST to add one")
        match = _FOLLOW.fullmatch(path.rstrip("/"))
        if match is not None:
            if method == b"GET":
                return await self._show(request, int(match.group(1)))
            if method == b"DELETE":
                return await self._remove(request, int(match.group(1)))
            raise Refused(405, "use GET to show a follow or DELETE to remove it")
        raise Refused(404, "no such WebSub resource")

    # -- callbacks -----------------------------------------------------

    async def _verification(self, request: IRequest, token: str) -> Answer:
        query = urlsplit(request.uri.decode("latin-1")).query
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise Refused(400, "the query string is not valid UTF-8") from None
        values: dict[str, str] = {}
        for name, value in pairs:
            if name.startswith("hub."):
                if name in values:
                    raise Refused(400, f"{name} is given twice")
                values[name] = value
        return await self._follower.verification(
            token,
            mode=values.get("hub.mode"),
            topic=values.get("hub.topic"),
            challenge=values.get("hub.challenge"),
            lease_seconds=values.get("hub.lease_seconds"),
            reason=values.get("hub.reason"),
        )

    async def _delivery(self, request: IRequest, token: str) -> Answer:
        body = read_body(request, self._max_body_size)
        content_type = request.getHeader(b"content-type")
        signature = request.getHeader(b"x-hub-signature")
        return await self._follower.delivery(
            token,
            body,
            content_type=content_type.decode("latin-1") if content_type is not None else None,
            signature=signature.decode("latin-1") if signature is not None else None,
        )

    # -- the follows API -------------------------------------------------

    async def _authorize(self, request: IRequest, topic: str) -> None:
        try:
            await self._port.authorize_publisher(request, topic)
        except NotAuthorized as e:
            raise Refused(e.status, e.reason, e.challenge) from None

    async def _check_token(self, request: IRequest) -> None:
        """401 (or 400) unless the request presents a valid publisher token,
        whatever it grants: checked before anything is looked up."""
        try:
            await self._port.authorize_publisher(request, _NO_TOPIC)
        except NotAuthorized as e:
            if e.status != 403:
                raise Refused(e.status, e.reason, e.challenge) from None

    async def _visible(self, request: IRequest, follow: Follow) -> bool:
        try:
            await self._port.authorize_publisher(request, follow.target_topic)
        except NotAuthorized as e:
            if e.status != 403:
                raise Refused(e.status, e.reason, e.challenge) from None
            return False
        return True

    async def _list(self, request: IRequest) -> Reply:
        await self._check_token(request)
        visible = []
        for follow in await self._follower.follows():
            if await self._visible(request, follow):
                visible.append(follow_document(follow))
        return _json(200, {"follows": visible})

    async def _add(self, request: IRequest) -> Reply:
        spec = self._spec(request)
        # Without mercure_topic an API follow publishes on the followed URL
        # itself: the token is checked against the topic the follow will
        # publish on, which the discovered rel=self could otherwise change.
        target = spec.mercure_topic or spec.topic
        problem = self._port.topic_problem(target)
        if problem is not None:
            raise Refused(400, f"mercure_topic: {problem}")
        await self._authorize(request, target)
        if spec.mercure_topic is None:
            spec = FollowSpec(
                topic=spec.topic, mercure_topic=target, private=spec.private,
                lease_seconds=spec.lease_seconds, mode=spec.mode,
            )
        try:
            follow = await self._follower.add(spec)
        except DuplicateFollow:
            raise Refused(409, f"{spec.topic} is already followed") from None
        except TooManyFollows as e:
            raise Refused(
                409, f"the bridge follows its maximum of {e} topics already (websub.max_follows)"
            ) from None
        return _json(201, follow_document(follow))

    def _spec(self, request: IRequest) -> FollowSpec:
        body = read_body(request, MAX_API_BODY)
        media = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if media == b"application/json":
            try:
                table = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise Refused(400, "the body is not valid JSON") from None
            if not isinstance(table, dict):
                raise Refused(400, "the body must be a JSON object")
        elif media == b"application/x-www-form-urlencoded":
            try:
                pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
            except (UnicodeDecodeError, ValueError):
                raise Refused(400, "the form is not valid UTF-8") from None
            table = _form_table(pairs)
        else:
            raise Refused(415, "send the follow as application/json or application/x-www-form-urlencoded")
        if table.get("mercure_topic") is None:
            table.pop("mercure_topic", None)
        try:
            return follow_spec(table, "the request")
        except ValueError as e:
            raise Refused(400, str(e)) from None

    async def _existing(self, request: IRequest, follow_id: int) -> Follow:
        await self._check_token(request)
        follow = await self._follower.follow(follow_id)
        if follow is None:
            raise Refused(404, f"no follow {follow_id}")
        await self._authorize(request, follow.target_topic)
        return follow

    async def _show(self, request: IRequest, follow_id: int) -> Reply:
        follow = await self._existing(request, follow_id)
        return _json(200, follow_document(follow))

    async def _remove(self, request: IRequest, follow_id: int) -> Reply:
        follow = await self._existing(request, follow_id)
        removed = await self._follower.remove(follow.id)
        return _json(202, follow_document(removed or follow))


def _text(answer: Answer, challenge: bytes | None = None) -> Reply:
    body = answer.body if answer.exact else answer.body.rstrip("\n") + "\n"
    return answer.status, body.encode("utf-8"), "text/plain; charset=utf-8", challenge


def _json(status: int, document: Any) -> Reply:
    return status, json.dumps(document).encode("utf-8"), "application/json", None


def _safe_path(request: IRequest) -> str:
    """The request path without a callback's capability token."""
    path: str = request.path.decode("latin-1")
    if path.startswith("/websub/callback/"):
        return "/websub/callback/<token>"
    return path
