"""``POST /websub/hub``: the hub role's one endpoint (WebSub sections 5.1 and 6).

A form with ``hub.mode=subscribe`` or ``unsubscribe`` is answered 202 once
it is well formed and acceptable; its verification of intent follows, on
its own (`Subscriptions`).  A ``hub.mode=publish`` ping is answered 204
once its publisher token allows every URL it names and the operator lets
those URLs be pinged (``[websub.hub] publish_topics``); the fetch and the
publication follow (`Pings`).  Anything else is a precise 4xx with a
plain-text reason (section 5.1.2: "the hub MUST ... return an appropriate
HTTP error (4xx or 5xx)" with a description).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from twisted.web.iweb import IRequest

from .._leaf import AsyncLeaf, Refused, Reply, read_body, text_reply
from ..port import IHubPort, NotAuthorized
from ._config import HubRoleConfig
from ._pings import Pings
from ._requests import PublishPing, RequestError, parse_hub_request
from ._subscriptions import Subscriptions

__all__ = ["HubEndpoint", "MAX_FORM_BODY"]

#: Largest hub form (a few URLs and a secret).
MAX_FORM_BODY = 64 * 1024
_FORM = b"application/x-www-form-urlencoded"


class HubEndpoint(AsyncLeaf):
    """``/websub/hub``."""

    def __init__(
        self,
        *,
        subscriptions: Subscriptions,
        pings: Pings,
        port: IHubPort,
        config: HubRoleConfig,
    ) -> None:
        super().__init__()
        self._subscriptions = subscriptions
        self._pings = pings
        self._port = port
        self._config = config

    async def answer(self, request: IRequest) -> Reply:
        if request.path.rstrip(b"/") != b"/websub/hub":
            raise Refused(404, "no such WebSub resource")
        if request.method != b"POST":
            raise Refused(
                405,
                "this is a WebSub hub: POST an application/x-www-form-urlencoded form "
                "with hub.mode, hub.topic and hub.callback",
            )
        media = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if media != _FORM:
            raise Refused(415, "send the request as application/x-www-form-urlencoded")
        body = read_body(request, MAX_FORM_BODY)
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise Refused(400, "the form is not valid UTF-8") from None
        try:
            parsed = parse_hub_request(pairs)
            if isinstance(parsed, PublishPing):
                return await self._ping(request, parsed)
            await self._subscriptions.accept(parsed)
        except RequestError as e:
            raise Refused(e.status, e.reason) from None
        return text_reply(202, f"{parsed.mode} request accepted; the verification of intent follows")

    async def _ping(self, request: IRequest, ping: PublishPing) -> Reply:
        # The token first: who may not publish learns nothing of the
        # operator's list.
        for url in ping.urls:
            try:
                await self._port.authorize_publisher(request, url)
            except NotAuthorized as e:
                raise Refused(e.status, e.reason, e.challenge) from None
        for url in ping.urls:
            if not self._config.may_be_pinged(url):
                raise Refused(
                    403, f"this hub does not take publish pings for {url} (websub.hub.publish_topics)"
                )
            problem = self._port.topic_problem(url)
            if problem is not None:
                raise Refused(400, problem)
        for url in ping.urls:
            self._pings.ping(url)
        return 204, b"", "text/plain; charset=utf-8", None
