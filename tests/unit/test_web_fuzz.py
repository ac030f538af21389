"""Arbitrary input never makes the hub answer 500 (or die): it is refused precisely."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

from hypothesis import HealthCheck, given, settings, strategies as st

from ._web import draft07_token, make_hub

WEB = make_hub(anonymous=True, subscriptions=True)
TOKEN = draft07_token(publish=["*"], subscribe=["*"])
NAMES = st.sampled_from(["topic", "match", "match_urlpattern", "match_exact", "matchx", "lastEventID",
                         "last_event_id", "authorization", "data", "id", "type", "retry", "private"])
VALUES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"*", b"{", b"}", b"{+x}", b"https://e.com/{id}", b"/:id", b"(", b"earliest",
                     b"#x", b"mercure", b"/.well-known/mercure/x", b"\r\n", b"%", b"\xff"]),
)
PAIRS = st.lists(st.tuples(NAMES, VALUES), max_size=6)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encode(pairs: list[tuple[str, bytes]]) -> bytes:
    return b"&".join(name.encode() + b"=" + quote_from_bytes(value, safe=b"").encode()
                     for name, value in pairs)


def answer(d: object) -> int:
    WEB.flush()
    response = d.result  # type: ignore[attr-defined]
    assert not isinstance(response, BaseException)
    return int(response.code)


@FUZZ
@given(PAIRS, st.booleans())
def test_subscribe_never_500(pairs: list[tuple[str, bytes]], with_token: bool) -> None:
    headers = {"Authorization": [f"Bearer {TOKEN}"]} if with_token else {}
    d = WEB.stub.head(WEB.url("?" + encode(pairs).decode()), headers=headers)
    assert answer(d) in (200, 400, 401, 403, 413)


@FUZZ
@given(PAIRS)
def test_publish_never_500(pairs: list[tuple[str, bytes]]) -> None:
    d = WEB.stub.post(WEB.url(), data=encode(pairs), headers={
        "Authorization": [f"Bearer {TOKEN}"],
        "Content-Type": ["application/x-www-form-urlencoded"]})
    assert answer(d) in (200, 400, 403, 413)


@FUZZ
@given(st.lists(st.binary(max_size=20), max_size=4))
def test_subscription_api_never_500(segments: list[bytes]) -> None:
    path = "/subscriptions" + "".join("/" + quote_from_bytes(s, safe=b"") for s in segments)
    d = WEB.stub.get(WEB.url(path), headers={"Authorization": [f"Bearer {TOKEN}"]})
    assert answer(d) in (200, 400, 403, 404)  # 400: a path that is not UTF-8
