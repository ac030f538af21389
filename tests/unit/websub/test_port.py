"""The hub port: update ids for feed entries, topic rules, the in-process adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.defer import fail

from mercure_twisted.transports import TransportUnavailable
from websub_bridge.config import FollowSpec
from websub_bridge.port import mercure_id, topic_problem

from ._follow_kit import no_failures  # noqa: F401 - the fixture
from ._follow_kit import MERCURE_HUB, TOPIC, Kit, atom

pytestmark = pytest.mark.usefixtures("no_failures")


@pytest.mark.parametrize("entry_id", ["urn:uuid:1", "https://blog.example/p/1", "tag:x,2026:1"])
def test_a_valid_entry_id_is_the_update_id(entry_id: str) -> None:
    assert mercure_id(entry_id) == entry_id


@pytest.mark.parametrize("entry_id", ["#frag", "earliest", "a\nb", "a\u200bb", "x" * 3000])
def test_an_invalid_entry_id_gives_a_stable_derived_id(entry_id: str) -> None:
    derived = mercure_id(entry_id)
    assert derived.startswith("urn:sha256:") and len(derived) == len("urn:sha256:") + 64
    assert mercure_id(entry_id) == derived


def test_no_entry_id_gives_a_fresh_id() -> None:
    assert mercure_id(None) != mercure_id(None)


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ("", "empty topic"),
        ("*", "reserved for the wildcard"),
        ("a\x00b", "forbidden character"),
        ("/.well-known/mercure/subscriptions/x", "reserved namespace"),
        ("http://mercure.example/.well-known/mercure/x", "reserved namespace"),
    ],
)
def test_topics_mercure_refuses(topic: str, problem: str) -> None:
    assert problem in (topic_problem(topic, MERCURE_HUB) or "")


def test_an_ordinary_topic_is_fine() -> None:
    assert topic_problem("https://app.example/news", MERCURE_HUB) is None


def test_a_hub_that_cannot_store_the_update_gets_503_and_the_entries_stay_unseen(tmp_path: Path) -> None:
    kit = Kit(tmp_path / "websub.db", follows=(FollowSpec(topic=TOPIC, mode="entries"),))
    callback = kit.subscribed()
    transport = kit.hub_service.hub.transport
    working = transport.publish
    transport.publish = lambda update: fail(TransportUnavailable("store is down"))
    feed = atom(("urn:e:1", "first"))
    status, body = kit.deliver(callback, feed, Content_Type="application/atom+xml")
    assert status == 503 and b"store is down" in body
    transport.publish = working
    # The hub retries: the entry was not marked seen, so it is published now.
    assert kit.deliver(callback, feed, Content_Type="application/atom+xml")[0] == 202
    assert [u.id for u in kit.published()] == ["urn:e:1"]
