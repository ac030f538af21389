"""One Redis connection that reconnects by itself and fails fast while it is down.

txredisapi gives the protocol (RESP over Twisted, no thread, no asyncio
reactor); the connection is kept by Twisted's own ``ClientService``, so that
the reactor is injected, the backoff is Twisted's, and a command given while
Redis is away fails at once with ``TransportUnavailable`` instead of waiting
for a connection that may never come (txredisapi's pool would wait).
"""

from __future__ import annotations

import hashlib
from typing import Any, Awaitable, Callable

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import ssl
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
import txredisapi

from ._interface import TransportUnavailable
from ._redis_url import RedisSettings

#: Reconnection backoff: quick at first (a Redis restart is back within a
#: second), then at most every few seconds while Redis stays away.
INITIAL_DELAY = 0.1
MAX_DELAY = 3.0


class Script:
    """A Lua script, loaded on every new connection and run by its SHA1."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


def redis_endpoint(settings: RedisSettings, reactor: Any) -> IStreamClientEndpoint:
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, settings.host, settings.port, timeout=settings.timeout
    )
    if settings.tls:
        trust: Any = None
        if settings.ca is not None:
            with open(settings.ca, "rb") as f:
                trust = ssl.Certificate.loadPEM(f.read())
        options = ssl.optionsForClientTLS(settings.host, trustRoot=trust)
        endpoint = wrapClientTLS(options, endpoint)
    return endpoint


class _ProtocolFactory(Factory):
    """Builds txredisapi protocols, and answers the calls they make on their factory."""

    isLazy = False
    noisy = False

    def __init__(self, link: RedisLink) -> None:
        self._link = link

    def buildProtocol(self, addr: Any) -> txredisapi.RedisProtocol:
        settings = self._link.settings
        # The hiredis-backed protocol, always: the pure-Python parser spends
        # one reactor turn per element of a reply (hundreds per XREAD).
        protocol = txredisapi.HiredisProtocol(
            charset=None,  # bytes in, bytes out: update data is never re-decoded
            convertNumbers=False,  # "123" stays a string
            password=settings.password,
            username=settings.username,
            dbid=settings.db,
            replyTimeout=self._link.reply_timeout,
        )
        protocol.callLater = self._link.reactor.callLater  # the injected reactor
        protocol.factory = self
        self._link.connecting(protocol)
        return protocol

    # txredisapi calls these when AUTH or SELECT fails (then it drops the
    # connection, and ClientService tries again with backoff).
    def stopTrying(self) -> None:
        pass

    def connectionError(self, why: str) -> None:
        # ``why`` is Redis's answer (e.g. WRONGPASS), never the password.
        self._link.refused(why)


class RedisLink:
    """A connection to Redis for one role (``main`` or ``reader``).

    ``on_connect(link)`` runs on every new connection before it is used
    (loading scripts, resuming the reader, restoring presence); if it fails,
    the connection is dropped and tried again.  ``on_ready(link)`` runs once
    it is usable.  This preparation happens after ``ClientService`` has
    handed the connection over (its own ``prepareConnection`` cannot cope
    with a connection that Redis closes while it is being prepared, as on a
    refused password).
    """

    log = Logger()

    def __init__(
        self,
        settings: RedisSettings,
        reactor: Any,
        role: str,
        *,
        scripts: tuple[Script, ...] = (),
        reply_timeout: float | None = None,
        client_name: str | None = None,
        on_connect: Callable[[RedisLink], Awaitable[None]] | None = None,
        on_ready: Callable[[RedisLink], None] | None = None,
    ) -> None:
        self.settings = settings
        self.reactor = reactor
        self.role = role
        self.reply_timeout = settings.timeout if reply_timeout is None else reply_timeout
        self._scripts = scripts
        self._client_name = client_name
        self._on_connect = on_connect
        self._on_ready = on_ready
        self.protocol: txredisapi.RedisProtocol | None = None
        self._preparing: txredisapi.RedisProtocol | None = None
        self._waiting: list[Deferred[None]] = []
        # Connections in a row that never became usable (refused password,
        # failed preparation): ClientService counts only failed connects,
        # so a refused login would otherwise be retried at the first delay.
        self._rejected = 0
        self._last_refusal: str | None = None
        self._failures = 0
        self._stopping = False
        self._backoff = backoffPolicy(initialDelay=INITIAL_DELAY, maxDelay=MAX_DELAY)
        self._service = ClientService(
            redis_endpoint(settings, reactor), _ProtocolFactory(self),
            retryPolicy=self._retry, clock=reactor,
        )

    @property
    def connected(self) -> bool:
        return self.protocol is not None

    def start(self) -> None:
        self._stopping = False
        self._service.startService()

    def stop(self) -> Deferred[None]:
        self._stopping = True
        self.protocol = None
        d: Deferred[None] = self._service.stopService()
        return d

    def when_ready(self) -> Deferred[None]:
        """Fires once a connection is usable (at once if one is)."""
        if self.protocol is not None:
            return succeed(None)
        d: Deferred[None] = Deferred(lambda d: self._waiting.remove(d))
        self._waiting.append(d)
        return d

    # -- commands -----------------------------------------------------------

    def execute(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run one command; fails with ``TransportUnavailable`` unless it was answered."""
        protocol = self.protocol if self.protocol is not None else self._preparing
        return self._execute(protocol, *args, **kwargs)

    def _execute(self, protocol: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        if protocol is None or not protocol.connected:
            return fail(TransportUnavailable(f"redis {self.settings.address} is unreachable"))
        try:
            d: Deferred[Any] = protocol.execute_command(*args, **kwargs)
        except txredisapi.RedisError as e:
            return fail(TransportUnavailable(f"redis {self.settings.address}: {e}"))
        return d.addErrback(self._unavailable)

    def run(self, script: Script, keys: list[str], args: list[Any]) -> Deferred[Any]:
        """EVALSHA ``script`` (loaded on connect; EVAL if Redis lost it since)."""
        d = self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

        def reload(failure: Failure) -> Any:
            if "NOSCRIPT" in str(failure.value):
                return self.execute("EVAL", script.source, len(keys), *keys, *args)
            return failure

        return d.addErrback(reload)

    def _unavailable(self, failure: Failure) -> Failure:
        if failure.check(TransportUnavailable):
            return failure
        if failure.check(txredisapi.ResponseError):
            # Redis answered, with an error (OOM, READONLY replica, ...).
            raise TransportUnavailable(f"redis {self.settings.address}: {failure.value}")
        if failure.check(txredisapi.RedisError, ConnectionError, OSError):
            raise TransportUnavailable(
                f"redis {self.settings.address}: {failure.getErrorMessage() or 'connection lost'}"
            )
        return failure

    # -- connection life ---------------------------------------------------

    def _retry(self, attempt: int) -> float:
        attempt = max(attempt, self._rejected)
        delay: float = self._backoff(attempt)
        self._failures = attempt
        if attempt == 1 or attempt % 20 == 0:
            self.log.warn(
                "redis {role}: connecting to {address} (attempt {attempt}), "
                "retrying every {delay:.1f}s at most until it answers",
                role=self.role, address=self.settings.address, attempt=attempt,
                delay=max(delay, MAX_DELAY),
            )
        return delay

    def refused(self, why: str) -> None:
        """Redis refused the login or the database: said once, then every 20th time."""
        if why != self._last_refusal or self._rejected % 20 == 0:
            self.log.error("redis {role} at {address}: {why}", role=self.role,
                           address=self.settings.address, why=why)
        self._last_refusal = why

    def connecting(self, protocol: txredisapi.RedisProtocol) -> None:
        """Called by the factory for every new connection: prepare it, then use it."""
        self._rejected += 1
        Deferred.fromCoroutine(self._prepare(protocol)).addErrback(self._not_prepared, protocol)

    async def _prepare(self, protocol: txredisapi.RedisProtocol) -> None:
        first: Deferred[bool] = Deferred()
        protocol.whenConnected().addCallback(
            lambda _: None if first.called else first.callback(True))
        protocol.whenDisconnected().addCallback(
            lambda _: None if first.called else first.callback(False))
        if not await first:
            return  # closed during AUTH/SELECT: ClientService tries again
        self._preparing = protocol
        try:
            if self._client_name:
                # CLIENT LIST then tells which node and role a connection is.
                await self._execute(protocol, "CLIENT", "SETNAME", self._client_name)
            for script in self._scripts:
                await self._execute(protocol, "SCRIPT", "LOAD", script.source)
            if self._on_connect is not None:
                await self._on_connect(self)
        finally:
            self._preparing = None
        if not protocol.connected or self._stopping:
            return
        self.protocol = protocol
        self._rejected = 0
        self._last_refusal = None
        protocol.whenDisconnected().addCallback(lambda _: self._lost(protocol))
        if self._failures:
            self.log.info(
                "redis {role} connection to {address} restored after {failures} failed attempt(s)",
                role=self.role, address=self.settings.address, failures=self._failures,
            )
        else:
            self.log.info("redis {role} connected to {address}", role=self.role,
                          address=self.settings.address)
        self._failures = 0
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)
        if self._on_ready is not None:
            self._on_ready(self)

    def _not_prepared(self, failure: Failure, protocol: Any) -> None:
        if protocol.connected:
            self.log.warn("redis {role} connection to {address} could not be prepared: {error}",
                          role=self.role, address=self.settings.address,
                          error=failure.getErrorMessage())
            protocol.transport.loseConnection()

    def _lost(self, protocol: Any) -> None:
        if self.protocol is protocol:
            self.protocol = None
            if not self._stopping:
                self.log.warn("redis {role} connection to {address} lost; reconnecting",
                              role=self.role, address=self.settings.address)
