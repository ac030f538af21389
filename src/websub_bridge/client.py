"""The one outbound HTTP client of the WebSub bridge.

Discovery, subscription requests, content fetches and (in part 2) content
distribution all go out through :class:`OutboundClient`, so that every
request, and every hop of a redirect, gets the same treatment: the URL
passes :func:`~websub_bridge.guard.check_url`, the connection goes through
the :class:`~websub_bridge.guard.GuardedEndpointFactory` (every resolved
address checked, the connection pinned to it), the whole exchange is bounded
in time (``timeout``) and the body in size (``max_body``). Log events name
the method and the origin only (paths and query strings can be capabilities:
a subscriber's unguessable callback, a private feed's token), never a header
value or a body; error messages add the path, never the query.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from twisted.internet import defer
from twisted.internet.error import (
    ConnectError,
    ConnectionRefusedError,
    DNSLookupError,
    TimeoutError as ConnectTimeoutError,
)
from twisted.internet.interfaces import IConsumer, IHostnameResolver
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web.client import _HTTP11ClientFactory
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from .guard import AddressPolicy, GuardedEndpointFactory, GuardError, check_url, numeric_host

__all__ = [
    "BodyTooLarge",
    "OutboundClient",
    "OutboundError",
    "OutboundTimeout",
    "Response",
    "TooManyRedirects",
    "loggable_origin",
    "loggable_url",
]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Headers that are credentials: never carried to another origin on a redirect.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


class OutboundError(Exception):
    """The request could not be completed (refused connection, DNS, reset).

    The message is safe to show: it names the origin, never the query.
    """


class OutboundTimeout(OutboundError):
    """The whole request (connect, send, answer, body) took longer than allowed."""


class TooManyRedirects(OutboundError):
    """More redirects than the caller allowed."""


class BodyTooLarge(GuardError):
    """The answer's body is larger than the client's ``max_body``."""


@attrs.frozen
class Response:
    """An answer read in full: status, headers, body and the final URL."""

    status: int
    headers: Headers
    body: bytes
    url: str  # the URL finally requested, after redirects

    def header(self, name: str) -> str | None:
        """The first value of header ``name``, as text (None when absent)."""
        values = self.headers.getRawHeaders(name.encode("latin-1"))
        return _header_text(values[0]) if values else None


def loggable_url(url: str) -> str:
    """``scheme://host[:port]/path`` of a URL: what logs and errors may show.

    Query strings carry capability tokens (callbacks) and topic parameters,
    so they never reach a log line or an error message.
    """
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def loggable_origin(url: str) -> str:
    """``scheme://host[:port]``: all of a URL that a log line shows.

    Paths can be capabilities too (a subscriber's unguessable callback), so
    log events name the origin only; error messages, which go back to whoever
    gave the URL, may name the path (:func:`loggable_url`).
    """
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urllib.parse.urlsplit(url)
    return (parts.scheme, parts.hostname, parts.port)


@implementer(IBodyProducer)
class _BytesProducer:
    """The request body, written at once (no cooperator, no global reactor)."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> defer.Deferred[None]:
        consumer.write(self._body)
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class BoundedBody(Protocol):
    """Collects a response body, aborting the connection past ``limit`` bytes.

    Past the limit ``done`` fails with `BodyTooLarge`, or, with
    ``truncate``, fires with the first ``limit`` bytes and ``overflow`` set
    (an error answer is worth reading in part); a broken connection then
    also yields what was read rather than an error.
    """

    def __init__(self, limit: int, where: str, *, truncate: bool = False) -> None:
        self._limit = limit
        self._where = where
        self._truncate = truncate
        self._chunks: list[bytes] = []
        self._size = 0
        self.overflow = False
        self.done: defer.Deferred[bytes] = defer.Deferred(self._cancel)

    def _cancel(self, d: defer.Deferred[bytes]) -> None:
        self.abort()

    def abort(self) -> None:
        """Stop reading: the response's transport drops the connection."""
        # The transport of a response body is a push producer
        # (twisted.web._newclient.TransportProxyProducer).
        transport: Any = self.transport
        if transport is not None:
            transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        if self._truncate:
            self._chunks.append(data[: max(self._limit - self._size, 0)])
        self._size += len(data)
        if self._size > self._limit:
            self.overflow = True
            if self._truncate:
                self.done.callback(b"".join(self._chunks))
            else:
                self._chunks.clear()
                self.done.errback(
                    BodyTooLarge(f"{self._where} answered more than {self._limit} bytes")
                )
            self.abort()
            return
        if not self._truncate:
            self._chunks.append(data)

    def connectionLost(self, reason: Failure = ResponseDone()) -> None:  # type: ignore[assignment]
        if self.done.called:
            return
        if self._truncate or reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self._chunks))
        else:
            self.done.errback(
                OutboundError(f"{self._where}: the connection broke while reading the answer")
            )


