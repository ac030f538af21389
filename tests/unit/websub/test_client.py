"""The outbound client through an in-memory agent over real resources."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from twisted.internet import defer
from twisted.web.server import NOT_DONE_YET, Request

from websub_bridge.client import (
    BodyTooLarge,
    OutboundError,
    OutboundTimeout,
    Response,
    TooManyRedirects,
)
from websub_bridge.guard import GuardError

from ._outbound_kit import Kit, Routes

Handler = Callable[[Request], bytes | int]


def redirect(status: int, location: str) -> Handler:
    def handler(request: Request) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"location", location.encode())
        return b"moved"

    return handler


def echo(request: Request) -> bytes:
    body = request.content.read() if request.content is not None else b""
    request.content.seek(0) if request.content is not None else None
    return request.method + b" " + body


def test_a_simple_get() -> None:
    kit = Kit(Routes({"/": lambda r: b"hello"}))
    response = kit.run(kit.client.request("GET", "http://example.com/"))
    assert isinstance(response, Response)
    assert (response.status, response.body, response.url) == (200, b"hello", "http://example.com/")
    assert response.headers.getRawHeaders(b"content-type") == [b"text/html"]


def test_headers_and_user_agent_are_sent() -> None:
    routes = Routes({"/": lambda r: b""})
    kit = Kit(routes, user_agent="test-agent/1")
    kit.run(kit.client.request("GET", "http://example.com/", headers={"Accept": "text/html"}))
    (_, _, headers, _), = routes.seen
    assert headers["user-agent"] == "test-agent/1"
    assert headers["accept"] == "text/html"


def test_post_form_is_urlencoded_utf8() -> None:
    routes = Routes({"/hub": lambda r: b""})
    kit = Kit(routes)
    kit.run(
        kit.client.post_form(
            "http://example.com/hub",
            [("hub.mode", "subscribe"), ("hub.topic", "http://t.example/?a=1&b=é"), ("x", "a b")],
        )
    )
    ((method, _, headers, body),) = routes.seen
    assert method == "POST"
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert body == b"hub.mode=subscribe&hub.topic=http%3A%2F%2Ft.example%2F%3Fa%3D1%26b%3D%C3%A9&x=a+b"


def test_redirects_are_not_followed_by_default() -> None:
    kit = Kit(Routes({"/a": redirect(302, "/b"), "/b": lambda r: b"b"}))
    response = kit.run(kit.client.request("GET", "http://example.com/a"))
    assert response.status == 302
    assert response.headers.getRawHeaders(b"location") == [b"/b"]


@pytest.mark.parametrize(
    ("status", "method_after", "body_after"),
    [(301, "GET", b""), (302, "GET", b""), (303, "GET", b""), (307, "POST", b"payload"), (308, "POST", b"payload")],
)
def test_redirect_method_rules_for_post(status: int, method_after: str, body_after: bytes) -> None:
    routes = Routes({"/a": redirect(status, "/b"), "/b": lambda r: b"landed"})
    kit = Kit(routes)
    response = kit.run(
        kit.client.request(
            "POST",
            "http://example.com/a",
            headers={"Content-Type": "text/plain"},
            body=b"payload",
            follow_redirects=1,
        )
    )
    assert (response.status, response.body, response.url) == (200, b"landed", "http://example.com/b")
    (_, _, _, first_body), (method, _, headers, body) = routes.seen
    assert first_body == b"payload"
    assert (method, body) == (method_after, body_after)
    assert ("content-type" in headers) == (method_after == "POST")


def test_303_turns_put_into_get_but_keeps_head() -> None:
    routes = Routes({"/a": redirect(303, "/b"), "/b": lambda r: b"x"})
    kit = Kit(routes)
    kit.run(kit.client.request("PUT", "http://example.com/a", body=b"x", follow_redirects=1))
    kit.run(kit.client.request("HEAD", "http://example.com/a", follow_redirects=1))
    assert [m for m, *_ in routes.seen] == ["PUT", "GET", "HEAD", "HEAD"]


def test_at_most_the_allowed_number_of_hops() -> None:
    routes = Routes(
        {"/1": redirect(302, "/2"), "/2": redirect(302, "/3"), "/3": redirect(302, "/4"), "/4": lambda r: b"end"}
    )
    kit = Kit(routes)
    assert kit.run(kit.client.request("GET", "http://example.com/1", follow_redirects=3)).body == b"end"
    error = kit.fail(kit.client.request("GET", "http://example.com/1", follow_redirects=2))
    assert isinstance(error, TooManyRedirects)
    assert isinstance(error, OutboundError)


def test_every_hop_is_checked() -> None:
    for location in ("http://127.0.0.1/admin", "http://[::1]/", "http://0x7f.1/", "file:///etc/passwd", "http://u:p@example.com/"):
        routes = Routes({"/a": redirect(302, location)})
        kit = Kit(routes)
        error = kit.fail(kit.client.request("GET", "http://example.com/a", follow_redirects=5))
        assert isinstance(error, GuardError), location
        assert len(routes.seen) == 1


def test_credentials_do_not_follow_a_redirect_to_another_origin() -> None:
    routes = Routes(
        {
            "/a": redirect(307, "http://other.example/b"),
            "/b": redirect(307, "http://other.example/c"),
            "/c": lambda r: b"",
        }
    )
    kit = Kit(routes)
    kit.run(
        kit.client.request(
            "GET",
            "http://example.com/a",
            headers={"Authorization": "Bearer t", "Cookie": "c=1", "Accept": "*/*"},
            follow_redirects=2,
        )
    )
    first, second, third = (headers for _, _, headers, _ in routes.seen)
    assert first["authorization"] == "Bearer t" and first["cookie"] == "c=1"
    assert "authorization" not in second and "cookie" not in second
    assert second["accept"] == "*/*" and "authorization" not in third


def test_a_body_is_not_resent_from_https_to_http() -> None:
    routes = Routes({"/a": redirect(307, "http://example.com/b"), "/b": lambda r: b""})
    kit = Kit(routes)
    error = kit.fail(
        kit.client.request("POST", "https://example.com/a", body=b"hub.secret=x", follow_redirects=1)
    )
    assert isinstance(error, GuardError)
    assert len(routes.seen) == 1


def test_body_cap_by_content_length() -> None:
    kit = Kit(Routes({"/": lambda r: b"x" * 101}), max_body=100)
    error = kit.fail(kit.client.request("GET", "http://example.com/"))
    assert isinstance(error, BodyTooLarge) and isinstance(error, GuardError)
    kit = Kit(Routes({"/": lambda r: b"x" * 100}), max_body=100)
    assert len(kit.run(kit.client.request("GET", "http://example.com/")).body) == 100


def test_body_cap_while_streaming_without_length() -> None:
    def chunked(request: Request) -> int:
        for _ in range(5):
            request.write(b"y" * 30)
        request.finish()
        return NOT_DONE_YET

    kit = Kit(Routes({"/": chunked}), max_body=100)
    error = kit.fail(kit.client.request("GET", "http://example.com/"))
    assert isinstance(error, BodyTooLarge)


def test_head_has_no_body() -> None:
    kit = Kit(Routes({"/": lambda r: b"content"}))
    response = kit.run(kit.client.request("HEAD", "http://example.com/"))
    assert (response.status, response.body) == (200, b"")


def test_the_whole_request_times_out() -> None:
    parked: list[Request] = []

    def never(request: Request) -> int:
        parked.append(request)
        return NOT_DONE_YET

    kit = Kit(Routes({"/slow": never}), timeout=10)
    d = kit.start(kit.client.request("GET", "http://example.com/slow?secret=s3"))
    assert parked and not d.called
    kit.clock.advance(9.9)
    kit.pump()
    assert not d.called
    kit.clock.advance(0.2)
    kit.pump()
    failure: list[object] = []
    d.addErrback(failure.append)
    (error,) = failure
    value = getattr(error, "value")
    assert isinstance(value, OutboundTimeout)
    assert "s3" not in str(value)  # the query string never shows


def test_a_slow_body_times_out_too() -> None:
    def trickle(request: Request) -> int:
        request.setHeader(b"content-length", b"100")
        request.write(b"partial")
        return NOT_DONE_YET

    kit = Kit(Routes({"/": trickle}), timeout=5)
    d = kit.start(kit.client.request("GET", "http://example.com/"))
    assert not d.called
    kit.clock.advance(5)
    kit.pump()
    errors: list[object] = []
    d.addErrback(errors.append)
    assert isinstance(getattr(errors[0], "value"), OutboundTimeout)


def test_a_timeout_cancels_nothing_when_the_answer_came_in_time() -> None:
    kit = Kit(Routes({"/": lambda r: b"fast"}), timeout=1)
    assert kit.run(kit.client.request("GET", "http://example.com/")).body == b"fast"
    kit.clock.advance(5)
    assert kit.clock.getDelayedCalls() == []


def test_invalid_construction() -> None:
    from twisted.internet import task

    from websub_bridge.client import OutboundClient
    from websub_bridge.guard import AddressPolicy

    with pytest.raises(ValueError):
        OutboundClient(task.Clock(), AddressPolicy(), timeout=0)
    with pytest.raises(ValueError):
        OutboundClient(task.Clock(), AddressPolicy(), max_body=0)


def test_a_refused_url_never_reaches_the_agent() -> None:
    routes = Routes({"/": lambda r: b""})
    kit = Kit(routes)
    for url in ("ftp://example.com/", "http://10.0.0.1/", "http://[fd00::1]/", "http://2130706433/"):
        assert isinstance(kit.fail(kit.client.request("GET", url)), GuardError)
    assert routes.seen == []


def test_connection_failures_are_outbound_errors_with_safe_messages() -> None:
    from twisted.internet.error import ConnectionRefusedError, DNSLookupError
    from twisted.web.iweb import IAgent
    from zope.interface import implementer

    from websub_bridge.client import OutboundClient
    from websub_bridge.guard import AddressPolicy

    @implementer(IAgent)
    class Failing:
        def __init__(self, error: Exception) -> None:
            self.error = error

        def request(self, *args: object, **kw: object) -> defer.Deferred[object]:
            return defer.fail(self.error)

    from twisted.internet import task

    for error, text in ((ConnectionRefusedError(), "refused"), (DNSLookupError("x"), "resolve")):
        client = OutboundClient(task.Clock(), AddressPolicy(), agent=Failing(error))
        d = defer.Deferred.fromCoroutine(client.request("GET", "http://example.com/p?token=t0k"))
        failures: list[object] = []
        d.addErrback(failures.append)
        value = getattr(failures[0], "value")
        assert isinstance(value, OutboundError)
        assert text in str(value) and "t0k" not in str(value)


def test_per_request_timeout_and_body_cap() -> None:
    parked: list[Request] = []

    def never(request: Request) -> int:
        parked.append(request)
        return NOT_DONE_YET

    kit = Kit(Routes({"/slow": never, "/big": lambda r: b"z" * 50}), timeout=60, max_body=1000)
    d = kit.start(kit.client.request("GET", "http://example.com/slow", timeout=2))
    kit.clock.advance(2)
    kit.pump()
    errors: list[object] = []
    d.addErrback(errors.append)
    assert isinstance(getattr(errors[0], "value"), OutboundTimeout)
    error = kit.fail(kit.client.request("GET", "http://example.com/big", max_body=49))
    assert isinstance(error, BodyTooLarge)
    assert kit.run(kit.client.request("GET", "http://example.com/big", max_body=50)).body == b"z" * 50


def test_response_header_text() -> None:
    def handler(request: Request) -> bytes:
        request.setHeader(b"retry-after", b"120")
        request.setHeader(b"location", "/é".encode())
        return b""

    kit = Kit(Routes({"/": handler}))
    response = kit.run(kit.client.request("GET", "http://example.com/"))
    assert response.header("Retry-After") == "120"
    assert response.header("location") == "/é"
    assert response.header("x-absent") is None


def test_log_events_show_origins_never_paths_queries_headers_or_bodies() -> None:
    from twisted.logger import Logger, formatEvent

    events: list[dict[str, object]] = []
    routes = Routes(
        {
            "/cb/capability-path": redirect(307, "/cb/capability-path2?token=query-secret"),
            "/cb/capability-path2": lambda r: b"body-secret",
        }
    )
    kit = Kit(routes)
    kit.client.log = Logger(observer=events.append)  # type: ignore[misc]
    kit.run(
        kit.client.request(
            "POST",
            "http://example.com/cb/capability-path?token=query-secret",
            headers={"Authorization": "Bearer header-secret"},
            body=b"request-secret",
            follow_redirects=1,
        )
    )
    assert events
    text = "\n".join(formatEvent(e) + repr(e) for e in events)
    for secret in ("capability-path", "query-secret", "header-secret", "request-secret", "body-secret"):
        assert secret not in text
    assert "http://example.com" in text
