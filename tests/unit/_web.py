"""Drive the hub's Klein resource in memory with StubTreq.

StubTreq pumps an in-memory connection; a subscriber's stream is read with
``treq.collect``.  Simulating a client that goes away needs private
attributes of StubTreq's fake transport: that knowledge lives only here.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import treq
from treq.testing import StubTreq
from twisted.internet.task import Clock

from mercure_twisted.app import build_application
from tests import tokens
from mercure_twisted.config import HubConfig, KeySpec

SECRET = "test-secret-that-is-long-enough-for-hs256!"
HUB = "http://hub.test/.well-known/mercure"


def draft07_token(publish: list[str] | None = None, subscribe: list[str] | None = None,
                  payload: Any = None, exp: float | None = None, key: str = SECRET) -> str:
    return tokens.draft07_token(key, publish, subscribe, payload, exp)


def draft08_token(*details: dict[str, Any], exp: float | None = None,
                  aud: str = HUB, iss: str = "https://app.test", key: str = SECRET) -> str:
    return tokens.draft08_token(key, aud, *details, iss=iss, exp=exp)


@attrs.define
class WebHub:
    stub: StubTreq
    clock: Clock
    hub: Any
    service: Any

    def url(self, path: str = "") -> str:
        return "http://hub.test/.well-known/mercure" + path

    def flush(self) -> None:
        self.stub.flush()


def make_hub(**settings: Any) -> WebHub:
    settings.setdefault("keys", (
        KeySpec(role="publisher", alg="HS256", key=SECRET),
        KeySpec(role="subscriber", alg="HS256", key=SECRET),
    ))
    config = HubConfig(**settings)
    clock = Clock()
    clock.advance(time.time())
    site, service = build_application(config, clock)
    service.startService()
    stub = StubTreq(site.resource)
    web = WebHub(stub=stub, clock=clock, hub=service.hub, service=service)
    return web


class Stream:
    """An open SSE response read incrementally."""

    def __init__(self, web: WebHub, response: Any, pumps: set[Any]) -> None:
        self.web = web
        self.response = response
        self.pumps = pumps
        self.chunks: list[bytes] = []
        self.done = treq.collect(response, self.chunks.append)

    @property
    def data(self) -> bytes:
        self.web.flush()
        return b"".join(self.chunks)

    def ids(self) -> list[str]:
        return [l[4:].decode() for l in self.data.split(b"\n") if l.startswith(b"id: ")]

    def events(self) -> list[dict[str, str]]:
        events = []
        for block in self.data.split(b"\n\n"):
            fields: dict[str, str] = {}
            for line in block.split(b"\n"):
                if line.startswith(b":") or not line:
                    continue
                name, _, value = line.decode().partition(": ")
                fields[name] = fields[name] + "\n" + value if name in fields else value
            if fields:
                events.append(fields)
        return events

    def disconnect(self) -> None:
        """The client goes away (uses StubTreq internals, see module docstring)."""
        self.done.addErrback(lambda _: None)  # the client side sees data loss
        cut(self.web, self.pumps)


def cut(web: WebHub, pumps: set[Any]) -> None:
    """Close both ends of the given in-memory connections."""
    for pump in pumps:
        pump.clientIO.loseConnection()
        pump.serverIO.loseConnection()
    web.flush()


def start_get(web: WebHub, url: str, **kwargs: Any) -> tuple[Any, set[Any]]:
    """Send a GET; return its Deferred response and the connection it opened."""
    before = _pumps(web)
    d = web.stub.get(url, **kwargs)
    web.flush()
    return d, _pumps(web) - before


def _pumps(web: WebHub) -> set[Any]:
    return set(web.stub._agent._pumps)  # type: ignore[attr-defined]


def open_stream(web: WebHub, url: str, **kwargs: Any) -> Any:
    """GET ``url``; return a Stream for a 200 or the plain response otherwise."""
    d, pumps = start_get(web, url, **kwargs)
    response = d.result if d.called else None
    assert response is not None, "no response headers yet"
    if response.code != 200:
        return response
    return Stream(web, response, pumps)
