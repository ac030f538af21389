"""HttpHubPort against a small Mercure-like hub, over real HTTP on loopback.

The fake hub (a twisted.web resource on 127.0.0.1:0, the real reactor via
pytest-twisted) keeps a history, replays it after ``Last-Event-ID``,
streams live events, can cut streams (even in the middle of an event),
answers scripted statuses, and records every request.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from twisted.web.test.requesthelper import DummyRequest

from mercure_twisted.auth import TokenVerifier
from mercure_twisted.config import HubConfig, KeySpec
from tests import tokens
from websub_bridge.http_port import HttpHubPort, check_subscriber_token
from websub_bridge.port import HubUnavailable, NotAuthorized, ReceivedUpdate

from .._transport_backends import sleep, wait_until

TOPIC = "https://app.example/books/1"
SECRET = "unit-secret-that-is-long-enough-for-hs256!!"
PUBLISHER = tokens.draft07_token(SECRET, publish=["*"])
SUBSCRIBER = tokens.draft07_token(SECRET, subscribe=[])


def frame(id: str, data: str, type: str | None = None) -> bytes:
    out = f"id: {id}\n" + (f"event: {type}\n" if type else "")
    out += "".join(f"data: {line}\n" for line in data.split("\n")) + "\n"
    return out.encode()


class FakeHub(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.history: list[tuple[str, str, str | None]] = []
        self.streams: list[Request] = []
        self.gets: list[dict[str, str]] = []
        self.posts: list[tuple[dict[str, str], list[tuple[str, str]]]] = []
        self.answers: list[tuple[int, bytes, bytes]] = []  # next GETs: status, type, body
        self.publish_answer: tuple[int, bytes] | None = None
        self.retry: int | None = None

    @staticmethod
    def _headers(request: Request) -> dict[str, str]:
        return {
            k.decode().lower(): b", ".join(v).decode()
            for k, v in request.requestHeaders.getAllRawHeaders()
        }

    def render_POST(self, request: Request) -> bytes:
        body = request.content.read() if request.content is not None else b""
        form = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
        self.posts.append((self._headers(request), form))
        if self.publish_answer is not None:
            status, answer = self.publish_answer
            request.setResponseCode(status)
            return answer
        id = dict(form).get("id") or f"urn:hub:{len(self.history)}"
        self.history.append((id, dict(form).get("data", ""), dict(form).get("type")))
        return id.encode()

    def render_GET(self, request: Request) -> bytes | int:
        headers = self._headers(request)
        headers["uri"] = request.uri.decode()
        self.gets.append(headers)
        if self.answers:
            status, content_type, body = self.answers.pop(0)
            request.setResponseCode(status)
            request.setHeader(b"content-type", content_type)
            return body
        request.setHeader(b"content-type", b"text/event-stream")
        since = headers.get("last-event-id")
        start = 0
        if since is not None:
            ids = [id for id, _, _ in self.history]
            start = ids.index(since) + 1 if since in ids else 0
            request.setHeader(b"mercure-last-event-id", since if since in ids else "earliest")
        request.write(b":\n\n" + (f"retry: {self.retry}\n\n".encode() if self.retry is not None else b""))
        for id, data, type in self.history[start:]:
            request.write(frame(id, data, type))
        self.streams.append(request)
        request.notifyFinish().addBoth(lambda _: self.streams.remove(request))
        return NOT_DONE_YET

    def publish(self, id: str, data: str = "d", type: str | None = None) -> None:
        self.history.append((id, data, type))
        for stream in list(self.streams):
            stream.write(frame(id, data, type))

    def cut(self, partial: bytes = b"") -> None:
        """Drop every open stream, after writing ``partial`` (half an event)."""
        for stream in list(self.streams):
            if partial:
                stream.write(partial)
            stream.channel.transport.abortConnection()  # type: ignore[union-attr]


@pytest.fixture
def hub() -> Iterator[tuple[FakeHub, str]]:
    resource = FakeHub()
    root = Resource()
    well_known = Resource()
    root.putChild(b".well-known", well_known)
    well_known.putChild(b"mercure", resource)
    listening = reactor.listenTCP(0, Site(root), interface="127.0.0.1")  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{listening.getHost().port}/.well-known/mercure"
    yield resource, url
    resource.cut()
    pytest_twisted.blockon(listening.stopListening())


def verifier() -> TokenVerifier:
    return TokenVerifier(HubConfig(keys=(KeySpec("publisher", key=SECRET),)), clock=reactor)


@pytest.fixture
def ports() -> Iterator[list[HttpHubPort]]:
    made: list[HttpHubPort] = []
    yield made
    for port in made:
        pytest_twisted.blockon(port.close())


def make_port(ports: list[HttpHubPort], url: str, **kw: Any) -> HttpHubPort:
    settings: dict[str, Any] = dict(
        publisher_token=PUBLISHER, subscriber_token=SUBSCRIBER, verifier=verifier(),
        reactor=reactor, timeout=2.0, backoff_start=0.01, backoff_cap=0.05,
    )
    settings.update(kw)
    port = HttpHubPort(url, **settings)
    ports.append(port)
    return port


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.updates: list[ReceivedUpdate] = []
        self.delay = delay
        self.running = 0
        self.overlapped = False

    async def __call__(self, update: ReceivedUpdate) -> None:
        self.running += 1
        self.overlapped |= self.running > 1
        try:
            if self.delay:
                await sleep(self.delay)
            self.updates.append(update)
        finally:
            self.running -= 1

    def ids(self) -> list[str]:
        return [u.id for u in self.updates]


# -- watch ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_events_arrive_in_order_with_ids_and_types(hub: tuple[FakeHub, str], ports: list[HttpHubPort]) -> None:
    fake, url = hub
    port = make_port(ports, url)
    assert port.watches_all is False
    seen = Recorder()
    port.watch(TOPIC, None, seen)
    await wait_until(lambda: len(fake.streams) == 1, "the stream")
    fake.publish("a", "one\ntwo", "add")
    fake.publish("b", "three")
    await wait_until(lambda: len(seen.updates) == 2, "two updates")
    assert seen.updates == [
        ReceivedUpdate("a", (TOPIC,), "one\ntwo", "add"), ReceivedUpdate("b", (TOPIC,), "three", None)
    ]
    request = fake.gets[0]
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(request["uri"]).query) == {"topic": [TOPIC]}
    assert request["accept"] == "text/event-stream"
    assert request["authorization"] == f"Bearer {SUBSCRIBER}"
    assert "last-event-id" not in request


@pytest_twisted.ensureDeferred
async def test_since_is_sent_and_history_after_it_replayed(hub: tuple[FakeHub, str], ports: list[HttpHubPort]) -> None:
    fake, url = hub
    fake.history = [("a", "d", None), ("b", "d", None), ("c", "d", None)]
    seen = Recorder()
    make_port(ports, url, subscriber_token=None).watch(TOPIC, "a", seen)
    await wait_until(lambda: seen.ids() == ["b", "c"], "the replay")
    assert fake.gets[0]["last-event-id"] == "a"
    assert "authorization" not in fake.gets[0]  # no subscriber token: anonymous


@pytest_twisted.ensureDeferred
async def test_a_cut_mid_event_resumes_from_the_last_handled_id_and_loses_nothing(
    hub: tuple[FakeHub, str], ports: list[HttpHubPort]
) -> None:
    fake, url = hub
    seen = Recorder()
    watch = make_port(ports, url).watch(TOPIC, None, seen)
    await wait_until(lambda: len(fake.streams) == 1, "the stream")
    fake.publish("a")
    fake.publish("b")
    await wait_until(lambda: seen.ids() == ["a", "b"], "a and b")
    # Half of "c" reaches the bridge, then the connection drops; "c" was
    # stored by the hub, and "d" is published while the bridge is away.
    fake.history.append(("c", "third", None))
    fake.cut(partial=b"id: c\ndata: thi")
    fake.history.append(("d", "fourth", None))
    await wait_until(lambda: seen.ids() == ["a", "b", "c", "d"], "c and d after the reconnection")
    assert fake.gets[1]["last-event-id"] == "b"
    assert seen.updates[2].data == "third"
    assert watch.cursor == "d" and watch.connections == 2
    fake.publish("e")
    await wait_until(lambda: seen.ids()[-1:] == ["e"], "live again")
    assert seen.ids() == ["a", "b", "c", "d", "e"]


@pytest_twisted.ensureDeferred
async def test_a_clean_end_of_stream_reconnects_too(hub: tuple[FakeHub, str], ports: list[HttpHubPort]) -> None:
    fake, url = hub
    seen = Recorder()
    make_port(ports, url).watch(TOPIC, "x", seen)
    fake.history = [("x", "d", None)]
    await wait_until(lambda: len(fake.streams) == 1, "the stream")
    fake.publish("y")
    await wait_until(lambda: seen.ids() == ["y"], "y")
    for stream in list(fake.streams):
        stream.finish()
    await wait_until(lambda: len(fake.gets) == 2 and len(fake.streams) == 1, "the reconnection")
    assert fake.gets[1]["last-event-id"] == "y"


@pytest.mark.parametrize(
    "answer",
    [(500, b"text/plain", b"oops"), (404, b"text/plain", b"no"), (200, b"text/html", b"<p>hi</p>"),
     (401, b"text/plain", b"token expired")],
)
@pytest_twisted.ensureDeferred
async def test_a_refusal_or_a_wrong_content_type_is_retried(
    hub: tuple[FakeHub, str], ports: list[HttpHubPort], answer: tuple[int, bytes, bytes]
) -> None:
    fake, url = hub
    fake.history = [("a", "d", None), ("b", "d", None)]
    fake.answers = [answer, answer]
    seen = Recorder()
    make_port(ports, url).watch(TOPIC, "a", seen)
    await wait_until(lambda: seen.ids() == ["b"], "b after the refusals")
    assert len(fake.gets) == 3
    assert all(get["last-event-id"] == "a" for get in fake.gets)


@pytest_twisted.ensureDeferred
async def test_a_refused_connection_is_retried_with_backoff(ports: list[HttpHubPort]) -> None:
    # A port nobody listens on, then a hub on it.
    listening = reactor.listenTCP(0, Site(Resource()), interface="127.0.0.1")  # type: ignore[attr-defined]
    number = listening.getHost().port
    await listening.stopListening()
    port = make_port(ports, f"http://127.0.0.1:{number}/.well-known/mercure", backoff_cap=0.2)
    seen = Recorder()
    watch = port.watch(TOPIC, "a", seen)
    await wait_until(lambda: watch.connections >= 3, "three attempts")
    fake = FakeHub()
    fake.history = [("a", "d", None), ("b", "d", None)]
    root = Resource()
    root.putChild(b".well-known", Resource())
    root.children[b".well-known"].putChild(b"mercure", fake)
    listening = reactor.listenTCP(number, Site(root), interface="127.0.0.1")  # type: ignore[attr-defined]
    try:
        await wait_until(lambda: seen.ids() == ["b"], "b once the hub listens")
    finally:
        watch.stop()
        fake.cut()
        await listening.stopListening()


def test_the_backoff_doubles_to_the_cap_with_jitter_and_honours_retry() -> None:
    port = HttpHubPort("http://127.0.0.1:1/.well-known/mercure", publisher_token="p",
                       subscriber_token=None, verifier=verifier(), reactor=reactor,
                       backoff_start=0.5, backoff_cap=30.0, random=lambda: 1.0)
    from websub_bridge.http_port import HttpWatch

    watch = HttpWatch(port, TOPIC, None, Recorder())
    delays = []
    for failures in range(1, 10):
        watch._failures = failures
        delays.append(watch._delay("failed"))
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    port.random = lambda: 0.0
    assert watch._delay("failed") == 15.0  # half the delay at the least
    assert watch._delay("unauthorized") == 15.0  # always the cap (jittered)
    watch._retry_base, watch._failures = 3.0, 1
    port.random = lambda: 1.0
    assert watch._delay("failed") == 3.0


@pytest_twisted.ensureDeferred
async def test_the_hubs_retry_is_read_from_the_stream(hub: tuple[FakeHub, str], ports: list[HttpHubPort]) -> None:
    fake, url = hub
    fake.retry = 250
    watch = make_port(ports, url).watch(TOPIC, None, Recorder())
    await wait_until(lambda: len(fake.streams) == 1, "the stream")
    await sleep(0.05)
    fake.cut()
    await wait_until(lambda: watch._retry_base == 0.25, "retry noted")


@pytest_twisted.ensureDeferred
async def test_retry_zero_does_not_make_a_tight_loop(hub: tuple[FakeHub, str], ports: list[HttpHubPort]) -> None:
    fake, url = hub
    fake.retry = 0
    fake.history = [("a", "d", None)]
    watch = make_port(ports, url).watch(TOPIC, "a", Recorder())
    await wait_until(lambda: len(fake.streams) == 1, "the stream")
    fake.cut()
    await wait_until(lambda: watch._retry_base == 0.1, "the floor")


@pytest_twisted.ensureDeferred
async def test_a_hub_that_lost_the_cursor_is_logged(hub: tuple[FakeHub, str], ports: list[HttpHubPort]) -> None:
    fake, url = hub
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        make_port(ports, url).watch(TOPIC, "gone", Recorder())
        await wait_until(lambda: len(fake.streams) == 1, "the stream")
    finally:
        globalLogPublisher.removeObserver(events.append)
    lost = [e for e in events if "may have been lost" in e.get("log_format", "")]
    assert lost and lost[0]["answered"] == "earliest" and lost[0]["since"] == "gone"
    assert not any(SUBSCRIBER in formatEvent(e) for e in events)


@pytest_twisted.ensureDeferred
async def test_a_slow_handler_sees_every_update_in_order_one_at_a_time_with_a_bounded_queue(
    hub: tuple[FakeHub, str], ports: list[HttpHubPort]
) -> None:
    fake, url = hub
    seen = Recorder(delay=0.002)
    longest = 0

    async def handler(update: ReceivedUpdate) -> None:
        nonlocal longest
        longest = max(longest, len(watch._queue))
        await seen(update)

    watch = make_port(ports, url, max_queue=4).watch(TOPIC, None, handler)
    await wait_until(lambda: len(fake.streams) == 1, "the stream")
    big = "x" * 8000
    for n in range(200):
        fake.publish(f"u{n}", big)
    await wait_until(lambda: len(seen.updates) == 200, "200 updates")
    assert seen.ids() == [f"u{n}" for n in range(200)]
    assert not seen.overlapped
    # Reading stops at 4 queued; one read (64 KiB at most) adds at most 8 more.
    assert longest <= 4 + 9, longest


@pytest_twisted.ensureDeferred
async def test_a_handler_that_fails_loses_only_its_update(hub: tuple[FakeHub, str], ports: list[HttpHubPort]) -> None:
    fake, url = hub
    seen: list[str] = []

    async def handler(update: ReceivedUpdate) -> None:
        if update.id == "bad":
            raise RuntimeError("boom")
        seen.append(update.id)

    watch = make_port(ports, url).watch(TOPIC, None, handler)
    await wait_until(lambda: len(fake.streams) == 1, "the stream")
    for id in ("a", "bad", "c"):
        fake.publish(id)
    await wait_until(lambda: seen == ["a", "c"], "a and c")
    assert watch.cursor == "c"


@pytest_twisted.ensureDeferred
async def test_an_event_beyond_the_parser_bound_drops_the_connection(
    hub: tuple[FakeHub, str], ports: list[HttpHubPort]
) -> None:
    fake, url = hub
    seen = Recorder()
    watch = make_port(ports, url, max_event_size=1000).watch(TOPIC, None, seen)
    await wait_until(lambda: len(fake.streams) == 1, "the stream")
    fake.publish("a")
    await wait_until(lambda: seen.ids() == ["a"], "a")
    fake.history.append(("huge", "x" * 5000, None))
    for stream in list(fake.streams):
        stream.write(b"id: huge\ndata: " + b"x" * 5000)
    await wait_until(lambda: len(fake.gets) >= 2, "a reconnection")
    assert fake.gets[1]["last-event-id"] == "a"
    watch.stop()


@pytest_twisted.ensureDeferred
async def test_silence_past_the_heartbeat_timeout_reconnects(hub: tuple[FakeHub, str], ports: list[HttpHubPort]) -> None:
    fake, url = hub
    make_port(ports, url, heartbeat_timeout=0.1).watch(TOPIC, None, Recorder())
    await wait_until(lambda: len(fake.gets) >= 2, "a reconnection after silence")


@pytest_twisted.ensureDeferred
async def test_stop_closes_the_stream_and_nothing_follows(hub: tuple[FakeHub, str], ports: list[HttpHubPort]) -> None:
    fake, url = hub
    seen = Recorder()
    watch = make_port(ports, url).watch(TOPIC, None, seen)
    await wait_until(lambda: len(fake.streams) == 1, "the stream")
    watch.stop()
    await wait_until(lambda: not fake.streams, "the hub sees the stream closed")
    fake.publish("late")
    await sleep(0.1)
    assert seen.updates == [] and len(fake.gets) == 1


@pytest_twisted.ensureDeferred
async def test_stop_during_the_backoff_cancels_the_reconnection(hub: tuple[FakeHub, str], ports: list[HttpHubPort]) -> None:
    fake, url = hub
    fake.answers = [(503, b"text/plain", b"busy")]
    watch = make_port(ports, url, backoff_start=0.2, backoff_cap=0.2).watch(TOPIC, None, Recorder())
    await wait_until(lambda: len(fake.gets) == 1, "the refused request")
    await sleep(0.02)
    watch.stop()
    await sleep(0.4)
    assert len(fake.gets) == 1


def test_watching_every_topic_is_refused() -> None:
    port = HttpHubPort("http://127.0.0.1:1/.well-known/mercure", publisher_token="p",
                       subscriber_token=None, verifier=verifier(), reactor=reactor)
    with pytest.raises(ValueError, match="one topic"):
        port.watch(None, None, Recorder())


def test_the_stream_url_carries_the_topic() -> None:
    def url(hub_url: str) -> str:
        return HttpHubPort(hub_url, publisher_token="p", subscriber_token=None,
                           verifier=verifier(), reactor=reactor).stream_url("https://a.example/x?y=1&z")
    assert url("http://h/.well-known/mercure") == (
        "http://h/.well-known/mercure?topic=https%3A%2F%2Fa.example%2Fx%3Fy%3D1%26z"
    )
    assert url("http://h/m?k=v").startswith("http://h/m?k=v&topic=https%3A")


# -- publish ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_publish_sends_the_form_and_the_publisher_token(hub: tuple[FakeHub, str], ports: list[HttpHubPort]) -> None:
    fake, url = hub
    port = make_port(ports, url)
    assert await port.publish([TOPIC, "urn:t:2"], "é\nx", private=True, id="urn:u:1", type="add") == "urn:u:1"
    headers, form = fake.posts[0]
    assert headers["authorization"] == f"Bearer {PUBLISHER}"
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert form == [("topic", TOPIC), ("topic", "urn:t:2"), ("data", "é\nx"), ("private", "on"),
                    ("id", "urn:u:1"), ("type", "add")]
    assert await port.publish([TOPIC], "") == "urn:hub:1"
    assert fake.posts[1][1] == [("topic", TOPIC), ("data", "")]


@pytest_twisted.ensureDeferred
async def test_a_4xx_is_hub_unavailable_with_the_status_and_the_answer(
    hub: tuple[FakeHub, str], ports: list[HttpHubPort]
) -> None:
    fake, url = hub
    fake.publish_answer = (403, b"topic not allowed by the token")
    with pytest.raises(HubUnavailable, match="refused the update with 403: topic not allowed"):
        await make_port(ports, url).publish([TOPIC], "d")


@pytest_twisted.ensureDeferred
async def test_a_5xx_is_hub_unavailable(hub: tuple[FakeHub, str], ports: list[HttpHubPort]) -> None:
    fake, url = hub
    fake.publish_answer = (503, b"store down")
    with pytest.raises(HubUnavailable, match="answered 503"):
        await make_port(ports, url).publish([TOPIC], "d")


@pytest_twisted.ensureDeferred
async def test_an_unreachable_hub_is_hub_unavailable(ports: list[HttpHubPort]) -> None:
    listening = reactor.listenTCP(0, Site(Resource()), interface="127.0.0.1")  # type: ignore[attr-defined]
    number = listening.getHost().port
    await listening.stopListening()
    with pytest.raises(HubUnavailable, match="unreachable") as raised:
        await make_port(ports, f"http://127.0.0.1:{number}/.well-known/mercure").publish([TOPIC], "d")
    assert PUBLISHER not in str(raised.value)


@pytest_twisted.ensureDeferred
async def test_a_hub_that_never_answers_times_out(ports: list[HttpHubPort]) -> None:
    class Mute(Resource):
        isLeaf = True

        def render(self, request: Request) -> int:
            return NOT_DONE_YET

    listening = reactor.listenTCP(0, Site(Mute()), interface="127.0.0.1")  # type: ignore[attr-defined]
    try:
        port = make_port(ports, f"http://127.0.0.1:{listening.getHost().port}/m", timeout=0.2)
        with pytest.raises(HubUnavailable, match="no answer within 0.2 seconds"):
            await port.publish([TOPIC], "d")
    finally:
        await port.close()
        await listening.stopListening()


# -- tokens -------------------------------------------------------------------------


def test_check_subscriber_token() -> None:
    check_subscriber_token(tokens.draft07_token("k" * 32, subscribe=[]))
    check_subscriber_token(tokens.draft07_token("k" * 32, publish=["*"]))
    check_subscriber_token(jwt.encode({"sub": "x"}, "k" * 32))
    with pytest.raises(ValueError, match="mercure.subscribe"):
        check_subscriber_token(tokens.draft07_token("k" * 32, subscribe=["*"]))
    detail = {"actions": ["subscribe"], "topics": [{"match": "*", "match_type": "exact"}]}
    with pytest.raises(ValueError, match="authorization_details"):
        check_subscriber_token(tokens.draft08_token("k" * 32, "https://h/.well-known/mercure", detail))
    check_subscriber_token(
        tokens.draft08_token("k" * 32, "https://h/.well-known/mercure", {"actions": ["publish"], "topics": ["*"]})
    )
    with pytest.raises(ValueError, match="not a readable JWT"):
        check_subscriber_token("not-a-token")


def request_with(authorization: str | None) -> DummyRequest:
    request = DummyRequest([b"websub", b"follows"])
    if authorization is not None:
        request.requestHeaders.setRawHeaders(b"authorization", [authorization.encode()])
    return request


@pytest_twisted.ensureDeferred
async def test_authorize_publisher_checks_the_token_locally(ports: list[HttpHubPort]) -> None:
    port = make_port(ports, "http://127.0.0.1:1/.well-known/mercure")
    await port.authorize_publisher(request_with(f"Bearer {tokens.draft07_token(SECRET, publish=[TOPIC])}"), TOPIC)
    with pytest.raises(NotAuthorized) as refused:
        await port.authorize_publisher(request_with(f"Bearer {tokens.draft07_token(SECRET, publish=['urn:other'])}"), TOPIC)
    assert refused.value.status == 403
    with pytest.raises(NotAuthorized) as refused:
        await port.authorize_publisher(request_with(f"Bearer {tokens.draft07_token('w' * 40, publish=['*'])}"), TOPIC)
    assert refused.value.status == 401
    with pytest.raises(NotAuthorized) as refused:
        await port.authorize_publisher(request_with(None), TOPIC)
    assert refused.value.status == 401 and refused.value.challenge == b'Bearer realm="mercure"'


def test_topic_problem_uses_the_hub_url() -> None:
    port = HttpHubPort("https://hub.example/.well-known/mercure", publisher_token="p",
                       subscriber_token=None, verifier=verifier(), reactor=reactor)
    assert "reserved namespace" in (port.topic_problem("https://hub.example/.well-known/mercure/x") or "")
    assert port.topic_problem(TOPIC) is None


def test_the_hub_url_must_be_http_and_tokens_ascii() -> None:
    with pytest.raises(ValueError, match="http"):
        HttpHubPort("ftp://h/x", publisher_token="p", subscriber_token=None,
                    verifier=verifier(), reactor=reactor)
    with pytest.raises(ValueError, match="ASCII"):
        HttpHubPort("http://h/x", publisher_token="p q", subscriber_token=None,
                    verifier=verifier(), reactor=reactor)




