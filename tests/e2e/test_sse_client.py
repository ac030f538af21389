"""The real hub, seen by a third-party SSE client (``httpx-sse``).

Subscribers are ``httpx_sse.aconnect_sse`` streams running as asyncio tasks;
the publisher is a plain ``httpx.AsyncClient``.  Every scenario runs under
``asyncio.wait_for`` and every wait for an event has its own deadline.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from ._support import KEY_FLAGS, draft07_token, draft08_token

pytestmark = pytest.mark.e2e

SCENARIO_TIMEOUT = 30.0
EVENT_TIMEOUT = 5.0
BOOKS = "https://example.com/books/{id}"


def run(coro: Coroutine[Any, Any, None], timeout: float = SCENARIO_TIMEOUT) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def client() -> httpx.AsyncClient:
    # read=None: a quiet stream is legitimately silent; the scenario's
    # wait_for and the per-event deadlines bound every read instead.
    return httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=None))


async def until(predicate: Callable[[], bool], what: Callable[[], str],
                timeout: float = EVENT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what()}")
        await asyncio.sleep(0.02)


class Stream:
    """One subscriber: an httpx-sse stream read by a background task."""

    def __init__(self, http: httpx.AsyncClient, url: str,
                 headers: dict[str, str] | None = None) -> None:
        self.http = http
        self.url = url
        self.headers = headers or {}
        self.events: list[ServerSentEvent] = []
        self.response: httpx.Response | None = None
        self.opened = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with aconnect_sse(self.http, "GET", self.url, headers=self.headers) as source:
            self.response = source.response
            self.opened.set()
            async for sse in source.aiter_sse():
                self.events.append(sse)

    async def __aenter__(self) -> Stream:
        self.task = asyncio.create_task(self._run())
        opened = asyncio.create_task(self.opened.wait())
        await asyncio.wait({self.task, opened}, timeout=EVENT_TIMEOUT,
                           return_when=asyncio.FIRST_COMPLETED)
        opened.cancel()
        if self.task.done():
            self.task.result()  # raises what went wrong
            raise AssertionError(f"stream {self.url} ended before it opened")
        if not self.opened.is_set():
            await self.close()
            raise AssertionError(f"stream {self.url} did not open within {EVENT_TIMEOUT}s")
        assert self.response is not None
        assert self.response.status_code == 200, self.response.status_code
        assert self.response.headers["content-type"].startswith("text/event-stream")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Cut the connection from the client side."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    @property
    def ended(self) -> bool:
        return self.task is not None and self.task.done()

    def data(self) -> list[str]:
        return [e.data for e in self.events]

    async def wait_events(self, count: int, timeout: float = EVENT_TIMEOUT) -> list[ServerSentEvent]:
        await until(lambda: len(self.events) >= count or self.ended,
                    lambda: f"{count} events on {self.url}, got {self.data()}", timeout)
        if len(self.events) < count:
            assert self.task is not None
            exc = self.task.exception() if not self.task.cancelled() else None
            raise AssertionError(
                f"stream ended after {self.data()} (wanted {count} events): {exc!r}"
            )
        return self.events

    async def wait_end(self, timeout: float = EVENT_TIMEOUT) -> None:
        await until(lambda: self.ended, lambda: f"the end of {self.url}", timeout)


async def publish(http: httpx.AsyncClient, hub_url: str, token: str, *topics: str,
                  data: str = "", private: bool = False, **fields: str) -> str:
    form: list[tuple[str, str]] = [("topic", t) for t in topics]
    form.append(("data", data))
    if private:
        form.append(("private", "on"))
    form.extend(fields.items())
    response = await http.post(
        hub_url, content=urlencode(form).encode(),
        headers={"Authorization": f"Bearer {token}",
                 "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def subscribe_url(hub_url: str, *pairs: tuple[str, str]) -> str:
    return hub_url + "?" + urlencode(pairs)


PUB = draft07_token(publish=["*"])


# -- receiving ----------------------------------------------------------------


def test_receive_on_both_drafts(start_hub: Any) -> None:
    hub = start_hub(*KEY_FLAGS, "--anonymous")
    pub08 = draft08_token(hub.url, {"actions": ["publish"], "topics": [{"match": "*"}]})

    async def scenario() -> None:
        async with client() as http:
            book = "https://example.com/books/1"
            streams = [
                Stream(http, subscribe_url(hub.url, ("topic", BOOKS))),            # template
                Stream(http, subscribe_url(hub.url, ("topic", "*"))),              # wildcard
                Stream(http, subscribe_url(hub.url, ("topic", book))),             # exact
                Stream(http, subscribe_url(hub.url, ("match", book))),             # draft-08
                Stream(http, subscribe_url(hub.url, ("match_urlpattern",
                                                     "https://example.com/books/:id"))),
            ]
            other = Stream(http, subscribe_url(hub.url, ("topic", "https://example.com/other")))
            for s in [*streams, other]:
                await s.__aenter__()
            try:
                id1 = await publish(http, hub.url, PUB, book, data="from a draft-07 token")
                id2 = await publish(http, hub.url, pub08, book, data="from a draft-08 token",
                                    id="custom-id-2", type="book-updated", retry="1234")
                assert id2 == "custom-id-2"
                for s in streams:
                    events = await s.wait_events(2)
                    assert [(e.id, e.data) for e in events] == [
                        (id1, "from a draft-07 token"), (id2, "from a draft-08 token"),
                    ], s.url
                    assert events[0].event == "message"
                    assert events[1].event == "book-updated"
                    assert events[1].retry == 1234
                await asyncio.sleep(0.3)
                assert other.events == [], "an update reached a subscriber of another topic"
                for s in streams:
                    assert len(s.events) == 2, (s.url, s.data())
            finally:
                for s in [*streams, other]:
                    await s.close()

    run(scenario())


def test_multiline_data_arrives_intact(start_hub: Any) -> None:
    hub = start_hub(*KEY_FLAGS, "--anonymous")
    payloads = [
        "first line\nsecond line\n\nfourth, after a blank line",
        "  leading spaces\ndata: looks like a field\nid: not-an-id\n: not a comment\nevent: x",
        '{\n  "json": true,\n  "unicode": "h\u00e9 \u2713 \U0001f600"\n}',
        "ends with a newline\n",
        "\nstarts with a newline",
        "",
        "x" * 20000,
    ]

    async def scenario() -> None:
        async with client() as http:
            async with Stream(http, subscribe_url(hub.url, ("topic", "urn:multi"))) as s07, \
                    Stream(http, subscribe_url(hub.url, ("match", "urn:multi"))) as s08:
                for data in payloads:
                    await publish(http, hub.url, PUB, "urn:multi", data=data)
                for s in (s07, s08):
                    await s.wait_events(len(payloads))
                    assert s.data() == payloads

    run(scenario())


# -- private updates ----------------------------------------------------------


def test_private_updates_reach_only_authorized_subscribers(start_hub: Any) -> None:
    hub = start_hub(*KEY_FLAGS, "--anonymous")
    secret = "https://example.com/secret/{id}"
    sub07 = draft07_token(subscribe=["https://example.com/secret/1", "urn:shared"])
    sub08 = draft08_token(hub.url, {"actions": ["subscribe"], "topics": [
        {"match": "https://example.com/secret/1"}, {"match": "urn:shared"}]})

    async def scenario() -> None:
        async with client() as http:
            anonymous = Stream(http, subscribe_url(hub.url, ("topic", secret)))
            holder07 = Stream(http, subscribe_url(hub.url, ("topic", secret)),
                              {"Authorization": f"Bearer {sub07}"})
            holder08 = Stream(http, subscribe_url(
                hub.url, ("match_urlpattern", "https://example.com/secret/:id")),
                {"Authorization": f"Bearer {sub08}"})
            anonymous08 = Stream(http, subscribe_url(
                hub.url, ("match_urlpattern", "https://example.com/secret/:id")))
            streams = [anonymous, holder07, holder08, anonymous08]
            for s in streams:
                await s.__aenter__()
            try:
                await publish(http, hub.url, PUB, "https://example.com/secret/1", data="public 1")
                await publish(http, hub.url, PUB, "https://example.com/secret/1",
                              data="private for 1", private=True)
                await publish(http, hub.url, PUB, "https://example.com/secret/2",
                              data="private for 2", private=True)
                # Authorized through its second topic only.
                await publish(http, hub.url, PUB, "https://example.com/secret/3", "urn:shared",
                              data="private, shared", private=True)
                await publish(http, hub.url, PUB, "https://example.com/secret/2", data="public 2")
                # "public 2" is the last update: once it is in, nothing else is coming.
                await anonymous.wait_events(2)
                await anonymous08.wait_events(2)
                await holder07.wait_events(4)
                await holder08.wait_events(4)
                assert anonymous.data() == ["public 1", "public 2"]
                assert anonymous08.data() == ["public 1", "public 2"]
                expected = ["public 1", "private for 1", "private, shared", "public 2"]
                assert holder07.data() == expected
                assert holder08.data() == expected
            finally:
                for s in streams:
                    await s.close()

    run(scenario())


# -- reconnection ---------------------------------------------------------------


@pytest.mark.parametrize("draft", ["07", "08"])
@pytest.mark.parametrize("cut", ["client", "hub"])
def test_reconnection_gets_exactly_the_missed_events(start_hub: Any, draft: str, cut: str) -> None:
    """Cut after e1, e2; e3..e5 are published meanwhile; reconnecting with
    Last-Event-ID: e2 yields e3, e4, e5 then the live e6, in order, once each."""
    flags = [*KEY_FLAGS, "--anonymous"]
    if cut == "hub":
        flags += ["--write-timeout", "2"]
    hub = start_hub(*flags)
    topic = "https://example.com/books/7"
    param = ("topic", BOOKS) if draft == "07" else ("match", topic)
    header = "Last-Event-ID" if draft == "07" else "Mercure-Last-Event-ID"

    async def scenario() -> None:
        async with client() as http:
            url = subscribe_url(hub.url, param)
            first = Stream(http, url)
            await first.__aenter__()
            try:
                ids = [await publish(http, hub.url, PUB, topic, data=f"e{i}") for i in (1, 2)]
                await first.wait_events(2)
                assert [e.id for e in first.events] == ids
                if cut == "client":
                    await first.close()
                else:
                    # --write-timeout 2: the hub ends the stream itself.
                    await first.wait_end(timeout=6)
                    assert first.task is not None and first.task.exception() is None, (
                        "the hub did not end the stream cleanly"
                    )
            finally:
                await first.close()
            assert first.data() == ["e1", "e2"]
            for i in (3, 4, 5):
                ids.append(await publish(http, hub.url, PUB, topic, data=f"e{i}"))
            last = first.events[-1].id
            async with Stream(http, url, {"Last-Event-ID": last}) as second:
                assert second.response is not None
                assert second.response.headers.get(header) == last
                await second.wait_events(3)
                ids.append(await publish(http, hub.url, PUB, topic, data="e6"))
                await second.wait_events(4)
                await asyncio.sleep(0.3)
                assert second.data() == ["e3", "e4", "e5", "e6"]
                assert [e.id for e in second.events] == ids[2:]

    run(scenario())


@pytest.mark.parametrize("draft", ["07", "08"])
def test_last_event_id_response_header(start_hub: Any, draft: str) -> None:
    hub = start_hub(*KEY_FLAGS, "--anonymous")
    topic = "urn:cursor"
    if draft == "07":
        param, query_name, header = ("topic", topic), "lastEventID", "Last-Event-ID"
        absent = "Mercure-Last-Event-ID"
    else:
        param, query_name, header = ("match", topic), "last_event_id", "Mercure-Last-Event-ID"
        absent = "Last-Event-ID"

    async def scenario() -> None:
        async with client() as http:
            # No id requested: no header at all.
            async with Stream(http, subscribe_url(hub.url, param)) as s:
                assert s.response is not None
                assert header not in s.response.headers
            # Unknown id on an empty history, in the header then the query.
            async with Stream(http, subscribe_url(hub.url, param),
                              {"Last-Event-ID": "urn:unknown"}) as s:
                assert s.response is not None
                assert s.response.headers.get(header) == "earliest"
                assert absent not in s.response.headers
            first = await publish(http, hub.url, PUB, topic, data="one")
            second = await publish(http, hub.url, PUB, topic, data="two")
            async with Stream(http, subscribe_url(hub.url, param, (query_name, "nope"))) as s:
                assert s.response is not None
                assert s.response.headers.get(header) == "earliest"
            # A known id, in the query: the cursor is that id, the rest follows.
            async with Stream(http, subscribe_url(hub.url, param, (query_name, first))) as s:
                assert s.response is not None
                assert s.response.headers.get(header) == first
                await s.wait_events(1)
                assert [e.id for e in s.events] == [second]
            # The header wins over the query parameter.
            async with Stream(http, subscribe_url(hub.url, param, (query_name, "nope")),
                              {"Last-Event-ID": first}) as s:
                assert s.response is not None
                assert s.response.headers.get(header) == first
                await s.wait_events(1)
                assert s.data() == ["two"]
            # earliest: everything in history.
            async with Stream(http, subscribe_url(hub.url, param, (query_name, "earliest"))) as s:
                assert s.response is not None
                assert s.response.headers.get(header) == "earliest"
                await s.wait_events(2)
                assert s.data() == ["one", "two"]

    run(scenario())


# -- heartbeats ---------------------------------------------------------------


def test_heartbeats_arrive(start_hub: Any) -> None:
    hub = start_hub(*KEY_FLAGS, "--anonymous", "--heartbeat", "1")

    async def scenario() -> None:
        async with client() as http:
            lines: list[str] = []
            started = time.monotonic()

            async def read() -> None:
                async with http.stream("GET", subscribe_url(hub.url, ("topic", "urn:quiet"))) as r:
                    assert r.status_code == 200
                    async for line in r.aiter_lines():
                        lines.append(line)

            task = asyncio.create_task(read())
            try:
                # The opening comment, then one heartbeat a second or so.
                await until(lambda: sum(1 for l in lines if l.startswith(":")) >= 4 or task.done(),
                            lambda: f"4 comment lines, got {lines!r}", timeout=6)
                if task.done():
                    task.result()
                elapsed = time.monotonic() - started
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            comments = [l for l in lines if l.startswith(":")]
            assert len(comments) >= 4, lines
            assert elapsed >= 2.0, f"4 comments in {elapsed:.2f}s: heartbeats faster than 1s?"
            assert all(l == "" or l.startswith(":") for l in lines), lines

            # An httpx-sse subscriber yields no event for a heartbeat, and the
            # stream survives them.
            async with Stream(http, subscribe_url(hub.url, ("topic", "urn:quiet"))) as s:
                await asyncio.sleep(2.5)
                assert s.events == [] and not s.ended
                await publish(http, hub.url, PUB, "urn:quiet", data="after beats")
                await s.wait_events(1)
                assert s.data() == ["after beats"]

    run(scenario())


# -- errors ---------------------------------------------------------------------


def test_invalid_token_is_401_with_a_readable_reason(start_hub: Any) -> None:
    hub = start_hub(*KEY_FLAGS)  # no --anonymous
    wrong_key = draft07_token(subscribe=["*"], key="another-secret-that-is-long-enough!!")
    expired = draft07_token(subscribe=["*"], exp=time.time() - 60)
    cases = {
        "garbage": ("not.a.token", None),
        "wrong key": (wrong_key, "signature"),
        "expired": (expired, "expired"),
        "none": (None, "anonymous"),
    }

    async def scenario() -> None:
        async with client() as http:
            for name, (token, word) in cases.items():
                for param in (("topic", "urn:x"), ("match", "urn:x")):
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    r = await http.get(subscribe_url(hub.url, param), headers=headers)
                    assert r.status_code == 401, (name, param, r.status_code, r.text)
                    assert r.headers["content-type"].startswith("text/plain"), name
                    reason = r.text.strip()
                    assert reason and reason.isprintable() and len(reason) < 500, (name, reason)
                    if word:
                        assert word in reason.lower(), (name, reason)
                    challenge = r.headers.get("www-authenticate", "")
                    assert challenge.startswith("Bearer"), (name, challenge)
                    if token:
                        assert 'error="invalid_token"' in challenge, (name, challenge)
            # A valid token still works on the same hub.
            good = draft07_token(subscribe=["*"])
            async with Stream(http, subscribe_url(hub.url, ("topic", "urn:x")),
                              {"Authorization": f"Bearer {good}"}) as s:
                await publish(http, hub.url, PUB, "urn:x", data="ok", private=True)
                await s.wait_events(1)
                assert s.data() == ["ok"]
            # An invalid publisher token is refused the same way.
            r = await http.post(hub.url, data={"topic": "urn:x", "data": "no"},
                                headers={"Authorization": f"Bearer {wrong_key}"})
            assert r.status_code == 401, r.text
            assert "signature" in r.text.lower(), r.text

    run(scenario())


# -- shutdown -------------------------------------------------------------------


async def _subscribe_then_sigterm(hub: Any) -> float:
    """Two streams (one per draft) get an update, then SIGTERM; returns when
    both streams have ended cleanly.  Returns the time SIGTERM was sent."""
    assert hub.proc is not None
    async with client() as http:
        streams = [Stream(http, subscribe_url(hub.url, ("topic", "urn:bye"))),
                   Stream(http, subscribe_url(hub.url, ("match", "urn:bye")))]
        for s in streams:
            await s.__aenter__()
        try:
            await publish(http, hub.url, PUB, "urn:bye", data="before")
            for s in streams:
                await s.wait_events(1)
            sent = time.monotonic()
            hub.proc.send_signal(signal.SIGTERM)
            for s in streams:
                await s.wait_end(timeout=5)
                assert s.task is not None
                # A clean end: the chunked body was terminated, no
                # RemoteProtocolError from an abrupt close.
                assert s.task.exception() is None, repr(s.task.exception())
                assert s.data() == ["before"]
        finally:
            for s in streams:
                await s.close()
    return sent


def test_sigterm_ends_streams_cleanly_and_the_process_exits(start_hub: Any) -> None:
    hub = start_hub(*KEY_FLAGS, "--anonymous")

    async def scenario() -> None:
        sent = await _subscribe_then_sigterm(hub)
        code = await asyncio.to_thread(hub.proc.wait, 5)
        assert time.monotonic() - sent < 5, "the hub took more than 5s to exit"
        # A drained stop is a clean exit, not "killed by SIGTERM" (143).
        assert code == 0, f"hub exited with {code} after a clean SIGTERM shutdown"
        log = hub.log()
        assert "Traceback" not in log, log
        assert "Server Shut Down." in log, log

    run(scenario())
