"""The WebSub hub role in memory, end to end inside one process.

A real Mercure hub (`build_application`, memory transport), the real bridge
with ``[websub.hub]`` mounted on it, its store in a real SQLite file, and
WebSub subscribers as one real ``twisted.web`` resource reached by the
bridge's real outbound client; every timer on one ``task.Clock``: leases,
retries, timeouts and sweeps run by advancing it.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from twisted.web.server import NOT_DONE_YET, Request

from mercure_twisted.update import Update, new_event_id
from websub_bridge.hub._config import HubRoleConfig, OfferedTopic
from websub_bridge.client import OutboundClient
from websub_bridge.guard import AddressPolicy
from websub_bridge.service import build_bridge
from websub_bridge.store import InlineExecutor, Store

from ._follow_kit import PUBLIC, Kit, World, draft07_token, no_failures  # noqa: F401

HUB = PUBLIC + "/websub/hub"
BOOK = "https://app.example/books/1"
NEWS = "https://app.example/news"
PAGE = "http://pub.example/page"
A = "http://a.example/cb"
B = "http://b.example/cb"
FORM = {b"Content-Type": [b"application/x-www-form-urlencoded"]}


class Subscribers(World):
    """Subscribers' callbacks (any host, path ``/cb``) and a page to ping."""

    def __init__(self) -> None:
        super().__init__()
        self.verifications: list[dict[str, str]] = []
        self.deliveries: list[tuple[str, dict[str, str], bytes]] = []  # host, headers, body
        self.status: dict[str, int] = {}
        self.echo = True
        self.holding: set[str] = set()
        self.held_posts: list[Request] = []
        self.page = b'{"title": "pinged"}'

    def render(self, request: Request) -> bytes | int:
        path = request.path.decode()
        host = (request.getHeader(b"host") or b"").decode()
        if path == "/cb" and request.method == b"GET":
            query = {k.decode(): v[0].decode() for k, v in request.args.items()}
            self.verifications.append(query)
            if query["hub.mode"] == "denied" or not self.echo:
                return b""
            return query["hub.challenge"].encode()
        if path == "/cb" and request.method == b"POST":
            headers = {
                k.decode().lower(): b", ".join(v).decode()
                for k, v in request.requestHeaders.getAllRawHeaders()
            }
            body = request.content.read()
            if host in self.holding:
                self.held_posts.append(request)
                return NOT_DONE_YET
            self.deliveries.append((host, headers, body))
            request.setResponseCode(self.status.get(host, 204))
            if request.code == 302:
                request.setHeader(b"location", b"http://elsewhere.example/")
            return b""
        if path == "/page":
            request.setHeader(b"content-type", b"application/json")
            return self.page
        return super().render(request)

    def bodies(self, host: str | None = None) -> list[bytes]:
        return [body for h, _, body in self.deliveries if host is None or h == host]


ROLE = HubRoleConfig(
    topics=(OfferedTopic("https://app.example/books/{id}"), OfferedTopic(NEWS, "text/plain")),
    publish_topics=(OfferedTopic(PAGE),),
    rate_per_host=1000.0,
    burst_per_host=1000,
    concurrency_per_host=2,
    max_attempts=3,
)


def role_kit(tmp_path: Path, role: HubRoleConfig = ROLE, **kw: Any) -> tuple[Kit, Subscribers]:
    world = Subscribers()
    kit = Kit(tmp_path / "websub.db", world=world, follows=(), hub=role, **kw)
    return kit, world


def hub_form(kit: Kit, token: str | None = None, **fields: str) -> tuple[int, str]:
    headers = dict(FORM)
    if token is not None:
        headers[b"Authorization"] = [f"Bearer {token}".encode()]
    body = urlencode({"hub." + k: v for k, v in fields.items()}).encode()
    status, answer, _ = kit.call("POST", HUB, data=body, headers=headers)
    kit.advance(0)
    return status, answer.decode()


def subscribe(kit: Kit, topic: str = BOOK, callback: str = A, **extra: str) -> None:
    status, answer = hub_form(kit, mode="subscribe", topic=topic, callback=callback, **extra)
    assert status == 202, answer


