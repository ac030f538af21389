"""The follow role in memory: a real hub, a real bridge, a WebSub world as Resources.

* ``World`` is the outside: a publisher serving an Atom feed with
  ``Link`` headers and a WebSub hub endpoint, as one real ``twisted.web``
  resource reached by the bridge's real ``OutboundClient`` through
  ``RequestTraversalAgent`` (no sockets).  Its hub records every request and
  answers from a script: a status, headers, a redirect, an answer held back,
  a verification made before answering (as synchronous hubs do).
* ``Kit`` is our side: the Mercure hub of ``build_application`` (memory
  transport, real token verifier), the bridge mounted on it under
  ``/websub``, its store in a real SQLite file, every timer on one
  ``task.Clock``.  The hub's calls to our callbacks go through ``StubTreq``
  over the hub's root resource, as they would over the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import attrs
import pytest
import treq
from treq.testing import RequestTraversalAgent, StubTreq
from twisted.internet import defer, task
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from mercure_twisted.app import build_application
from mercure_twisted.config import HubConfig, KeySpec
from mercure_twisted.update import Update
from tests.unit._web import SECRET, draft07_token
from websub_bridge.client import OutboundClient
from websub_bridge.config import BridgeConfig, FollowSpec
from websub_bridge.service import build_bridge
from websub_bridge.guard import AddressPolicy
from websub_bridge.port import InProcessPort
from websub_bridge.store import Callback, Follow, InlineExecutor, Store

PUBLIC = "http://bridge.example"
TOPIC = "http://pub.example/feed"
HUB_HTTP = "http://hub.example/hub"
HUB_HTTPS = "https://hub.example/hub"
MERCURE_HUB = "http://mercure.example/.well-known/mercure"

__all__ = ["Kit", "World", "atom", "draft07_token", "sign"]


def atom(*entries: tuple[str, str]) -> bytes:
    items = "".join(
        f"<entry><id>{id}</id><title>{title}</title><updated>2026-01-01T00:00:00Z</updated></entry>"
        for id, title in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>{TOPIC}</id><title>t</title><updated>2026-01-01T00:00:00Z</updated>{items}</feed>"
    ).encode()


def sign(algorithm: str, secret: str, body: bytes) -> str:
    return algorithm + "=" + hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()


@attrs.define
class HubAnswer:
    status: int = 202
    headers: dict[str, str] = attrs.Factory(dict)
    body: bytes = b""


class World(Resource):
    """The publisher (``/feed``) and the WebSub hub (``/hub``, ``/hub2``)."""

    isLeaf = True

    def __init__(self, hub_url: str = HUB_HTTP) -> None:
        super().__init__()
        self.hub_url = hub_url
        self.self_url = TOPIC
        self.feed = atom()
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, url path, form
        self.answers: list[HubAnswer] = []
        self.before_answer: Callable[[dict[str, str]], None] | None = None
        self.hold = False
        self.held: list[Request] = []

    @property
    def hub_posts(self) -> list[dict[str, str]]:
        return [form for method, path, form in self.requests if method == "POST"]

    def render(self, request: Request) -> bytes | int:
        path = request.path.decode()
        method = request.method.decode()
        if path == "/feed" and method in ("GET", "HEAD"):
            self.requests.append((method, path, {}))
            request.setHeader(b"content-type", b"application/atom+xml")
            if self.hub_url:
                request.responseHeaders.addRawHeader(b"link", f'<{self.hub_url}>; rel="hub"'.encode())
            request.responseHeaders.addRawHeader(b"link", f'<{self.self_url}>; rel="self"'.encode())
            return self.feed
        if path in ("/hub", "/hub2") and method == "POST":
            form = dict(parse_qsl(request.content.read().decode(), keep_blank_values=True))
            form["_path"] = path
            self.requests.append((method, path, form))
            if self.before_answer is not None:
                self.before_answer(form)
            if self.hold:
                self.held.append(request)
                return NOT_DONE_YET
            answer = self.answers.pop(0) if self.answers else HubAnswer()
            request.setResponseCode(answer.status)
            for name, value in answer.headers.items():
                request.setHeader(name.encode(), value.encode())
            return answer.body
        request.setResponseCode(404)
        return b"not found"

    def release(self, status: int = 202) -> None:
        for request in self.held:
            request.setResponseCode(status)
            request.finish()
        self.held = []


def _settle(d: defer.Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "did not finish in memory"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


class Kit:
    def __init__(
        self,
        db: Path,
        *,
        world: World | None = None,
        follows: tuple[FollowSpec, ...] = (FollowSpec(topic=TOPIC),),
        clock: task.Clock | None = None,
        **bridge: Any,
    ) -> None:
        self.db = db
        self.world = world or World()
        if clock is None:
            clock = task.Clock()
            clock.advance(time.time())
        self.clock = clock
        config = HubConfig(
            keys=(
                KeySpec(role="publisher", alg="HS256", key=SECRET),
                KeySpec(role="subscriber", alg="HS256", key=SECRET),
            ),
            public_url=MERCURE_HUB,
            websub_public_url=PUBLIC,
        )
        self.site, self.hub_service = build_application(config, clock)
        self.hub_service.startService()
        self.agent = RequestTraversalAgent(self.world)
        client = OutboundClient(clock, AddressPolicy(), agent=self.agent)
        self.store = Store(InlineExecutor(str(db)))
        web = self.site.resource.web
        port = InProcessPort(self.hub_service.hub, web.verifier, lambda request: MERCURE_HUB)
        self.config = BridgeConfig(public_url=PUBLIC, follows=follows, **bridge)
        resources, self.service = build_bridge(
            self.config, reactor=clock, port=port, data_dir=str(db.parent), store=self.store,
            client=client, metrics=self.hub_service.metrics,
        )
        self.follower = self.service.follower
        for prefix, resource in resources.items():
            self.site.resource.mount(prefix, resource)
        self.stub = StubTreq(self.site.resource)
        self.service.startService()
        self.advance(0)

    # -- driving -------------------------------------------------------

    def pump(self) -> None:
        for _ in range(30):
            self.agent.flush()
            self.stub.flush()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.pump()

    def run(self, d: defer.Deferred[Any] | Any) -> Any:
        if not isinstance(d, defer.Deferred):
            d = defer.Deferred.fromCoroutine(d)
        self.pump()
        return _settle(d)

    def stop(self) -> None:
        self.run(self.service.stopService())
        self.run(self.hub_service.stopService())

    # -- the hub's side of the callbacks ---------------------------------

    def call(self, method: str, url: str, **kwargs: Any) -> tuple[int, bytes, Any]:
        response = self.run(self.stub.request(method, url, **kwargs))
        body = self.run(treq.content(response))
        return response.code, body, response.headers

    def verify(
        self, callback_url: str, mode: str = "subscribe", topic: str = TOPIC,
        challenge: str | None = "chal-1234", lease: str | None = "1000", **extra: str,
    ) -> tuple[int, bytes]:
        params = {"hub.mode": mode, "hub.topic": topic}
        if challenge is not None:
            params["hub.challenge"] = challenge
        if lease is not None:
            params["hub.lease_seconds"] = lease
        params.update(extra)
        status, body, _ = self.call("GET", callback_url + "?" + urlencode(params))
        return status, body

    def deliver(self, callback_url: str, body: bytes, **headers: str) -> tuple[int, bytes]:
        raw = {name.replace("_", "-").encode(): [value.encode()] for name, value in headers.items()}
        status, answer, _ = self.call("POST", callback_url, data=body, headers=raw)
        return status, answer

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers[b"Authorization"] = [f"Bearer {token}".encode()]
        status, body, response_headers = self.call(method, PUBLIC + path, headers=headers, **kwargs)
        self.last_headers = response_headers
        if response_headers.getRawHeaders(b"content-type", [b""])[0].startswith(b"application/json"):
            import json

            return status, json.loads(body)
        return status, body.decode()

    # -- looking ------------------------------------------------------

    def follows(self) -> list[Follow]:
        return self.run(self.store.follows())  # type: ignore[no-any-return]

    def follow(self) -> Follow:
        (follow,) = self.follows()
        return follow

    def callbacks(self) -> list[Callback]:
        return self.run(self.store.callbacks())  # type: ignore[no-any-return]

    def published(self) -> list[Update]:
        history = self.run(self.hub_service.hub.transport.history("earliest"))
        return list(history.updates)

    def subscribed(self) -> str:
        """Verify the last subscription request; returns its callback URL."""
        callback = self.world.hub_posts[-1]["hub.callback"]
        assert self.verify(callback) == (200, b"chal-1234")
        return callback


@pytest.fixture
def no_failures() -> Iterator[list[Any]]:
    """Fails the test if anything logged a failure (a crashed timer, a lost task)."""
    failures: list[Any] = []

    def observe(event: Any) -> None:
        if event.get("log_failure") is not None:
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        yield failures
    finally:
        globalLogPublisher.removeObserver(observe)
    assert not failures, [formatEvent(e) + "\n" + e["log_failure"].getTraceback() for e in failures]