async def _read_body(response: IResponse, limit: int, where: str) -> bytes:
    if response.length is not UNKNOWN_LENGTH and response.length > limit:
        collector = BoundedBody(limit, where)
        response.deliverBody(collector)
        collector.abort()
        raise BodyTooLarge(f"{where} announced more than {limit} bytes")
    collector = BoundedBody(limit, where)
    response.deliverBody(collector)
    return await collector.done


class _VersionAwareProtocol(HTTP11ClientProtocol):
    """Twisted's HTTP/1.1 client, which also lets an HTTP/1.0 answer end
    its connection.

    Twisted keeps a connection for reuse unless the answer says
    ``Connection: close``; an HTTP/1.0 server (Python's stock
    ``http.server``, many small callbacks) closes after every answer and
    says nothing (RFC 9112 section 9.3: without ``keep-alive`` an HTTP/1.0
    connection does not persist).  Reused, such a connection fails the next
    request before any answer, and a POST is not retried: each delivery
    after the first would fail once.
    """

    def _finishResponse_WAITING(self, rest: bytes) -> None:
        parser = self._parser
        response = getattr(parser, "response", None)
        if parser is not None and response is not None and tuple(response.version[1:]) < (1, 1):
            tokens = b",".join(parser.connHeaders.getRawHeaders(b"connection", ())).lower()
            if b"keep-alive" not in tokens:
                parser.connHeaders.setRawHeaders(b"connection", [b"close"])
        super()._finishResponse_WAITING(rest)  # type: ignore[misc]

    _finishResponse_TRANSMITTING = _finishResponse_WAITING


class _QuietFactory(_HTTP11ClientFactory):
    """Twisted's per-connection factory, without its "Starting factory" /
    "Stopping factory" lines: one pair per outbound connection drowned the
    bridge's own log (a delivery, a verification, a fetch each open one)."""

    noisy = False

    def buildProtocol(self, addr: Any) -> HTTP11ClientProtocol:
        return _VersionAwareProtocol(self._quiescentCallback)


class QuietConnectionPool(HTTPConnectionPool):
    """A persistent connection pool whose connections are not logged, and
    which does not reuse those an HTTP/1.0 answer ended."""

    _factory = _QuietFactory


def _default_agent(
    reactor: Any,
    policy: AddressPolicy,
    timeout: float,
    resolver: IHostnameResolver | None,
    tls_policy: IPolicyForHTTPS | None,
) -> tuple[IAgent, HTTPConnectionPool]:
    pool = QuietConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 4
    pool.cachedConnectionTimeout = 60
    endpoints = GuardedEndpointFactory(
        reactor, policy, resolver, tls_policy=tls_policy, connect_timeout=timeout
    )
    return Agent.usingEndpointFactory(reactor, endpoints, pool=pool), pool