def publish(kit: Kit, topic: str = BOOK, data: str = '{"id": 1}', **kw: Any) -> str:
    update = kit.run(kit.hub_service.hub.publish(Update(topics=(topic,), id=new_event_id(), data=data, **kw)))
    kit.advance(0)
    return str(update.id)


def deliveries_metric(kit: Kit, outcome: str) -> float:
    value = kit.hub_service.metrics.websub_deliveries.labels(outcome=outcome)._value.get()
    return float(value)


def test_a_subscriber_gets_each_public_update_signed_with_the_links(tmp_path: Path, no_failures: Any) -> None:
    kit, world = role_kit(tmp_path)
    subscribe(kit, secret="s3cret", lease_seconds="7200")
    (check,) = world.verifications
    assert check["hub.mode"] == "subscribe" and check["hub.topic"] == BOOK
    assert check["hub.lease_seconds"] == "7200"
    publish(kit, data='{"id": 1}')
    ((host, headers, body),) = world.deliveries
    assert host == "a.example" and body == b'{"id": 1}'
    assert headers["content-type"] == "application/json"
    assert headers["link"] == f'<{HUB}>; rel="hub", <{BOOK}>; rel="self"'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature"] == "sha256=" + expected
    assert deliveries_metric(kit, "delivered") == 1
    kit.stop()


def test_private_updates_and_topics_not_offered_never_reach_websub(tmp_path: Path, no_failures: Any) -> None:
    kit, world = role_kit(tmp_path)
    subscribe(kit)
    subscribe(kit, topic=NEWS)
    publish(kit, data="secret", private=True)
    publish(kit, topic="https://app.example/other", data="not offered")
    publish(kit, topic=NEWS, data="news")
    ((_, headers, body),) = world.deliveries
    assert body == b"news" and headers["content-type"] == "text/plain"
    assert "x-hub-signature" not in headers  # no secret given: no signature
    kit.stop()


def test_a_topic_not_offered_is_denied_after_the_202(tmp_path: Path, no_failures: Any) -> None:
    kit, world = role_kit(tmp_path)
    subscribe(kit, topic="https://app.example/other")
    (denial,) = world.verifications
    assert denial["hub.mode"] == "denied" and denial["hub.topic"] == "https://app.example/other"
    assert denial["hub.reason"]
    publish(kit, topic="https://app.example/other")
    assert world.deliveries == []
    kit.stop()


def test_a_failed_verification_subscribes_nothing(tmp_path: Path, no_failures: Any) -> None:
    kit, world = role_kit(tmp_path)
    world.echo = False
    subscribe(kit)
    assert [v["hub.mode"] for v in world.verifications] == ["subscribe"]  # it was asked
    assert kit.run(kit.service.hub_store.subscription(BOOK, A)) is None
    publish(kit)
    assert world.deliveries == []
    kit.stop()


def test_unsubscription_takes_effect_once_verified(tmp_path: Path, no_failures: Any) -> None:
    kit, world = role_kit(tmp_path)
    subscribe(kit)
    status, _ = hub_form(kit, mode="unsubscribe", topic=BOOK, callback=A)
    assert status == 202
    assert [v["hub.mode"] for v in world.verifications] == ["subscribe", "unsubscribe"]
    publish(kit)
    assert world.deliveries == []
    kit.stop()


def test_410_ends_the_subscription(tmp_path: Path, no_failures: Any) -> None:
    kit, world = role_kit(tmp_path)
    subscribe(kit)
    world.status["a.example"] = 410
    publish(kit, data="1")
    publish(kit, data="2")
    assert world.bodies() == [b"1"]
    assert kit.run(kit.service.hub_store.subscription(BOOK, A)) is None
    assert deliveries_metric(kit, "gone") == 1
    kit.stop()


@pytest.mark.parametrize("status", [500, 302, 404])
def test_a_failure_or_redirect_is_retried_with_backoff_not_followed(
    tmp_path: Path, status: int, no_failures: Any
) -> None:
    kit, world = role_kit(tmp_path)
    subscribe(kit)
    world.status["a.example"] = status
    publish(kit, data="x")
    assert world.bodies() == [b"x"]
    assert deliveries_metric(kit, "retried") == 1
    world.status["a.example"] = 204
    kit.advance(10)  # the first retry waits at most base * 2**0 = 5 s
    assert world.bodies() == [b"x", b"x"]
    assert deliveries_metric(kit, "delivered") == 1
    assert not [r for r in world.requests if "elsewhere" in r[1]]
    kit.stop()


