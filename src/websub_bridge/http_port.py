"""The hub port over HTTP: any Mercure hub, for the standalone bridge.

`HttpHubPort` publishes with a POST (the publisher token as a Bearer token)
and watches a topic with one ``text/event-stream`` GET per topic, parsed by
`websub_bridge.sse`.  A stream that ends, breaks, answers anything but a 200
event stream, exceeds the parser's bound or stays silent past the heartbeat
timeout is reopened after an exponential backoff with jitter (the hub's
``retry`` as its base), always with ``Last-Event-ID`` = the id of the last
update handed to the handler, so a cut loses nothing the hub still has.

The hub URL is operator configuration (it may well be on loopback), so the
requests go straight through a ``twisted.web.client.Agent``, not through
`websub_bridge.guard`, and never follow redirects (a redirect would carry
the token elsewhere).

Over SSE a private update looks like a public one, so the subscriber token
must grant no subscription to private updates: `check_subscriber_token`
refuses one that does, for the daemon to stop at start.  Tokens never reach
a log line or an error message.
"""

from __future__ import annotations

import random as _random
import urllib.parse
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import jwt
from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IRequest, IResponse

from mercure_twisted.auth import TokenVerifier

from .client import BoundedBody, QuietConnectionPool
from .port import HubUnavailable, IHubPort, ReceivedUpdate, UpdateHandler, check_publisher, topic_problem
from .sse import DEFAULT_MAX_SIZE, SSEEvent, SSELimitExceeded, SSEParser

__all__ = ["HttpHubPort", "HttpWatch", "check_subscriber_token"]

_Outcome = Literal["ended", "failed", "unauthorized"]

#: How much of a hub's answer is read: a publish's id, or an error's text.
_MAX_ANSWER = 64 * 1024
#: The least reconnection base a hub's ``retry`` can set (seconds).
_MIN_RETRY = 0.1
_MERCURE_DETAIL = "https://mercure.rocks/authorization-detail"


