"""Subscription requests end to end in memory: 202 first, verification
after; a verified request replaces, a failed one leaves the old one; a
topic not offered is denied; per-host caps."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from twisted.web.server import Request

from websub_bridge.hub._config import HubRoleConfig, OfferedTopic
from websub_bridge.hub._requests import RequestError, SubscriptionRequest
from websub_bridge.hub._sqlite_store import SQLiteHubStore
from websub_bridge.hub._subscriptions import Subscriptions
from websub_bridge.store import InlineExecutor, Store

from ._outbound_kit import Kit, Routes, loopback_policy, settle

CB = "http://127.0.0.1/cb?k=1"
TOPIC = "https://app.example/books/1"


class World:
    def __init__(self, tmp_path: Path, *, answer: str = "echo", max_per_host: int = 10) -> None:
        self.answer = answer
        self.routes = Routes({"/cb": self.callback})
        self.kit = Kit(self.routes, policy=loopback_policy())
        store = Store(InlineExecutor(str(tmp_path / "websub.db")))
        settle(store.migrate())
        self.store = SQLiteHubStore(store)
        config = HubRoleConfig(
            topics=(OfferedTopic("https://app.example/books/{id}"),),
            max_subscriptions_per_host=max_per_host,
        )
        self.subs = Subscriptions(store=self.store, client=self.kit.client, config=config, clock=self.kit.clock)

    def callback(self, request: Request) -> bytes:
        if self.answer == "echo" and request.args.get(b"hub.mode") != [b"denied"]:
            return request.args[b"hub.challenge"][0]
        return b"no"

    def request(self, mode: str = "subscribe", topic: str = TOPIC, callback: str = CB, secret: str | None = None) -> None:
        r = SubscriptionRequest(mode, callback, topic, None, secret)  # type: ignore[arg-type]
        self.kit.run(self.subs.accept(r))
        self.kit.pump()

    def modes_seen(self) -> list[str]:
        return [dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(p).query))["hub.mode"] for _, p, _, _ in self.routes.seen]


def test_a_verified_subscription_is_recorded_with_its_lease(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.request(secret="s3cret")
    sub = settle(w.store.subscription(TOPIC, CB))
    assert sub is not None and sub.secret == "s3cret"
    assert sub.lease_expires == pytest.approx(w.kit.clock.seconds() + 864000)
    assert w.modes_seen() == ["subscribe"]


def test_a_failed_verification_leaves_the_old_subscription(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.request(secret="old")
    w.answer = "refuse"
    w.request(secret="new")
    sub = settle(w.store.subscription(TOPIC, CB))
    assert sub is not None and sub.secret == "old"


def test_unsubscription_takes_effect_only_once_verified(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.request()
    w.answer = "refuse"
    w.request("unsubscribe")
    assert settle(w.store.subscription(TOPIC, CB)) is not None
    w.answer = "echo"
    w.request("unsubscribe")
    assert settle(w.store.subscription(TOPIC, CB)) is None


def test_a_topic_not_offered_is_denied(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.request(topic="https://app.example/private")
    assert w.modes_seen() == ["denied"]
    assert settle(w.store.subscriptions()) == []


def test_a_host_at_its_cap_is_refused_with_429(tmp_path: Path) -> None:
    w = World(tmp_path, max_per_host=1)
    w.request()
    r = SubscriptionRequest("subscribe", CB, "https://app.example/books/2", None, None)
    with pytest.raises(RequestError) as info:
        w.kit.run(w.subs.accept(r))
    assert info.value.status == 429
    # Renewing an existing subscription is never refused by the cap.
    w.request()