def test_after_max_attempts_the_notification_is_dropped_but_the_subscription_kept(
    tmp_path: Path, no_failures: Any
) -> None:
    kit, world = role_kit(tmp_path)
    subscribe(kit)
    world.status["a.example"] = 503
    publish(kit, data="lost")
    for _ in range(10):
        kit.advance(60)
    assert world.bodies() == [b"lost"] * 3  # max_attempts = 3
    assert deliveries_metric(kit, "failed") == 1
    assert kit.run(kit.service.hub_store.queue_depth()) == 0
    world.status["a.example"] = 204
    publish(kit, data="next")
    assert world.bodies()[-1] == b"next"
    kit.stop()


def test_a_dead_subscriber_does_not_delay_the_others(tmp_path: Path, no_failures: Any) -> None:
    kit, world = role_kit(tmp_path)
    subscribe(kit, callback=A)
    subscribe(kit, topic=NEWS, callback=A)
    subscribe(kit, callback=B)
    world.holding.add("a.example")  # a.example never answers
    for i in range(5):
        publish(kit, data=str(i))
    publish(kit, topic=NEWS, data="news")
    # b.example got everything at once; a.example has one request in flight
    # per subscription (in order), within its host's cap.
    assert world.bodies("b.example") == [str(i).encode() for i in range(5)]
    assert len(world.held_posts) == 2  # concurrency_per_host = 2
    kit.advance(10)  # delivery_timeout: the held requests time out (retried later)
    assert deliveries_metric(kit, "retried") >= 2
    kit.stop()


def release(world: Subscribers, status: int = 204) -> None:
    request = world.held_posts.pop(0)
    request.setResponseCode(status)
    request.finish()


def test_a_subscription_gets_its_notifications_one_at_a_time_in_order(
    tmp_path: Path, no_failures: Any
) -> None:
    kit, world = role_kit(tmp_path)
    subscribe(kit)
    world.holding.add("a.example")
    for i in range(8):  # more than are held in memory: the rest wait in the queue
        publish(kit, data=str(i))
    seen = []
    for _ in range(8):
        assert len(world.held_posts) == 1
        seen.append(world.held_posts[0].content.getvalue())
        release(world)
        kit.advance(0)  # the answer is read: the next one held goes at once
        if not world.held_posts:
            kit.advance(1.1)  # or, put back in the queue, a second later
    assert seen == [str(i).encode() for i in range(8)]
    kit.stop()


def test_a_retried_notification_keeps_the_later_ones_behind_it(
    tmp_path: Path, no_failures: Any
) -> None:
    kit, world = role_kit(tmp_path)
    subscribe(kit)
    world.holding.add("a.example")
    for i in range(4):
        publish(kit, data=str(i))
    release(world, 503)  # "0" fails: retried within 5 s
    kit.advance(0)
    assert world.held_posts == []  # "1".."3" wait for it
    seen = []
    for _ in range(4):
        kit.advance(6)
        assert len(world.held_posts) == 1
        seen.append(world.held_posts[0].content.getvalue())
        release(world)
    assert seen == [b"0", b"1", b"2", b"3"]
    kit.stop()


def test_a_queued_delivery_survives_a_restart(tmp_path: Path, no_failures: Any) -> None:
    kit, world = role_kit(tmp_path)
    subscribe(kit)
    world.status["a.example"] = 500
    publish(kit, data="durable")
    kit.stop()
    kit2, world2 = role_kit(tmp_path, clock=kit.clock)
    kit2.advance(3600)
    assert world2.bodies() == [b"durable"]
    kit2.stop()