class OutboundClient:
    """Every outbound request of the bridge, guarded and bounded.

    ``agent`` is for tests (an in-memory agent over a real Resource); in
    production the client builds an ``Agent`` over the guard's endpoint
    factory with a persistent connection pool (``resolver``, default
    ``reactor.nameResolver``, and ``tls_policy``, default browser-like
    verification, are passed to it). Whatever the agent, each hop
    is checked with ``check_url`` and, for an IP-literal host, against the
    policy before it is sent.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        policy: AddressPolicy,
        *,
        timeout: float = 10.0,
        max_body: int = 1_048_576,
        user_agent: str = "mercure-twisted-websub/0.1",
        agent: IAgent | None = None,
        resolver: IHostnameResolver | None = None,
        tls_policy: IPolicyForHTTPS | None = None,
    ) -> None:
        if timeout <= 0 or max_body <= 0:
            raise ValueError("timeout and max_body must be positive")
        self._reactor = reactor
        self._policy = policy
        self._timeout = timeout
        self._max_body = max_body
        self._user_agent = user_agent
        self._pool: HTTPConnectionPool | None = None
        if agent is None:
            agent, self._pool = _default_agent(reactor, policy, timeout, resolver, tls_policy)
        self._agent = agent

    @property
    def policy(self) -> AddressPolicy:
        """The address policy this client's connections are checked against."""
        return self._policy

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        follow_redirects: int = 0,
        timeout: float | None = None,
        max_body: int | None = None,
    ) -> Response:
        """Send one request (and up to ``follow_redirects`` redirect hops).

        ``timeout`` and ``max_body`` override the client's for this request
        (a verification of intent needs a few bytes and a short wait).

        301/302 turn a POST into a GET, 303 turns anything but HEAD into a
        GET (the body dropped); 307/308 repeat method and body. Credentials
        headers are dropped when a redirect leaves the origin, and a body is
        never re-sent from https to http. A redirect beyond the allowance
        raises :class:`TooManyRedirects`; with ``follow_redirects=0`` a 3xx
        is returned as it is.

        Raises :class:`GuardError` (URL or address refused; its subclass
        :class:`BodyTooLarge`), :class:`OutboundTimeout`, :class:`OutboundError`.
        """
        limit = self._max_body if max_body is None else max_body
        seconds = self._timeout if timeout is None else timeout
        if limit < 0 or seconds <= 0:
            raise ValueError("timeout must be positive and max_body not negative")
        attempt = defer.Deferred.fromCoroutine(
            self._hops(method.upper(), url, dict(headers or {}), body, follow_redirects, limit)
        )
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            attempt.cancel()

        # Not Deferred.addTimeout: cancelling the agent's request fails with
        # ResponseNeverReceived (or a broken body), not CancelledError, so
        # whether the deadline passed is recorded here.
        deadline = self._reactor.callLater(seconds, expire)
        try:
            return await attempt
        except Exception:
            if not expired:
                raise
            self.log.info(
                "websub outbound {method} to {origin} timed out after {timeout}s",
                method=method,
                origin=loggable_origin(url),
                timeout=seconds,
            )
            raise OutboundTimeout(
                f"{loggable_url(url)} did not answer within {seconds:g} seconds"
            ) from None
        finally:
            if deadline.active():
                deadline.cancel()

    async def post_form(
        self,
        url: str,
        fields: Sequence[tuple[str, str]],
        **kw: Any,
    ) -> Response:
        """POST ``fields`` as ``application/x-www-form-urlencoded`` (UTF-8)."""
        headers = dict(kw.pop("headers", None) or {})
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = urllib.parse.urlencode(list(fields), encoding="utf-8").encode("ascii")
        return await self.request("POST", url, headers=headers, body=body, **kw)

    def close(self) -> defer.Deferred[None]:
        """Close cached persistent connections (at service stop)."""
        if self._pool is None:
            return defer.succeed(None)
        result: defer.Deferred[None] = self._pool.closeCachedConnections()
        return result

    async def _hops(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        follow_redirects: int,
        max_body: int,
    ) -> Response:
        hops = 0
        while True:
            response = await self._one(method, url, headers, body, max_body)
            location = response.headers.getRawHeaders(b"location")
            if follow_redirects <= 0 or response.status not in _REDIRECTS or not location:
                return response
            if hops >= follow_redirects:
                raise TooManyRedirects(
                    f"{loggable_url(url)}: more than {follow_redirects} redirects"
                )
            hops += 1
            target = urllib.parse.urljoin(url, _header_text(location[0]).strip())
            status = response.status
            if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                method, body = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}
            if _origin(target) != _origin(url):
                headers = {
                    k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS
                }
            if (
                body is not None
                and urllib.parse.urlsplit(url).scheme == "https"
                and urllib.parse.urlsplit(target).scheme.lower() == "http"
            ):
                raise GuardError("refusing to re-send a request body from https to http")
            self.log.debug(
                "websub outbound redirect {status} from {source} to {target}",
                status=status,
                source=loggable_origin(url),
                target=loggable_origin(target),
            )
            url = target

    async def _one(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        max_body: int,
    ) -> Response:
        checked = check_url(url)
        literal = numeric_host(checked.hostname or "")
        if literal is not None and not self._policy.permits(literal):
            raise GuardError(f"{literal} is an address the bridge may not reach")
        target = checked.geturl()
        where = loggable_url(target)
        sent = Headers({b"user-agent": [self._user_agent.encode("latin-1")]})
        for name, value in headers.items():
            sent.setRawHeaders(name.encode("latin-1"), [value.encode("latin-1")])
        producer = _BytesProducer(body) if body is not None else None
        self.log.debug(
            "websub outbound {method} to {origin}", method=method, origin=loggable_origin(target)
        )
        try:
            answer: IResponse = await self._agent.request(
                method.encode("ascii"), target.encode("ascii"), sent, producer
            )
        except (GuardError, defer.CancelledError):
            raise
        except DNSLookupError:
            raise OutboundError(f"{where}: the host name does not resolve") from None
        except ConnectionRefusedError:
            raise OutboundError(f"{where}: connection refused") from None
        except ConnectTimeoutError:
            raise OutboundError(f"{where}: connection timed out") from None
        except ConnectError:
            raise OutboundError(f"{where}: could not connect") from None
        except Exception as e:
            inner = _guard_error_inside(e)
            if inner is not None:
                raise inner from None
            raise OutboundError(f"{where}: the request failed ({type(e).__name__})") from None
        if method == "HEAD":
            answer.deliverBody(BoundedBody(0, where))
            content = b""
        else:
            content = await _read_body(answer, max_body, where)
        self.log.debug(
            "websub outbound {method} to {origin} answered {status}",
            method=method,
            origin=loggable_origin(target),
            status=answer.code,
        )
        return Response(status=answer.code, headers=answer.headers, body=content, url=target)


def _header_text(value: bytes) -> str:
    """A header value as text: UTF-8 when it is (IRIs in Location), else Latin-1."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _guard_error_inside(error: Exception) -> GuardError | None:
    """A GuardError the agent wrapped (``ResponseNeverReceived`` and kin)."""
    for failure in getattr(error, "reasons", None) or ():
        if isinstance(failure, Failure) and isinstance(failure.value, GuardError):
            return failure.value
    return None
