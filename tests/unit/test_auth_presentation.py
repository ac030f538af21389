"""read_token: header > query > cookie, and malformed presentations."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import pytest
from twisted.web.http import Request
from twisted.web.test.requesthelper import DummyChannel

from mercure_twisted.auth import DRAFT07_COOKIE, DRAFT08_COOKIE, TokenError, read_token

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJtZXJjdXJlIjp7fX0.c2lnbmF0dXJl"
NAMES = [DRAFT07_COOKIE, DRAFT08_COOKIE]


def request(header: str | None = None, query: list[bytes] | None = None,
            cookies: dict[str, str] | None = None) -> Request:
    req = Request(DummyChannel())
    req.uri = b"/.well-known/mercure?topic=t"
    if header is not None:
        req.requestHeaders.addRawHeader(b"authorization", header.encode())
    if query is not None:
        req.uri += b"".join(b"&authorization=" + quote_from_bytes(v).encode() for v in query)
    for name, value in (cookies or {}).items():
        req.received_cookies[name.encode()] = value.encode()
    return req


def test_nothing_presented() -> None:
    assert read_token(request(), cookie_names=NAMES, allow_query=True) is None


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_header(scheme: str) -> None:
    p = read_token(request(f"{scheme} {TOKEN}"), cookie_names=NAMES, allow_query=True)
    assert p is not None and p.token == TOKEN and p.via == "header"
    assert TOKEN not in repr(p)


def test_header_wins_over_query_and_cookie() -> None:
    req = request(f"Bearer {TOKEN}", [b"query-token"], {DRAFT07_COOKIE: "cookie-token"})
    p = read_token(req, cookie_names=NAMES, allow_query=True)
    assert p is not None and (p.token, p.via) == (TOKEN, "header")


def test_query_wins_over_cookie_only_when_allowed() -> None:
    req = request(None, [TOKEN.encode()], {DRAFT07_COOKIE: "cookie-token"})
    p = read_token(req, cookie_names=NAMES, allow_query=True)
    assert p is not None and (p.token, p.via) == (TOKEN, "query")
    p = read_token(req, cookie_names=NAMES, allow_query=False)
    assert p is not None and (p.token, p.via) == ("cookie-token", "cookie")


def test_cookie_order_is_the_callers() -> None:
    req = request(cookies={DRAFT07_COOKIE: "seven", DRAFT08_COOKIE: "eight"})
    p = read_token(req, cookie_names=[DRAFT08_COOKIE, DRAFT07_COOKIE], allow_query=False)
    assert p is not None and p.token == "eight"
    p = read_token(req, cookie_names=["custom"], allow_query=False)
    assert p is None
    req = request(cookies={DRAFT07_COOKIE: ""})
    assert read_token(req, cookie_names=NAMES, allow_query=False) is None


@pytest.mark.parametrize(("header", "reason"), [
    (f"Basic {TOKEN}", "Authorization header uses the Basic scheme; this hub accepts only Bearer"),
    (TOKEN, "Authorization header does not use the Bearer scheme ('Bearer <token>')"),
    ("Bearer", "Authorization header has the Bearer scheme but no token"),
    ("Bearer   ", "Authorization header has the Bearer scheme but no token"),
    (f"Bearer {TOKEN} extra", "Authorization header: the Bearer token contains characters not allowed by RFC 6750"),
])
def test_bad_header(header: str, reason: str) -> None:
    req = request(header, None, {DRAFT07_COOKIE: TOKEN})
    with pytest.raises(TokenError) as info:
        read_token(req, cookie_names=NAMES, allow_query=True)
    err = info.value
    assert (err.status, err.error, err.reason) == (400, "invalid_request", reason)
    assert TOKEN not in err.reason


def test_bad_query() -> None:
    for values, reason in (([b""], "the authorization query parameter is empty"),
                           ([b"a", b"b"], "more than one authorization query parameter")):
        with pytest.raises(TokenError) as info:
            read_token(request(query=values), cookie_names=NAMES, allow_query=True)
        assert (info.value.status, info.value.error, info.value.reason) == (400, "invalid_request", reason)


def test_two_headers() -> None:
    req = request(f"Bearer {TOKEN}")
    req.requestHeaders.addRawHeader(b"authorization", b"Bearer other")
    with pytest.raises(TokenError, match="more than one Authorization header"):
        read_token(req, cookie_names=NAMES, allow_query=False)


def test_errors_module() -> None:
    from mercure_twisted.auth import forbidden_publish, forbidden_subscribe
    assert forbidden_publish("https://x/1") == "token has no publish grant for topic 'https://x/1'"
    assert forbidden_subscribe("a") == "token has no subscribe grant for topic 'a'"
    e = TokenError.missing()
    assert (e.status, e.error) == (401, None)
    assert str(TokenError(401, "invalid_token", "why")) == "why"


def test_form_body_field_is_not_the_query_parameter() -> None:
    req = request()
    req.args = {b"authorization": [TOKEN.encode()]}  # as twisted.web merges a POST body
    assert read_token(req, cookie_names=NAMES, allow_query=True) is None
