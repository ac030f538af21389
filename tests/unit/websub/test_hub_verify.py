"""Verification of intent (5.3) and denial (5.2) against an in-memory
subscriber: what the callback received, and what the hub concluded."""

from __future__ import annotations

import urllib.parse

from twisted.web.server import NOT_DONE_YET, Request

from websub_bridge.hub._requests import SubscriptionRequest
from websub_bridge.hub._verify import send_denial, verify_intent

from ._outbound_kit import Kit, Routes, loopback_policy

CB = "http://127.0.0.1/cb?token=abc&x=1"
TOPIC = "https://pub.example/feed"


def query(path: str) -> list[tuple[str, str]]:
    return urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query)


def echo(request: Request) -> bytes:
    return request.args[b"hub.challenge"][0]


def kit(handler: object) -> tuple[Kit, Routes]:
    routes = Routes({"/cb": handler})  # type: ignore[dict-item]
    return Kit(routes, policy=loopback_policy()), routes


def req(mode: str = "subscribe", callback: str = CB) -> SubscriptionRequest:
    return SubscriptionRequest(mode, callback, TOPIC, None, None)  # type: ignore[arg-type]


def test_challenge_echoed_and_query_kept() -> None:
    k, routes = kit(echo)
    outcome = k.run(verify_intent(k.client, req(), 3600))
    assert outcome.ok
    (method, path, _, _) = routes.seen[0]
    params = dict(query(path))
    assert method == "GET"
    assert query(path)[:2] == [("token", "abc"), ("x", "1")]
    assert params["hub.mode"] == "subscribe" and params["hub.topic"] == TOPIC
    assert params["hub.lease_seconds"] == "3600" and len(params["hub.challenge"]) >= 32
    assert params["hub.challenge"] not in outcome.reason and "token" not in outcome.reason


def test_callback_without_query_and_unsubscribe_has_no_lease() -> None:
    k, routes = kit(echo)
    assert k.run(verify_intent(k.client, req("unsubscribe", "http://127.0.0.1/cb"), 60)).ok
    path = routes.seen[0][1]
    assert path.startswith("/cb?hub.mode=unsubscribe")
    assert "hub.lease_seconds" not in dict(query(path))


def test_trailing_newline_tolerated() -> None:
    for suffix in (b"\n", b"\r\n"):
        k, _ = kit(lambda r, s=suffix: echo(r) + s)
        assert k.run(verify_intent(k.client, req(), 60)).ok
    k, _ = kit(lambda r: b" " + echo(r))
    assert not k.run(verify_intent(k.client, req(), 60)).ok


def test_wrong_challenge_fails() -> None:
    k, _ = kit(lambda r: b"not the challenge")
    outcome = k.run(verify_intent(k.client, req(), 60))
    assert not outcome.ok and "challenge" in outcome.reason


def test_404_fails() -> None:
    k, _ = kit(echo)
    outcome = k.run(verify_intent(k.client, req(callback="http://127.0.0.1/gone?t=1"), 60))
    assert not outcome.ok and "404" in outcome.reason and "t=1" not in outcome.reason


def test_302_fails_and_is_not_followed() -> None:
    def redirect(request: Request) -> bytes:
        request.redirect(b"http://127.0.0.1/elsewhere")
        return b""

    k, routes = kit(redirect)
    outcome = k.run(verify_intent(k.client, req(), 60))
    assert not outcome.ok and "302" in outcome.reason
    assert len(routes.seen) == 1


def test_timeout_fails() -> None:
    k, _ = kit(lambda r: NOT_DONE_YET)
    d = k.start(verify_intent(k.client, req(), 60, timeout=5))
    k.clock.advance(6)
    k.pump()
    out: list[object] = []
    d.addBoth(out.append)
    (outcome,) = out
    assert not outcome.ok and "5 seconds" in outcome.reason  # type: ignore[attr-defined]


def test_guard_refusal_fails() -> None:
    k, routes = kit(echo)
    k2 = Kit(routes)  # default policy: loopback refused
    assert not k2.run(verify_intent(k2.client, req(), 60)).ok
    assert not routes.seen


def test_challenge_never_reused() -> None:
    k, routes = kit(echo)
    assert k.run(verify_intent(k.client, req(), 60)).ok
    assert k.run(verify_intent(k.client, req(), 60)).ok
    first, second = (dict(query(seen[1]))["hub.challenge"] for seen in routes.seen)
    assert first != second


def test_denial_sent_with_reason() -> None:
    k, routes = kit(lambda r: b"")
    k.run(send_denial(k.client, CB, TOPIC, "too many subscriptions"))
    params = query(routes.seen[0][1])
    assert params[:2] == [("token", "abc"), ("x", "1")]
    assert dict(params) == {"token": "abc", "x": "1", "hub.mode": "denied",
                            "hub.topic": TOPIC, "hub.reason": "too many subscriptions"}


def test_denial_errors_swallowed() -> None:
    k2 = Kit(Routes({}))  # loopback refused: a GuardError inside
    assert k2.run(send_denial(k2.client, CB, TOPIC, "no")) is None


def test_an_outcome_names_the_callbacks_origin_never_its_path() -> None:
    """The outcome is logged, and a callback's path is often the subscriber's
    capability (section 5.1: unguessable callback URLs)."""

    def refuse(request: Request) -> bytes:
        request.setResponseCode(404)
        return b"no"

    for handler in (refuse, lambda r: b"wrong"):
        k, _ = kit(handler)
        outcome = k.run(verify_intent(k.client, req(), 60))
        assert not outcome.ok
        assert "http://127.0.0.1" in outcome.reason and "/cb" not in outcome.reason
