"""The WebSub hub role in a cluster: two ``twistd mercure`` nodes on one Redis.

Both nodes have the same ``[websub.hub]`` and each its own
``--websub-public-url``; the hub role's store is in the Redis of the
transport (``RedisHubStore``), so a subscription made through one node is
the cluster's, and although every node sees every update (and queues it),
the enqueue is idempotent on (update, topic) and each delivery is claimed by
one node only: a subscriber gets each update once, whichever node it was
published on, and still gets them after the node it subscribed through
stopped.

The Redis server is this test's own (``redis_server``); the subscriber's
callback is ``test_websub_standalone.Callback`` (a threaded ``http.server``).
"""

from __future__ import annotations

import collections
import json
import signal
import time
from pathlib import Path

import pytest

from tests.redis_server import RedisServer

from ._support import KEY_FLAGS, HubProcess, free_port
from .conftest import StartHub
from .test_websub_standalone import (  # noqa: F401 - callback is a fixture
    Callback,
    Received,
    callback,
    publish,
    subscribe,
    until,
    wait_verified,
)

pytestmark = pytest.mark.e2e

TOPIC = "https://example.com/books/1"
SECRET_OF_SUBSCRIBER = "the-cluster-subscriber-secret"
#: How long to wait after the last expected delivery for a duplicate.
QUIET = 2.0


def cluster(start_hub: StartHub, redis_server: RedisServer, tmp_path: Path) -> tuple[HubProcess, HubProcess]:
    config = tmp_path / "hub.toml"
    config.write_text('[websub.hub]\ntopics = ["https://example.com/books/{id}"]\n')
    nodes = []
    for _ in range(2):
        port = free_port()
        nodes.append(start_hub(
            "--transport", redis_server.url(), *KEY_FLAGS, "--config", str(config),
            "--websub-public-url", f"http://127.0.0.1:{port}",
            "--websub-allow-network", "127.0.0.0/8", port=port,
        ))
    return nodes[0], nodes[1]


def numbers(callback: Callback) -> list[int]:
    return [r.json()["n"] for r in callback.received]


def check_signed(received: list[Received]) -> None:
    for r in received:
        assert r.signed_with(SECRET_OF_SUBSCRIBER), (r.body, r.headers.get("x-hub-signature"))


def subscribe_through(node: HubProcess, callback: Callback) -> None:
    subscribe(node.base_url + "/websub/hub", TOPIC, callback.url(), SECRET_OF_SUBSCRIBER)
    until(lambda: callback.verified(TOPIC), "the verification of intent")
    wait_verified(node, TOPIC)


def test_each_update_reaches_a_subscriber_once_whichever_node_published_it(
    start_hub: StartHub, redis_server: RedisServer, tmp_path: Path, callback: Callback,
) -> None:
    one, two = cluster(start_hub, redis_server, tmp_path)
    subscribe_through(one, callback)
    assert callback.verifications and len(callback.verifications) == 1  # one node verified

    for n in range(1, 11):  # alternating nodes
        publish(one if n % 2 else two, TOPIC, json.dumps({"n": n}))
    until(lambda: len(callback.received) >= 10, lambda: f"10 deliveries, got {numbers(callback)}")
    time.sleep(QUIET)  # a duplicate would be here by now
    counts = collections.Counter(numbers(callback))
    assert counts == collections.Counter(range(1, 11)), numbers(callback)
    check_signed(callback.received)
    for r in callback.received:
        # Whichever node sent it, the hub it names is one of the two.
        hub = r.headers["link"].split(";")[0].strip("<>")
        assert hub in (one.base_url + "/websub/hub", two.base_url + "/websub/hub"), r.headers["link"]
    for node in (one, two):
        assert "Traceback" not in node.log()


def test_the_subscription_outlives_the_node_it_was_made_on(
    start_hub: StartHub, redis_server: RedisServer, tmp_path: Path, callback: Callback,
) -> None:
    one, two = cluster(start_hub, redis_server, tmp_path)
    subscribe_through(one, callback)
    one.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert one.proc.wait(timeout=10) == 0  # type: ignore[union-attr]

    for n in range(1, 4):
        publish(two, TOPIC, json.dumps({"n": n}))
    until(lambda: len(callback.received) >= 3,
          lambda: f"3 deliveries from node 2 with node 1 stopped, got {numbers(callback)}")
    time.sleep(QUIET)
    assert sorted(numbers(callback)) == [1, 2, 3], numbers(callback)  # each once
    check_signed(callback.received)
    assert all(r.headers["link"].startswith(f"<{two.base_url}/websub/hub>") for r in callback.received)
    assert "Traceback" not in two.log()
