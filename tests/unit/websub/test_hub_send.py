"""One content distribution (sections 7 and 8) through the real client over
an in-memory agent: what goes on the wire, and what each answer means."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from twisted.web.server import NOT_DONE_YET, Request

from websub_bridge.hub._send import Outcome, SendOutcome, link_header, send_delivery
from websub_bridge.hub._store import Delivery
from websub_bridge.signature import SignatureCheck, verify

from ._outbound_kit import Kit, Routes

HUB = "https://hub.example.com/hub"
TOPIC = "https://app.example/books/1"
BODY = b'{"id": 1, "title": "caf\xc3\xa9"}'


def delivery(callback: str = "http://sub.example/cb?token=s3cr3t", secret: str | None = None) -> Delivery:
    return Delivery(
        id="d1",
        topic=TOPIC,
        callback=callback,
        update_id="u1",
        body=BODY,
        content_type="application/ld+json",
        secret=secret,
        attempts=0,
        due=0.0,
        created_at=0.0,
    )


def status(code: int, **headers: str) -> Callable[[Request], bytes]:
    def handler(request: Request) -> bytes:
        request.setResponseCode(code)
        for name, value in headers.items():
            request.setHeader(name.encode(), value.encode())
        return b""

    return handler


def send(kit: Kit, d: Delivery, algorithm: str = "sha256", timeout: float = 5.0) -> SendOutcome:
    return kit.run(send_delivery(kit.client, d, hub_url=HUB, algorithm=algorithm, timeout=timeout))


def test_headers_without_a_secret() -> None:
    routes = Routes({"/cb": status(200)})
    kit = Kit(routes)
    outcome = send(kit, delivery())
    assert outcome.outcome is Outcome.DELIVERED
    ((method, path, headers, body),) = routes.seen
    assert (method, path, body) == ("POST", "/cb?token=s3cr3t", BODY)
    assert headers["content-type"] == "application/ld+json"
    assert headers["link"] == f'<{HUB}>; rel="hub", <{TOPIC}>; rel="self"'
    assert "x-hub-signature" not in headers


def test_exactly_one_link_header_with_both_relations() -> None:
    seen: list[list[bytes]] = []

    def handler(request: Request) -> bytes:
        seen.append(list(request.requestHeaders.getRawHeaders(b"link") or []))
        return b""

    kit = Kit(Routes({"/cb": handler}))
    send(kit, delivery())
    ((value,),) = seen
    assert value.count(b'rel="hub"') == 1 and value.count(b'rel="self"') == 1


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_a_secret_signs_the_exact_body(algorithm: str) -> None:
    routes = Routes({"/cb": status(202)})
    kit = Kit(routes)
    secret = "sécret-of-the-subscriber"
    assert send(kit, delivery(secret=secret), algorithm).outcome is Outcome.DELIVERED
    ((_, _, headers, body),) = routes.seen
    signature = headers["x-hub-signature"]
    assert signature.startswith(f"{algorithm}=")
    assert verify(signature, secret.encode("utf-8"), body) is SignatureCheck.VALID
    assert verify(signature, b"another", body) is SignatureCheck.INVALID


def test_link_urls_cannot_break_the_header() -> None:
    value = link_header(HUB, 'https://app.example/a b>"é')
    assert value.endswith('<https://app.example/a%20b%3E%22%C3%A9>; rel="self"')
    value.encode("latin-1")


@pytest.mark.parametrize("code", [200, 202, 204])
def test_2xx_is_delivered(code: int) -> None:
    kit = Kit(Routes({"/cb": status(code)}))
    outcome = send(kit, delivery())
    assert (outcome.outcome, outcome.status, outcome.retry) == (Outcome.DELIVERED, code, False)


def test_410_is_gone() -> None:
    kit = Kit(Routes({"/cb": status(410)}))
    outcome = send(kit, delivery())
    assert (outcome.outcome, outcome.status, outcome.retry) == (Outcome.GONE, 410, False)


@pytest.mark.parametrize("code", [301, 302, 307])
def test_redirects_are_retried_and_never_followed(code: int) -> None:
    routes = Routes({"/cb": status(code, location="http://sub.example/elsewhere"),
                     "/elsewhere": status(200)})
    kit = Kit(routes)
    outcome = send(kit, delivery())
    assert (outcome.outcome, outcome.status) == (Outcome.RETRY, code)
    assert [path for _, path, _, _ in routes.seen] == ["/cb?token=s3cr3t"]


@pytest.mark.parametrize("code", [500, 503, 404, 400])
def test_other_statuses_are_retried(code: int) -> None:
    kit = Kit(Routes({"/cb": status(code)}))
    outcome = send(kit, delivery())
    assert (outcome.outcome, outcome.status, outcome.retry) == (Outcome.RETRY, code, True)
    assert outcome.reason == f"http://sub.example answered {code}"


def test_no_answer_is_a_retry_after_the_timeout() -> None:
    parked: list[Request] = []

    def never(request: Request) -> int:
        parked.append(request)
        return NOT_DONE_YET

    kit = Kit(Routes({"/cb": never}))
    d = kit.start(send_delivery(kit.client, delivery(), hub_url=HUB, algorithm="sha256", timeout=3))
    assert parked and not d.called
    kit.clock.advance(2.9)
    kit.pump()
    assert not d.called
    kit.clock.advance(0.2)
    kit.pump()
    results: list[SendOutcome] = []
    d.addCallback(results.append)
    (outcome,) = results
    assert outcome.outcome is Outcome.RETRY and outcome.status is None
    assert "token" not in outcome.reason and "/cb" not in outcome.reason


def test_a_large_answer_is_not_read_and_is_retried() -> None:
    kit = Kit(Routes({"/cb": lambda r: b"x" * 100_000}))
    outcome = send(kit, delivery())
    assert outcome.outcome is Outcome.RETRY


def test_connection_failure_is_a_retry() -> None:
    from twisted.internet import defer
    from twisted.internet.error import ConnectionRefusedError

    kit = Kit(Routes({}))
    kit.client._agent = type(  # type: ignore[attr-defined]
        "Refusing", (), {"request": lambda self, *a: defer.fail(ConnectionRefusedError())}
    )()
    outcome = send(kit, delivery())
    assert outcome.outcome is Outcome.RETRY
    assert outcome.reason == "http://sub.example: the connection failed"


@pytest.mark.parametrize("callback", ["http://127.0.0.1/cb?token=x", "http://10.1.2.3/cb"])
def test_a_refused_address_is_refused_and_never_requested(callback: str) -> None:
    routes = Routes({"/cb": status(200)})
    kit = Kit(routes)
    outcome = send(kit, delivery(callback))
    assert (outcome.outcome, outcome.retry) == (Outcome.REFUSED, True)
    assert routes.seen == [] and "token" not in outcome.reason


def test_reasons_never_show_the_callback_path_or_query() -> None:
    for code in (200, 410, 302, 500):
        kit = Kit(Routes({"/cb": status(code, location="http://x/")}))
        reason = send(kit, delivery()).reason
        assert "s3cr3t" not in reason and "/cb" not in reason