def test_an_update_published_while_the_role_was_stopped_is_delivered_at_its_start(
    tmp_path: Path, no_failures: Any
) -> None:
    """The intake's cursor: a restarted bridge resumes after the last update
    it queued, from the hub's history, and queues nothing twice."""
    kit, world = role_kit(tmp_path)
    subscribe(kit)
    publish(kit, data="before")
    kit.run(kit.service.stopService())
    publish(kit, data="while stopped")
    resources, service = build_bridge(
        kit.config, reactor=kit.clock, port=kit.service.follower._port, data_dir=str(tmp_path),
        store=Store(InlineExecutor(str(tmp_path / "websub.db"))),
        client=OutboundClient(kit.clock, AddressPolicy(), agent=kit.agent),
    )
    for prefix, resource in resources.items():
        kit.site.resource.mount(prefix, resource)
    service.startService()
    kit.advance(0)
    publish(kit, data="after")
    assert world.bodies() == [b"before", b"while stopped", b"after"]
    kit.run(service.stopService())
    kit.run(kit.hub_service.stopService())


def test_leases_expire(tmp_path: Path, no_failures: Any) -> None:
    kit, world = role_kit(tmp_path)
    subscribe(kit, lease_seconds="3600")
    kit.advance(3601)
    kit.advance(60)  # the sweep
    assert kit.run(kit.service.hub_store.subscription(BOOK, A)) is None
    publish(kit)
    assert world.deliveries == []
    kit.stop()


def test_a_publish_ping_fetches_the_page_and_publishes_it(tmp_path: Path, no_failures: Any) -> None:
    role = HubRoleConfig(topics=(OfferedTopic(PAGE),), publish_topics=(OfferedTopic(PAGE),))
    kit, world = role_kit(tmp_path, role)
    subscribe(kit, topic=PAGE)
    status, answer = hub_form(kit, draft07_token(publish=[PAGE]), mode="publish", url=PAGE)
    assert status == 204, answer
    (update,) = kit.published()
    assert update.topics == (PAGE,) and update.data == '{"title": "pinged"}'
    assert world.bodies() == [b'{"title": "pinged"}']  # and on to WebSub subscribers
    kit.stop()


@pytest.mark.parametrize(
    ("token", "url", "status", "reason"),
    [
        (None, PAGE, 401, "publisher token"),
        (draft07_token(publish=["https://other.example/x"]), PAGE, 403, ""),
        (draft07_token(publish=["*"]), "http://pub.example/not-allowed", 403, "publish_topics"),
    ],
)
def test_a_publish_ping_needs_a_publisher_token_and_an_allowed_topic(
    tmp_path: Path, token: str | None, url: str, status: int, reason: str
) -> None:
    kit, world = role_kit(tmp_path)
    got, answer = hub_form(kit, token, mode="publish", url=url)
    assert got == status and reason in answer
    assert kit.published() == []
    kit.stop()


@pytest.mark.parametrize(
    ("method", "headers", "body", "status"),
    [
        ("GET", {}, b"", 405),
        ("POST", {b"Content-Type": [b"application/json"]}, b"{}", 415),
        ("POST", FORM, b"hub.mode=subscribe", 400),
        ("POST", FORM, b"hub.mode=dance&hub.topic=x&hub.callback=y", 400),
        ("POST", FORM, b"\xff=\xfe", 400),
        ("POST", FORM, b"hub.mode=subscribe&hub.topic=" + BOOK.encode() + b"&hub.callback=" + A.encode() + b"&hub.secret=" + b"s" * 200, 400),
    ],
)
def test_malformed_hub_requests_get_a_precise_status(
    tmp_path: Path, method: str, headers: dict[bytes, list[bytes]], body: bytes, status: int
) -> None:
    kit, world = role_kit(tmp_path)
    got, answer, _ = kit.call(method, HUB, data=body, headers=headers)
    assert got == status, answer
    assert answer.endswith(b"\n") and len(answer) > 1
    assert world.verifications == []
    kit.stop()


def test_an_update_nobody_subscribed_to_costs_no_store_call(tmp_path: Path, no_failures: Any) -> None:
    kit, world = role_kit(tmp_path)
    store = kit.service.hub_store
    calls: list[str] = []
    enqueue = store.enqueue

    def counting(update_id: str, *args: Any) -> Any:
        calls.append(update_id)
        return enqueue(update_id, *args)

    store.enqueue = counting  # type: ignore[method-assign]
    for i in range(5):
        publish(kit, data=str(i))  # offered, but no subscriber yet
    assert calls == []
    subscribe(kit)  # this process's verified subscription: known at once
    publish(kit, data="now")
    assert len(calls) == 1 and world.bodies() == [b"now"]
    kit.stop()