def check_subscriber_token(token: str) -> None:
    """Refuse a subscriber token that grants subscriptions to private updates.

    The token is decoded without verification (the hub verifies it): a
    non-empty ``mercure.subscribe`` claim (draft-07), or a Mercure
    authorization detail with the ``subscribe`` action and topics
    (draft-08), raises `ValueError`, since over SSE the private updates it
    would let in cannot be told from public ones.
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise ValueError(f"the subscriber token is not a readable JWT ({e})") from None
    mercure = claims.get("mercure")
    if isinstance(mercure, dict):
        subscribe = mercure.get("subscribe")
        if subscribe:
            raise ValueError(
                "the subscriber token's mercure.subscribe claim grants topics "
                f"({len(subscribe) if isinstance(subscribe, list) else 1}): the bridge "
                "would receive private updates it cannot tell from public ones and "
                "republish them; use a token with an empty subscribe list, or none"
            )
    details = claims.get("authorization_details")
    if isinstance(details, list):
        for detail in details:
            if (
                isinstance(detail, dict)
                and detail.get("type") == _MERCURE_DETAIL
                and "subscribe" in (detail.get("actions") or ())
                and detail.get("topics")
            ):
                raise ValueError(
                    "the subscriber token's authorization_details grant the subscribe "
                    "action on topics: the bridge would receive private updates it "
                    "cannot tell from public ones; use a token without them, or none"
                )


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _describe(error: object) -> str:
    """A short reason for a failed request (the wrapped failure's, if any)."""
    reasons = getattr(error, "reasons", None)
    if reasons:
        first = reasons[0]
        inner = first.value if isinstance(first, Failure) else first
        return _describe(inner) if inner is not error else type(error).__name__
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _read(response: IResponse, limit: int = _MAX_ANSWER) -> tuple[Deferred[bytes], BoundedBody]:
    collector = BoundedBody(limit, "the Mercure hub", truncate=True)
    response.deliverBody(collector)
    return collector.done, collector


def _header(response: IResponse, name: bytes) -> str | None:
    values = response.headers.getRawHeaders(name)
    return values[0].decode("latin-1") if values else None


def _plain(body: bytes, limit: int = 500) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."


class _Deadline:
    """Cancels ``d`` after ``seconds``, and remembers that it did: an agent
    fails a cancelled request with ``ResponseNeverReceived`` as well as
    ``CancelledError``, so the flag, not the exception, tells a timeout."""

    def __init__(self, reactor: Any, seconds: float, d: Deferred[Any]) -> None:
        self.expired = False
        self._call = reactor.callLater(seconds, self._expire, d)

    def _expire(self, d: Deferred[Any]) -> None:
        self.expired = True
        d.cancel()

    def cancel(self) -> None:
        if self._call.active():
            self._call.cancel()


class HttpHubPort:
    """`IHubPort` over HTTP: POST to publish, one SSE stream per watched topic.

    ``hub_url`` is the hub endpoint (``http://127.0.0.1:3000/.well-known/mercure``);
    ``publisher_token`` goes with every publish, ``subscriber_token`` (None:
    public updates only, the hub must allow anonymous subscribers) with every
    stream; ``verifier`` checks the bridge API's publisher tokens locally
    (`authorize_publisher`), for ``hub_url`` as the audience.  ``timeout``
    bounds a publish and the wait for a stream's response headers;
    ``heartbeat_timeout`` (None: none) the silence of an open stream;
    ``backoff_start`` and ``backoff_cap`` the reconnection delays;
    ``max_queue`` the updates received and not yet handled before a stream
    stops reading; ``max_event_size`` the parser's bound.  ``agent`` and
    ``random`` are for tests.
    """

    log = Logger()
    watches_all = False

    def __init__(
        self,
        hub_url: str,
        *,
        publisher_token: str,
        subscriber_token: str | None,
        verifier: TokenVerifier,
        reactor: Any,
        timeout: float = 10.0,
        heartbeat_timeout: float | None = 60.0,
        backoff_start: float = 0.5,
        backoff_cap: float = 30.0,
        max_queue: int = 64,
        max_event_size: int = DEFAULT_MAX_SIZE,
        user_agent: str = "mercure-twisted-websub/0.1",
        agent: IAgent | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        parts = urllib.parse.urlsplit(hub_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ValueError(f"the Mercure hub URL must be http(s) without a fragment: {hub_url!r}")
        if timeout <= 0 or backoff_start <= 0 or backoff_cap < backoff_start or max_queue < 1:
            raise ValueError("timeout, backoff_start and max_queue must be positive, "
                             "backoff_cap at least backoff_start")
        if heartbeat_timeout is not None and heartbeat_timeout <= 0:
            raise ValueError("heartbeat_timeout must be positive (or None)")
        for token in (publisher_token, subscriber_token):
            if token is not None and (not token or not token.isascii() or any(c.isspace() for c in token)):
                raise ValueError("a Mercure token must be non-empty ASCII without spaces")
        self.hub_url = hub_url
        self.origin = _origin(hub_url)
        self._publisher_token = publisher_token
        self._subscriber_token = subscriber_token
        self._verifier = verifier
        self.reactor = reactor
        self.timeout = timeout
        self.heartbeat_timeout = heartbeat_timeout
        self.backoff_start = backoff_start
        self.backoff_cap = backoff_cap
        self.max_queue = max_queue
        self.max_event_size = max_event_size
        self.user_agent = user_agent
        self.random = random
        self._pool: HTTPConnectionPool | None = None
        if agent is None:
            # Not websub_bridge.guard: the hub is the operator's, maybe on loopback.
            self._pool = QuietConnectionPool(reactor, persistent=True)
            self._pool.maxPersistentPerHost = 4
            self._pool.cachedConnectionTimeout = 60
            agent = Agent(reactor, connectTimeout=timeout, pool=self._pool)
        self.agent = agent
        self._http = HTTPClient(agent)
        self._watches: set[HttpWatch] = set()

    # -- IHubPort ---------------------------------------------------------------

    def watch(self, topic: str | None, since: str | None, on_update: UpdateHandler) -> HttpWatch:
        if topic is None:
            raise ValueError("HttpHubPort watches one topic per stream (watches_all is False)")
        watch = HttpWatch(self, topic, since, on_update)
        self._watches.add(watch)
        watch.start()
        return watch

    async def publish(
        self,
        topics: Sequence[str],
        data: str,
        *,
        private: bool = False,
        id: str | None = None,
        type: str | None = None,
    ) -> str:
        fields = [("topic", topic) for topic in topics] + [("data", data)]
        if private:
            fields.append(("private", "on"))
        if id is not None:
            fields.append(("id", id))
        if type is not None:
            fields.append(("type", type))
        attempt = Deferred.fromCoroutine(self._post(fields))
        deadline = _Deadline(self.reactor, self.timeout, attempt)
        try:
            status, body = await attempt
        except HubUnavailable:
            raise
        except Exception as e:
            reason = (
                f"no answer within {self.timeout:g} seconds" if deadline.expired else _describe(e)
            )
            self.log.warn(
                "websub publish to the Mercure hub {origin} failed: {reason}",
                origin=self.origin, reason=reason,
            )
            raise HubUnavailable(f"the Mercure hub {self.origin} is unreachable: {reason}") from None
        finally:
            deadline.cancel()
        if status == 200:
            return body.decode("utf-8", "replace").rstrip("\r\n")
        answer = _plain(body)
        if 400 <= status < 500:
            self.log.error(
                "websub publish refused by the Mercure hub {origin}: {status} {answer}",
                origin=self.origin, status=status, answer=answer,
            )
            raise HubUnavailable(
                f"the Mercure hub {self.origin} refused the update with {status}: {answer}"
            )
        self.log.warn(
            "websub publish to the Mercure hub {origin} answered {status}",
            origin=self.origin, status=status,
        )
        raise HubUnavailable(f"the Mercure hub {self.origin} answered {status}: {answer}")

    async def authorize_publisher(self, request: IRequest, topic: str) -> None:
        await check_publisher(self._verifier, request, topic, self.hub_url)

    def topic_problem(self, topic: str) -> str | None:
        return topic_problem(topic, self.hub_url)

    # -- the rest ---------------------------------------------------------------

    def close(self) -> Deferred[None]:
        """Stop every watch and close the cached connections (service stop)."""
        for watch in list(self._watches):
            watch.stop()
        if self._pool is None:
            return succeed(None)
        closed: Deferred[None] = self._pool.closeCachedConnections()
        return closed

    def stream_url(self, topic: str) -> str:
        """The subscription URL of one topic: the hub URL with ``topic=``."""
        query = urllib.parse.urlencode([("topic", topic)], quote_via=urllib.parse.quote)
        if urllib.parse.urlsplit(self.hub_url).query:
            return f"{self.hub_url}&{query}"
        return f"{self.hub_url.rstrip('?')}?{query}"

    def stream_headers(self, last_event_id: str | None) -> Headers:
        headers = Headers({
            b"accept": [b"text/event-stream"],
            b"cache-control": [b"no-cache"],
            b"user-agent": [self.user_agent.encode("latin-1")],
        })
        if self._subscriber_token is not None:
            headers.setRawHeaders(b"authorization", [b"Bearer " + self._subscriber_token.encode("ascii")])
        if last_event_id is not None:
            headers.setRawHeaders(b"last-event-id", [last_event_id.encode("utf-8")])
        return headers

    def _forget(self, watch: HttpWatch) -> None:
        self._watches.discard(watch)

    async def _post(self, fields: list[tuple[str, str]]) -> tuple[int, bytes]:
        response = await self._http.post(
            self.hub_url,
            data=fields,
            headers=Headers({
                b"authorization": [f"Bearer {self._publisher_token}".encode("ascii")],
                b"user-agent": [self.user_agent.encode("latin-1")],
            }),
            allow_redirects=False,
            unbuffered=True,
        )
        body, collector = _read(response)
        content = await body
        if collector.overflow and response.code == 200:
            raise HubUnavailable(
                f"the Mercure hub {self.origin} answered a publish with more than {_MAX_ANSWER} bytes"
            )
        return int(response.code), content


class _EventStream(Protocol):
    """One open stream's body: bytes to the parser, events to the watch."""

    def __init__(self, watch: HttpWatch, parser: SSEParser) -> None:
        self._watch = watch
        self._parser = parser
        self._port = watch.port
        self.events = 0
        self.error: str | None = None
        self.paused = False
        self.finished = False
        self._heartbeat: IDelayedCall | None = None
        self.reason: Failure | None = None
        #: Fires (None) when the body ends; ``reason`` then says how.
        self.done: Deferred[None] = Deferred(lambda _: self.abort())

    def connectionMade(self) -> None:
        self._arm()

    def _arm(self) -> None:
        seconds = self._port.heartbeat_timeout
        if seconds is None or self.finished or self.paused:
            return
        if self._heartbeat is not None and self._heartbeat.active():
            self._heartbeat.reset(seconds)
        else:
            self._heartbeat = self._port.reactor.callLater(seconds, self._silent, seconds)

    def _disarm(self) -> None:
        if self._heartbeat is not None and self._heartbeat.active():
            self._heartbeat.cancel()
        self._heartbeat = None

    def _silent(self, seconds: float) -> None:
        self.error = f"no bytes for {seconds:g} seconds"
        self.abort()

    def abort(self) -> None:
        self._disarm()
        transport: Any = self.transport
        if transport is not None and not self.finished:
            transport.stopProducing()

    def pause(self) -> None:
        if not self.paused and not self.finished:
            self.paused = True
            self._disarm()
            transport: Any = self.transport
            transport.pauseProducing()

    def resume(self) -> None:
        if self.paused and not self.finished:
            self.paused = False
            transport: Any = self.transport
            transport.resumeProducing()
            self._arm()

    def dataReceived(self, data: bytes) -> None:
        if self.finished or self.error is not None:
            return
        self._arm()
        try:
            events = self._parser.feed(data)
        except SSELimitExceeded as e:
            self.error = str(e)
            self.abort()
            return
        for event in events:
            self.events += 1
            self._watch.received(event)

    def connectionLost(self, reason: Failure = ResponseDone()) -> None:  # type: ignore[assignment]
        self.finished = True
        self._disarm()
        self.reason = reason
        if not self.done.called:
            self.done.callback(None)

    @property
    def retry(self) -> int | None:
        return self._parser.retry


class HttpWatch:
    """One topic's stream, reopened until `stop`, its updates handled in order.

    ``cursor`` is the id of the last update handled (where a reconnection
    resumes), ``connections`` the streams opened so far.
    """

    log = Logger()

    def __init__(self, port: HttpHubPort, topic: str, since: str | None, on_update: UpdateHandler) -> None:
        self.port = port
        self.topic = topic
        self._on_update = on_update
        self._cursor = since
        self._queue: deque[ReceivedUpdate] = deque()
        self._draining = False
        self._drained: list[Deferred[None]] = []
        self._stopped = False
        self._failures = 0
        self._retry_base: float | None = None
        self._waiting: Deferred[Any] | None = None
        self._stream: _EventStream | None = None
        #: Streams opened (for tests and metrics).
        self.connections = 0

    @property
    def cursor(self) -> str | None:
        """The id of the last update handled (the ``since`` given before any)."""
        return self._cursor

    def start(self) -> None:
        d = Deferred.fromCoroutine(self._run())
        d.addErrback(
            lambda f: self.log.failure("websub watch of {topic} failed", f, topic=self.topic)
        )

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._queue.clear()
        self.port._forget(self)
        if self._stream is not None:
            self._stream.abort()
        if self._waiting is not None:
            self._waiting.cancel()

    # -- the connection loop -----------------------------------------------------

    async def _wait(self, d: Deferred[Any]) -> Any:
        self._waiting = d
        try:
            return await d
        finally:
            self._waiting = None

    async def _run(self) -> None:
        while not self._stopped:
            try:
                outcome = await self._connect()
                await self._until_drained()
                if self._stopped:
                    return
                delay = self._delay(outcome)
                self.log.info(
                    "websub watch of {topic} on {origin}: reconnecting in {delay:.2f}s "
                    "from {cursor}",
                    topic=self.topic, origin=self.port.origin, delay=delay,
                    cursor=self._cursor,
                )
                await self._wait(deferLater(self.port.reactor, delay, lambda: None))
            except CancelledError:
                if self._stopped:
                    return
                raise
            except Exception:
                # A bug, not the network: logged, and the watch goes on.
                self.log.failure("websub watch of {topic} failed; reconnecting", topic=self.topic)
                if self._stopped:
                    return
                try:
                    await self._wait(deferLater(self.port.reactor, self.port.backoff_cap, lambda: None))
                except CancelledError:
                    return

    def _delay(self, outcome: _Outcome) -> float:
        port = self.port
        if outcome == "unauthorized":
            delay = port.backoff_cap
        else:
            base = self._retry_base if self._retry_base is not None else port.backoff_start
            delay = min(port.backoff_cap, base * 2 ** min(self._failures - 1, 30))
        return delay * (0.5 + 0.5 * port.random())

    async def _connect(self) -> _Outcome:
        port = self.port
        since = self._cursor
        self.connections += 1
        request = port.agent.request(
            b"GET", port.stream_url(self.topic).encode("ascii"), port.stream_headers(since)
        )
        deadline = _Deadline(port.reactor, port.timeout, request)
        self._failures += 1
        try:
            response: IResponse = await self._wait(request)
        except Exception as e:
            # Cancelled by stop() or by the deadline: the flags decide.
            if self._stopped:
                raise CancelledError() from None
            return self._failed(
                f"no answer within {port.timeout:g} seconds" if deadline.expired else _describe(e)
            )
        finally:
            deadline.cancel()
        if self._stopped:
            _read(response, 0)[1].abort()
            raise CancelledError()
        status = int(response.code)
        content_type = (_header(response, b"content-type") or "").split(";")[0].strip().lower()
        if status != 200 or content_type != "text/event-stream":
            answer = await self._answer(response)
            if status in (401, 403):
                self.log.error(
                    "websub watch of {topic}: the Mercure hub {origin} refused the "
                    "subscriber token ({status} {answer}); retrying slowly",
                    topic=self.topic, origin=port.origin, status=status, answer=answer,
                )
                return "unauthorized"
            if status != 200:
                return self._failed(f"answered {status} ({answer})")
            return self._failed(f"answered {content_type or 'no content type'}, not an event stream")
        self._check_resumption(response, since)
        parser = SSEParser(port.max_event_size, last_event_id=since or "")
        stream = _EventStream(self, parser)
        self._stream = stream
        opened = port.reactor.seconds()
        self.log.info(
            "websub watch of {topic}: stream open on {origin} from {cursor}",
            topic=self.topic, origin=port.origin, cursor=since,
        )
        response.deliverBody(stream)
        try:
            await self._wait(stream.done)
        finally:
            self._stream = None
            if stream.retry is not None:
                # Honoured as the base, but never a tight loop ("retry: 0").
                self._retry_base = max(stream.retry / 1000.0, _MIN_RETRY)
        if stream.events or port.reactor.seconds() - opened >= port.backoff_cap:
            self._failures = 1  # a healthy stream: the next delay is the base
        if stream.error is not None:
            return self._failed(stream.error)
        reason = stream.reason
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self.log.info(
                "websub watch of {topic}: the Mercure hub {origin} ended the stream",
                topic=self.topic, origin=port.origin,
            )
            return "ended"
        return self._failed(f"the stream broke ({_describe(reason.value)})")

    async def _answer(self, response: IResponse) -> str:
        """The start of a refusal's body, read for ``timeout`` at most."""
        body, _ = _read(response, 1024)
        deadline = _Deadline(self.port.reactor, self.port.timeout, body)
        try:
            return _plain(await self._wait(body))
        except CancelledError:
            if self._stopped:
                raise
            return "(no complete answer)"
        finally:
            deadline.cancel()

    def _failed(self, reason: str) -> _Outcome:
        self.log.warn(
            "websub watch of {topic} on {origin}: {reason}",
            topic=self.topic, origin=self.port.origin, reason=reason,
        )
        return "failed"

    def _check_resumption(self, response: IResponse, since: str | None) -> None:
        if since is None:
            return
        # Mercure-Last-Event-ID (draft-08), Last-Event-ID (draft-07, the Go hub).
        answered = _header(response, b"mercure-last-event-id") or _header(response, b"last-event-id")
        if answered is not None and answered != since:
            self.log.warn(
                "websub watch of {topic}: the Mercure hub {origin} resumed from "
                "{answered}, not {since}: updates may have been lost",
                topic=self.topic, origin=self.port.origin, answered=answered, since=since,
            )

    # -- handing updates over, in order -----------------------------------------

    def received(self, event: SSEEvent) -> None:
        if self._stopped:
            return
        self._queue.append(
            ReceivedUpdate(id=event.id, topics=(self.topic,), data=event.data, type=event.event or None)
        )
        if len(self._queue) >= self.port.max_queue and self._stream is not None:
            self._stream.pause()
        if not self._draining:
            self._draining = True
            d = Deferred.fromCoroutine(self._drain())
            d.addErrback(lambda f: self.log.failure("websub watch of {topic} failed", f, topic=self.topic))

    async def _drain(self) -> None:
        try:
            while self._queue and not self._stopped:
                update = self._queue.popleft()
                if self._stream is not None and len(self._queue) <= self.port.max_queue // 2:
                    self._stream.resume()
                try:
                    await self._on_update(update)
                except Exception:
                    self.log.failure(
                        "websub: handling update {id} of {topic} failed",
                        id=update.id, topic=self.topic,
                    )
                if update.id:
                    self._cursor = update.id
        finally:
            self._draining = False
            waiters, self._drained = self._drained, []
            for waiter in waiters:
                waiter.callback(None)

    async def _until_drained(self) -> None:
        if self._draining:
            waiter: Deferred[None] = Deferred()
            self._drained.append(waiter)
            await self._wait(waiter)


if TYPE_CHECKING:
    _conforms: type[IHubPort] = HttpHubPort
