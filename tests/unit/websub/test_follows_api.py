"""The run-time follows API: /websub/follows, authorized by Mercure publisher tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit._web import draft08_token

from ._follow_kit import no_failures  # noqa: F401 - the fixture
from ._follow_kit import MERCURE_HUB, TOPIC, Kit, draft07_token

pytestmark = pytest.mark.usefixtures("no_failures")

OTHER = "http://pub.example/other"


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    return Kit(tmp_path / "websub.db", follows=())


def add(kit: Kit, token: str | None, document: Any) -> tuple[int, Any]:
    return kit.api(
        "POST", "/websub/follows", token,
        data=json.dumps(document).encode(), headers={b"Content-Type": [b"application/json"]},
    )


def test_without_a_token_every_endpoint_is_401_with_a_bearer_challenge(kit: Kit) -> None:
    for method, path in [("GET", "/websub/follows"), ("POST", "/websub/follows"),
                         ("GET", "/websub/follows/1"), ("DELETE", "/websub/follows/1")]:
        kwargs: dict[str, Any] = {}
        if method == "POST":
            kwargs = {"data": json.dumps({"topic": TOPIC}).encode(),
                      "headers": {b"Content-Type": [b"application/json"]}}
        status, body = kit.api(method, path, None, **kwargs)
        assert status == 401, (method, path)
        assert "publisher token" in body
        assert kit.last_headers.getRawHeaders(b"www-authenticate")[0].startswith(b"Bearer")


def test_an_invalid_token_is_401(kit: Kit) -> None:
    status, _ = kit.api("GET", "/websub/follows", draft07_token(publish=["*"], key="another-secret-long-enough-for-hs256!!"))
    assert status == 401
    status, _ = kit.api("GET", "/websub/follows", "not-a-jwt")
    assert status == 401


def test_adding_a_follow_with_a_granting_token(kit: Kit) -> None:
    token = draft07_token(publish=[TOPIC])
    status, document = add(kit, token, {"topic": TOPIC, "mode": "entries", "lease_seconds": 3600})
    assert status == 201
    assert document["topic"] == TOPIC
    assert document["mercure_topic"] == TOPIC
    assert document["mode"] == "entries"
    assert document["state"] == "pending"
    kit.advance(0)
    post = kit.world.hub_posts[-1]
    assert post["hub.lease_seconds"] == "3600"
    token_part = post["hub.callback"].rsplit("/", 1)[1]
    assert token_part not in json.dumps(document)
    kit.subscribed()
    status, shown = kit.api("GET", f"/websub/follows/{document['id']}", token)
    assert status == 200
    assert shown["state"] == "active" and shown["hub"] == "http://hub.example/hub"
    assert shown["lease_expires"].endswith("Z")
    assert token_part not in json.dumps(shown)


def test_a_draft08_token_works_too(kit: Kit) -> None:
    token = draft08_token({"actions": ["publish"], "topics": [{"match": "https://app.example/*", "match_type": "urlpattern"}]}, aud=MERCURE_HUB)
    status, document = add(kit, token, {"topic": TOPIC, "mercure_topic": "https://app.example/news"})
    assert status == 201, document
    assert document["mercure_topic"] == "https://app.example/news"


def test_a_token_without_the_grant_is_403_and_nothing_is_followed(kit: Kit) -> None:
    status, body = add(kit, draft07_token(publish=["https://elsewhere.example/x"]), {"topic": TOPIC})
    assert status == 403
    assert "publish" in body
    status, _ = add(
        kit, draft07_token(publish=[TOPIC]), {"topic": TOPIC, "mercure_topic": "https://app.example/news"}
    )
    assert status == 403  # the grant must cover the Mercure topic it will publish on
    assert kit.follows() == []
    kit.advance(0)
    assert kit.world.hub_posts == []


def test_following_the_same_topic_twice_is_409(kit: Kit) -> None:
    token = draft07_token(publish=["*"])
    assert add(kit, token, {"topic": TOPIC})[0] == 201
    status, body = add(kit, token, {"topic": TOPIC})
    assert status == 409 and "already followed" in body


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({}, "needs a 'topic'"),
        ({"topic": "ftp://pub.example/feed"}, "absolute http(s) URL"),
        ({"topic": TOPIC, "mode": "everything"}, "'mode'"),
        ({"topic": TOPIC, "private": "yes"}, "'private'"),
        ({"topic": TOPIC, "lease_seconds": 0}, "'lease_seconds'"),
        ({"topic": TOPIC, "colour": "red"}, "unknown key 'colour'"),
        ({"topic": TOPIC, "mercure_topic": "/.well-known/mercure/subscriptions/x"}, "reserved"),
        ([TOPIC], "JSON object"),
    ],
)
def test_invalid_follows_are_400_with_the_reason(kit: Kit, document: Any, fragment: str) -> None:
    status, body = add(kit, draft07_token(publish=["*"]), document)
    assert status == 400
    assert fragment in body
    assert kit.follows() == []


def test_malformed_bodies(kit: Kit) -> None:
    token = draft07_token(publish=["*"])
    status, body = kit.api("POST", "/websub/follows", token, data=b"{nope",
                           headers={b"Content-Type": [b"application/json"]})
    assert (status, "not valid JSON" in body) == (400, True)
    status, _ = kit.api("POST", "/websub/follows", token, data=b"topic=x",
                        headers={b"Content-Type": [b"text/plain"]})
    assert status == 415
    status, _ = kit.api("POST", "/websub/follows", token, data=b"x" * (64 * 1024 + 1),
                        headers={b"Content-Type": [b"application/json"]})
    assert status == 413


def test_a_form_body_is_accepted(kit: Kit) -> None:
    token = draft07_token(publish=["*"])
    status, document = kit.api(
        "POST", "/websub/follows", token,
        data=f"topic={TOPIC}&private=true&mode=entries".encode(),
        headers={b"Content-Type": [b"application/x-www-form-urlencoded"]},
    )
    assert status == 201
    assert document["private"] is True and document["mode"] == "entries"
    status, body = kit.api(
        "POST", "/websub/follows", token, data=f"topic={OTHER}&private=maybe".encode(),
        headers={b"Content-Type": [b"application/x-www-form-urlencoded"]},
    )
    assert status == 400 and "'private'" in body


def test_the_list_shows_only_the_follows_the_token_may_publish_on(kit: Kit) -> None:
    admin = draft07_token(publish=["*"])
    add(kit, admin, {"topic": TOPIC})
    add(kit, admin, {"topic": OTHER})
    status, listing = kit.api("GET", "/websub/follows", draft07_token(publish=[OTHER]))
    assert status == 200
    assert [f["topic"] for f in listing["follows"]] == [OTHER]
    status, listing = kit.api("GET", "/websub/follows", admin)
    assert [f["topic"] for f in listing["follows"]] == [TOPIC, OTHER]


def test_show_and_delete_need_the_grant_and_an_existing_follow(kit: Kit) -> None:
    admin = draft07_token(publish=["*"])
    _, document = add(kit, admin, {"topic": TOPIC})
    path = f"/websub/follows/{document['id']}"
    assert kit.api("GET", path, draft07_token(publish=[OTHER]))[0] == 403
    assert kit.api("DELETE", path, draft07_token(publish=[OTHER]))[0] == 403
    assert kit.api("GET", "/websub/follows/999", admin)[0] == 404
    assert kit.api("GET", "/websub/follows/abc", admin)[0] == 404
    assert kit.api("PUT", path, admin)[0] == 405
    assert kit.follows() != []


def test_delete_unsubscribes_and_the_follow_goes_once_verified(kit: Kit) -> None:
    admin = draft07_token(publish=["*"])
    _, document = add(kit, admin, {"topic": TOPIC})
    kit.advance(0)
    callback = kit.subscribed()
    path = f"/websub/follows/{document['id']}"
    status, removed = kit.api("DELETE", path, admin)
    assert status == 202 and removed["state"] == "unsubscribing"
    post = kit.world.hub_posts[-1]
    assert (post["hub.mode"], post["hub.callback"]) == ("unsubscribe", callback)
    assert kit.api("GET", path, admin)[1]["state"] == "unsubscribing"
    assert kit.verify(callback, mode="unsubscribe") == (200, b"chal-1234")
    assert kit.api("GET", path, admin)[0] == 404


def test_callbacks_answer_only_get_and_post(kit: Kit) -> None:
    status, _, _ = kit.call("PUT", "http://bridge.example/websub/callback/" + "a" * 43)
    assert status == 405
    status, _, _ = kit.call("GET", "http://bridge.example/websub/nothing")
    assert status == 404


def test_a_longer_mounted_prefix_wins(kit: Kit) -> None:
    from twisted.web.resource import Resource

    class Other(Resource):
        isLeaf = True

        def render(self, request: Any) -> bytes:
            return b"other"

    kit.site.resource.mount("/websub/hub", Other())
    assert kit.call("POST", "http://bridge.example/websub/hub")[:2] == (200, b"other")
    assert kit.api("GET", "/websub/follows")[0] == 401  # still the bridge


def test_the_api_adds_at_most_max_follows(tmp_path: Path) -> None:
    kit = Kit(tmp_path / "websub.db", follows=(), max_follows=1)
    token = draft07_token(publish=["*"])
    assert add(kit, token, {"topic": TOPIC})[0] == 201
    status, body = add(kit, token, {"topic": OTHER})
    assert status == 409 and "max_follows" in body
    assert [f.topic for f in kit.follows()] == [TOPIC]