def test_a_subscription_another_node_made_is_served_after_the_refresh(
    tmp_path: Path, no_failures: Any
) -> None:
    from websub_bridge.hub._store import Subscription
    from websub_bridge.hub.role import HubRole

    kit, world = role_kit(tmp_path)
    now = kit.clock.seconds()
    kit.run(kit.service.hub_store.put_subscription(
        Subscription(topic=BOOK, callback=A, secret=None, lease_expires=now + 3600, created_at=now)
    ))
    kit.advance(HubRole.TOPICS_REFRESH)
    publish(kit, data="seen")
    assert world.bodies() == [b"seen"]
    kit.stop()


def test_the_cursor_is_written_at_most_once_a_second(tmp_path: Path, no_failures: Any) -> None:
    kit, world = role_kit(tmp_path)
    writes: list[str] = []
    set_cursor = kit.store.set_cursor

    def counting(name: str, event_id: str) -> Any:
        writes.append(event_id)
        return set_cursor(name, event_id)

    kit.store.set_cursor = counting  # type: ignore[method-assign]
    ids = [publish(kit, data=str(i)) for i in range(20)]
    assert writes == []
    kit.advance(1)
    assert writes == [ids[-1]]
    assert kit.run(kit.store.cursor("*")) == ids[-1]
    last = publish(kit, data="last")
    kit.run(kit.service.stopService())  # a stop writes what is pending
    assert writes == [ids[-1], last]
    kit.run(kit.hub_service.stopService())


def test_with_a_shared_store_another_nodes_subscription_is_served_at_once(
    tmp_path: Path, no_failures: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster: the node that took the subscription may stop before it
    queues anything, so every node asks the shared store about every update."""
    from websub_bridge.hub._sqlite_store import SQLiteHubStore
    from websub_bridge.hub._store import Subscription

    monkeypatch.setattr(SQLiteHubStore, "shared", True)
    kit, world = role_kit(tmp_path)
    now = kit.clock.seconds()
    kit.run(kit.service.hub_store.put_subscription(
        Subscription(topic=BOOK, callback=A, secret=None, lease_expires=now + 3600, created_at=now)
    ))
    publish(kit, data="at once")
    assert world.bodies() == [b"at once"]
    kit.stop()


def test_a_burst_to_a_slow_subscriber_arrives_whole_and_in_order(tmp_path: Path, no_failures: Any) -> None:
    """Deliveries put back in the queue must not leapfrog one another (each
    one claimed while a later one waits would otherwise go behind it again,
    for ever): the subscriber answers each request 0.3 s after it came."""
    kit, world = role_kit(tmp_path)
    subscribe(kit)
    world.holding.add("a.example")
    seen: list[bytes] = []

    def answer_later() -> None:
        for request in list(world.held_posts):
            world.held_posts.remove(request)
            kit.clock.callLater(0.3, lambda r=request: (seen.append(r.content.getvalue()), r.finish()))

    hub = kit.hub_service.hub
    for i in range(20):
        hub.publish(Update(topics=(BOOK,), id=new_event_id(), data=str(i)))
    for _ in range(400):
        answer_later()
        kit.advance(0.1)
    assert seen == [str(i).encode() for i in range(20)]
    assert kit.run(kit.service.hub_store.queue_depth()) == 0
    kit.stop()


def test_a_stop_gives_back_its_claims_so_a_restart_sends_at_once_in_order(
    tmp_path: Path, no_failures: Any
) -> None:
    kit, world = role_kit(tmp_path)
    subscribe(kit)
    world.holding.add("a.example")
    for i in range(3):
        publish(kit, data=str(i))  # "0" in flight, "1" and "2" held behind it
    assert len(world.held_posts) == 1
    kit.stop()
    kit2, world2 = role_kit(tmp_path, clock=kit.clock)
    kit2.advance(1)  # well before any claim would have expired
    assert world2.bodies() == [b"0", b"1", b"2"]
    kit2.stop()
