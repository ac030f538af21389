"""A cluster: two real ``twistd mercure`` processes on one real Redis.

The Redis server is this test's own (the ``redis_server`` fixture, on a
free loopback port); the hubs are started by ``start_hub``; subscribers are
``httpx-sse`` streams (tests/e2e/test_sse_client.py's ``Stream``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from tests.redis_server import RedisServer

from ._support import KEY_FLAGS, draft07_token, free_port
from .test_sse_client import PUB, Stream, client, publish, run, subscribe_url, until

pytestmark = pytest.mark.e2e

#: Redis comes back within the transport's backoff (at most 3 s between
#: attempts): this only bounds the wait.
RECOVERY_BOUND = 15.0


def cluster(start_hub: Any, redis_server: RedisServer, *flags: str, query: str = "") -> tuple[Any, Any]:
    url = redis_server.url(query=query)
    return tuple(start_hub("--transport", url, *KEY_FLAGS, "--anonymous", *flags) for _ in range(2))  # type: ignore[return-value]


async def publish_status(http: httpx.AsyncClient, hub_url: str, data: str) -> httpx.Response:
    return await http.post(
        hub_url, data={"topic": "urn:cluster", "data": data},
        headers={"Authorization": f"Bearer {PUB}"},
    )


def test_an_update_published_on_one_node_reaches_both_once_in_order(
    start_hub: Any, redis_server: RedisServer,
) -> None:
    a, b = cluster(start_hub, redis_server)

    async def scenario() -> None:
        async with client() as http:
            async with Stream(http, subscribe_url(a.url, ("topic", "urn:cluster"))) as on_a, \
                    Stream(http, subscribe_url(b.url, ("topic", "urn:cluster"))) as on_b:
                published = []
                for i in range(20):  # from both nodes, alternately
                    node = a if i % 2 else b
                    published.append(await publish(http, node.url, PUB, "urn:cluster", data=f"n{i}"))
                for s in (on_a, on_b):
                    await s.wait_events(20)
                await asyncio.sleep(0.3)  # nothing more is coming
                # Publish order across nodes is the stream order both nodes deliver.
                assert [e.id for e in on_a.events] == [e.id for e in on_b.events] == published
                assert on_a.data() == [f"n{i}" for i in range(20)]

            # A client of b that saw the first 20 comes back on a, with Last-Event-ID.
            missed = [await publish(http, b.url, PUB, "urn:cluster", data=f"m{i}") for i in range(3)]
            async with Stream(http, subscribe_url(a.url, ("topic", "urn:cluster")),
                              {"Last-Event-ID": published[-1]}) as back:
                await back.wait_events(3)
                later = await publish(http, b.url, PUB, "urn:cluster", data="live")
                await back.wait_events(4)
                await asyncio.sleep(0.3)
                assert [e.id for e in back.events] == [*missed, later]
                assert back.data() == ["m0", "m1", "m2", "live"]

    run(scenario())


def test_the_subscription_api_lists_the_subscribers_of_every_node(
    start_hub: Any, redis_server: RedisServer,
) -> None:
    a, b = cluster(start_hub, redis_server, "--subscriptions", query="presence_ttl=1")
    api_token = draft07_token(subscribe=["*"])

    async def listed(node: Any) -> set[str]:
        response = await http_get(node.url + "/subscriptions", api_token)
        assert response.status_code == 200, response.text
        return {s["topic"] for s in response.json()["subscriptions"]}

    events_topic = "/.well-known/mercure/subscriptions{/topic}{/subscriber}"
    watcher_token = draft07_token(subscribe=[events_topic])

    async def scenario() -> None:
        async with client() as http:
            # Subscription events are updates like any other: a watcher on a
            # sees b's subscriber come and go.
            watcher = Stream(http, subscribe_url(a.url, ("topic", events_topic)),
                             {"Authorization": f"Bearer {watcher_token}"})
            await watcher.__aenter__()
            async with Stream(http, subscribe_url(a.url, ("topic", "urn:on-a"))), \
                    Stream(http, subscribe_url(b.url, ("topic", "urn:on-b"))) as on_b:
                await until(lambda: any(json.loads(e.data).get("topic") == "urn:on-b"
                                        for e in watcher.events),
                            lambda: f"b's subscription event on a: {watcher.data()}")
                for node in (a, b):
                    topics: set[str] = set()

                    async def refresh(node: Any = node) -> None:
                        topics.clear()
                        topics.update(await listed(node))

                    await eventually(refresh, lambda: {"urn:on-a", "urn:on-b"} <= topics,
                                     lambda: f"both subscribers listed by {node.url}: {topics}")
                await on_b.close()
                topics_now: set[str] = set()

                async def refresh_a() -> None:
                    topics_now.clear()
                    topics_now.update(await listed(a))

                await eventually(refresh_a, lambda: "urn:on-b" not in topics_now,
                                 lambda: f"b's closed subscriber gone: {topics_now}")
                on_b_events = [json.loads(e.data) for e in watcher.events
                               if json.loads(e.data).get("topic") == "urn:on-b"]
                assert [doc["active"] for doc in on_b_events] == [True, False]
            await watcher.close()

            # A node killed with its subscribers open leaves no ghost: they
            # expire (presence_ttl=1 here).
            async with Stream(http, subscribe_url(b.url, ("topic", "urn:ghost"))) as cut:
                ghost: set[str] = set()

                async def refresh_ghost() -> None:
                    ghost.clear()
                    ghost.update(await listed(a))

                await eventually(refresh_ghost, lambda: "urn:ghost" in ghost, lambda: str(ghost))
                b.kill()  # SIGKILL: no clean stop, nothing withdrawn
                await eventually(refresh_ghost, lambda: "urn:ghost" not in ghost,
                                 lambda: f"the dead node's subscriber expired: {ghost}")
                # Its own stream was cut with the node: take the error, so that
                # no unretrieved task exception is left to the garbage collector.
                await cut.wait_end()
                assert cut.task is not None and cut.task.exception() is not None

    async def http_get(url: str, token: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=5.0) as h:
            return await h.get(url, headers={"Authorization": f"Bearer {token}"})

    run(scenario())


async def eventually(refresh: Any, predicate: Any, what: Any, timeout: float = RECOVERY_BOUND) -> None:
    deadline = time.monotonic() + timeout
    while True:
        await refresh()
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what()}")
        await asyncio.sleep(0.1)


def test_redis_stopped_and_started_while_subscribers_stay_connected(
    start_hub: Any, redis_server: RedisServer,
) -> None:
    a, b = cluster(start_hub, redis_server)

    async def scenario() -> None:
        async with client() as http:
            async with Stream(http, subscribe_url(a.url, ("topic", "urn:cluster"))) as on_a, \
                    Stream(http, subscribe_url(b.url, ("topic", "urn:cluster"))) as on_b:
                await publish(http, a.url, PUB, "urn:cluster", data="before")
                for s in (on_a, on_b):
                    await s.wait_events(1)

                redis_server.stop()
                refused = await publish_status(http, a.url, "during")
                assert refused.status_code == 503, refused.text
                assert refused.headers.get("retry-after")
                assert not on_a.ended and not on_b.ended  # open streams stay open

                redis_server.start()  # same port, empty
                response = refused
                statuses = []

                async def retry() -> None:
                    nonlocal response
                    response = await publish_status(http, b.url, "after")
                    statuses.append(response.status_code)

                await eventually(retry, lambda: response.status_code == 200,
                                 lambda: f"a publish accepted again (got {statuses})")
                for s in (on_a, on_b):
                    await s.wait_events(2, timeout=RECOVERY_BOUND)
                assert on_a.data() == on_b.data() == ["before", "after"]
                assert a.alive and b.alive

    run(scenario(), timeout=60.0)


def test_two_processes_share_one_port(start_hub: Any, redis_server: RedisServer) -> None:
    shared = free_port()
    listen = ("--listen", f"reuseport:{shared}:interface=127.0.0.1")
    # Each hub also listens on a port of its own (start_hub's readiness check).
    a, b = cluster(start_hub, redis_server, *listen)  # with tcp: the second would not start
    shared_url = f"http://127.0.0.1:{shared}/.well-known/mercure"

    async def scenario() -> None:
        async with client() as http:
            async with Stream(http, subscribe_url(a.url, ("topic", "urn:cluster"))) as on_a, \
                    Stream(http, subscribe_url(b.url, ("topic", "urn:cluster"))) as on_b:
                for i in range(10):  # new connections, spread by the kernel
                    async with httpx.AsyncClient(timeout=5.0) as fresh:
                        await publish(fresh, shared_url, PUB, "urn:cluster", data=f"s{i}")
                for s in (on_a, on_b):
                    await s.wait_events(10)
                assert on_a.data() == on_b.data() == [f"s{i}" for i in range(10)]
            a.terminate()
            # One node gone: the shared port is still served, by the other.
            async with Stream(http, subscribe_url(shared_url, ("topic", "urn:cluster"))) as s:
                await publish(http, shared_url, PUB, "urn:cluster", data="still served")
                await s.wait_events(1)
                assert s.data() == ["still served"]

    run(scenario())

