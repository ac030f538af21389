"""Parsing of hub forms (sections 5.1, 6): every malformed form is a
RequestError with a reason, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from websub_bridge.hub._requests import (
    PublishPing,
    RequestError,
    SubscriptionRequest,
    lease_for,
    parse_hub_request,
)

CB = "https://sub.example/cb?token=abc"
TOPIC = "https://pub.example/feed"


def sub(**extra: str) -> list[tuple[str, str]]:
    pairs = [("hub.mode", "subscribe"), ("hub.callback", CB), ("hub.topic", TOPIC)]
    return pairs + list(extra.items())


def reason(pairs: list[tuple[str, str]]) -> str:
    with pytest.raises(RequestError) as info:
        parse_hub_request(pairs)
    assert info.value.status == 400
    assert "\n" not in info.value.reason
    return info.value.reason


def test_subscribe() -> None:
    assert parse_hub_request(sub()) == SubscriptionRequest("subscribe", CB, TOPIC, None, None)


def test_unsubscribe_with_lease_and_secret() -> None:
    pairs = [("hub.mode", "unsubscribe"), ("hub.callback", CB), ("hub.topic", TOPIC),
             ("hub.lease_seconds", "3600"), ("hub.secret", "s3cret")]
    assert parse_hub_request(pairs) == SubscriptionRequest(
        "unsubscribe", CB, TOPIC, 3600, "s3cret"
    )


@pytest.mark.parametrize("pairs,needle", [
    ([], "hub.mode is required"),
    ([("hub.mode", "watch")], "hub.mode must be"),
    ([("hub.mode", "")], "empty"),
    ([("hub.mode", "subscribe"), ("hub.topic", TOPIC)], "hub.callback is required"),
    ([("hub.mode", "subscribe"), ("hub.callback", CB)], "hub.topic is required"),
])
def test_missing_or_bad_mode(pairs: list[tuple[str, str]], needle: str) -> None:
    assert needle in reason(pairs)


def test_repeated_callback_or_topic() -> None:
    assert "more than once" in reason(sub() + [("hub.callback", CB)])
    assert "more than once" in reason(sub() + [("hub.topic", TOPIC)])


@pytest.mark.parametrize("callback", [
    "ftp://sub.example/cb", "/cb", "https://user:pw@sub.example/cb",
    "https://sub.example/cb#frag", "https://sub.example/cb#", "https:///cb",
    "https://sub.example:0/", "https://sub example/",
])
def test_bad_callback(callback: str) -> None:
    pairs = [("hub.mode", "subscribe"), ("hub.callback", callback), ("hub.topic", TOPIC)]
    assert reason(pairs).startswith("hub.callback")


def test_bad_topic() -> None:
    pairs = [("hub.mode", "subscribe"), ("hub.callback", CB), ("hub.topic", "urn:x")]
    assert reason(pairs).startswith("hub.topic")


@pytest.mark.parametrize("lease", ["0", "-5", "1.5", "abc", " 10", "١٢", "9" * 20])
def test_bad_lease(lease: str) -> None:
    assert "hub.lease_seconds" in reason(sub(**{"hub.lease_seconds": lease}))


def test_secret_bounds() -> None:
    ok = parse_hub_request(sub(**{"hub.secret": "x" * 199}))
    assert isinstance(ok, SubscriptionRequest) and ok.secret == "x" * 199
    assert "200 bytes" in reason(sub(**{"hub.secret": "x" * 200}))
    assert "200 bytes" in reason(sub(**{"hub.secret": "é" * 100}))  # 200 bytes in UTF-8
    assert "empty" in reason(sub(**{"hub.secret": ""}))


def test_oversized_value() -> None:
    long = "https://sub.example/" + "a" * 5000
    pairs = [("hub.mode", "subscribe"), ("hub.callback", long), ("hub.topic", TOPIC)]
    assert "longer than" in reason(pairs)


def test_publish_names_deduplicated_in_order() -> None:
    pairs = [("hub.mode", "publish"), ("hub.url", "https://a.example/"),
             ("hub.url[]", "https://b.example/"), ("hub.topic", "https://a.example/"),
             ("hub.topic", "https://c.example/")]
    assert parse_hub_request(pairs) == PublishPing(
        ("https://a.example/", "https://b.example/", "https://c.example/")
    )


def test_publish_needs_a_url() -> None:
    assert "at least one" in reason([("hub.mode", "publish")])
    assert "hub.url" in reason([("hub.mode", "publish"), ("hub.url", "nope")])


def test_lease_for() -> None:
    assert lease_for(None, 864000, 60, 10**6) == 864000
    assert lease_for(5, 864000, 60, 10**6) == 60
    assert lease_for(10**9, 864000, 60, 10**6) == 10**6
    assert lease_for(3600, 864000, 60, 10**6) == 3600
    with pytest.raises(ValueError):
        lease_for(1, 1, 10, 5)


names = st.sampled_from(["hub.mode", "hub.callback", "hub.topic", "hub.lease_seconds",
                         "hub.secret", "hub.url", "hub.url[]", "other"]) | st.text(max_size=10)
values = st.sampled_from(["subscribe", "unsubscribe", "publish", CB, TOPIC, "", "1",
                          "http://[::1", "https://x.example:99999/"]) | st.text(max_size=30)


@given(st.lists(st.tuples(names, values), max_size=8))
def test_arbitrary_forms_raise_only_request_error(pairs: list[tuple[str, str]]) -> None:
    try:
        parse_hub_request(pairs)
    except RequestError as e:
        assert e.status == 400 and e.reason and "\n" not in e.reason


@given(st.lists(st.tuples(st.text(max_size=10).filter(lambda n: not n.startswith("hub.")),
                          st.text(max_size=20)), max_size=5), st.randoms())
def test_unknown_parameters_are_ignored(
    extra: list[tuple[str, str]], rnd: object
) -> None:
    base = sub(**{"hub.lease_seconds": "60", "hub.secret": "k"})
    mixed = base + extra
    rnd.shuffle(mixed)  # type: ignore[attr-defined]
    assert parse_hub_request(mixed) == parse_hub_request(base)
