"""The cluster transport: any number of hub processes share one Redis.

Updates go into one Redis Stream (a Lua script adds the entry, indexes its
id for ``Last-Event-ID`` and trims stream and index together, atomically).
Every node has a reader, on a connection of its own, that follows the
stream with ``XREAD BLOCK`` from the last stream id it saw and dispatches
each entry once, in stream order, including the node's own publishes: so
all nodes deliver the same updates in the same order.  After a reconnect
the reader resumes from that id, so nothing published meanwhile is missed
unless it was trimmed first (then a warning says so).

Positions are stream ids as ``(milliseconds, sequence)`` tuples: increasing
and comparable, as the hub's replay de-duplication needs.

While Redis is away, open streams stay open, ``publish``, ``history`` and
``ping`` fail at once with ``TransportUnavailable`` (the web layer answers
503), and both connections retry with backoff until Redis is back.

Client library: txredisapi (a plain Twisted protocol, with hiredis parsing
replies).  Measured on this project's machine against a local
redis-server 7.0, XADD from a Twisted process: txredisapi on the epoll
reactor 15,000-30,000 sequential round trips/s and 33,000-50,000/s
pipelined; redis-py 8.1 (asyncio) under Twisted's asyncio reactor
5,000-8,000/s sequential, 44,000-51,000/s with an explicit pipeline, and
the asyncio reactor itself halves Twisted's TCP round trips (40,000 ->
21,000-24,000/s) for the whole hub, SSE included.  Through this transport
(Lua publish script, the node's own reader dispatching in the same
process): about 4,000 publishes/s one after the other, 7,000/s concurrent.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..update import Update
from ._interface import HistoryResult, ITransport, TransportUnavailable
from ._redis_link import RedisLink
from ._redis_presence import RedisPresence
from ._redis_scripts import ALL as SCRIPTS, HISTORY, PUBLISH, TRIM_AGE
from ._redis_url import RedisSettings, parse_redis_url

__all__ = ["RedisTransport", "decode_entry", "encode_update"]

EARLIEST = "earliest"

#: The stream always keeps at least this many entries (``MAXLEN ~``), even
#: with a smaller ``history_size``: a reader that lags behind a burst of
#: publishes must still find them.  ``history()`` answers only the newest
#: ``history_size``.
MIN_STREAM_LENGTH = 10_000
#: And entries at least this old are kept when trimming by age (history
#: still answers only ``history_max_age``).
MIN_STREAM_AGE = 60.0
#: How long one XREAD blocks on the server before it is issued again.
READ_BLOCK_MS = 5000
READ_COUNT = 500
#: While the stream is busy (the last read returned updates), the next read
#: waits this long first, so that it brings the updates of that time
#: together: they are dispatched in one reactor pass, and each stream
#: sends them in one ``send`` (web/_sse.py).  Without it a node dispatches
#: about as many reads as there are updates, and the fewer subscribers a
#: node holds, the faster it comes back for each single update: with 2
#: nodes of 500 subscribers the benchmark measured 1.5 updates per send
#: against 2.6 for one node of 1,000.  A quiet stream is read at once.
BUSY_READ_DELAY = 0.002
#: How long ``stop`` waits for publishes in flight.
STOP_BOUND = 5.0

Position = tuple[int, int]


def position_of(stream_id: bytes | str) -> Position:
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, seq = text.partition("-")
    return (int(ms), int(seq))


def stream_id_of(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


def encode_update(update: Update) -> str:
    fields: dict[str, Any] = {"t": list(update.topics), "d": update.data}
    if update.private:
        fields["p"] = True
    if update.type is not None:
        fields["y"] = update.type
    if update.retry is not None:
        fields["r"] = update.retry
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def entry_number(fields: Any) -> int | None:
    """The entry's number in the log (``n``: 1, 2, 3... since the log began), if it has one."""
    if isinstance(fields, list) and len(fields) == 6 and fields[2] == b"n":
        try:
            return int(fields[3])
        except (TypeError, ValueError):
            return None
    return None


def decode_entry(stream_id: bytes, fields: list[Any]) -> Update:
    """The update of one stream entry; ``ValueError`` for an entry that is not ours."""
    if not (isinstance(fields, list) and len(fields) == 6
            and fields[0] == b"i" and fields[2] == b"n" and fields[4] == b"u"):
        raise ValueError("unexpected fields")
    event_id = fields[1].decode("utf-8")
    body = json.loads(fields[5])
    topics = body.get("t")
    if not (isinstance(topics, list) and topics and all(isinstance(t, str) for t in topics)):
        raise ValueError("no topics")
    data, private = body.get("d", ""), body.get("p", False)
    type_, retry = body.get("y"), body.get("r")
    if not (isinstance(data, str) and isinstance(private, bool)
            and (type_ is None or isinstance(type_, str))
            and (retry is None or (isinstance(retry, int) and not isinstance(retry, bool)))):
        raise ValueError("bad field types")
    return Update(
        topics=tuple(topics), id=event_id, data=data, private=private, type=type_, retry=retry,
        position=position_of(stream_id),
    )


@implementer(ITransport)
class RedisTransport:
    """Updates, history and presence in one Redis, shared by every node."""

    name = "redis"
    log = Logger()

    @classmethod
    def from_url(cls, url: str, *, config: Any, reactor: Any) -> RedisTransport:
        """Raises ``ConfigError`` (one line, no password) for a URL that cannot work."""
        return cls(
            parse_redis_url(url), reactor=reactor,
            history_size=config.history_size, history_max_age=config.history_max_age,
        )

    def __init__(
        self,
        settings: RedisSettings,
        *,
        reactor: Any,
        history_size: int = 1000,
        history_max_age: float = 0.0,
        node: str | None = None,
        min_stream_length: int = MIN_STREAM_LENGTH,
        min_stream_age: float = MIN_STREAM_AGE,
        busy_read_delay: float = BUSY_READ_DELAY,
    ) -> None:
        self.settings = settings
        self._reactor = reactor
        self._busy_read_delay = busy_read_delay
        self._history_size = max(0, history_size)
        self._max_age_ms = int(history_max_age * 1000)
        self._stream_length = max(self._history_size, min_stream_length)
        self._min_stream_age_ms = int(min_stream_age * 1000)
        self._keys = [
            settings.key("updates"), settings.key("ids"), settings.key("order"),
            settings.key("count"),
        ]
        self.node = node or uuid.uuid4().hex
        self._main = RedisLink(
            settings, reactor, "main", scripts=SCRIPTS, on_connect=self._main_connected,
            client_name=f"{settings.prefix}:{self.node}:main",
        )
        self._reader = RedisLink(
            settings, reactor, "reader", on_connect=self._reader_connected,
            on_ready=self._reader_ready, client_name=f"{settings.prefix}:{self.node}:reader",
            reply_timeout=READ_BLOCK_MS / 1000 + settings.timeout,
        )
        self.presence = RedisPresence(settings, self._main, self.node)
        self._dispatch: Callable[[Update], None] | None = None
        self._last_seen: str | None = None  # stream id the reader has dispatched up to
        self._last_number: int | None = None  # and its entry number
        #: Updates this node never dispatched because they were trimmed first.
        self.missed = 0
        self._reading = False  # the reader knows where the stream ended at start
        self._waiting_for_reader: list[Deferred[None]] = []
        self._last_id: str | None = None
        self._last_position: Position | None = None
        self._length: int | None = None
        self._pending: set[Deferred[Any]] = set()
        self._loops: list[LoopingCall] = []
        self._running = False

    # -- lifecycle ------------------------------------------------------------

    def start(self, dispatch: Callable[[Update], None]) -> Deferred[None]:
        """Connect; fire once the reader knows where the stream ends, or
        after ``timeout`` seconds if Redis cannot be reached (the node then
        starts anyway, refusing publishes until Redis is there)."""
        self._dispatch = dispatch
        self._running = True
        self._main.start()
        self._reader.start()
        self._loops.append(self._every(self.presence.heartbeat_interval, self._heartbeat))
        if self._max_age_ms:
            interval = min(60.0, max(1.0, self._max_age_ms / 4000))
            self._loops.append(self._every(interval, self._trim_by_age))

        async def started() -> None:
            waiting = Deferred.fromCoroutine(self._both_connected())
            waiting.addTimeout(self.settings.timeout, self._reactor)
            try:
                await waiting
            except Exception:
                self.log.warn(
                    "redis at {address} is unreachable at start: publishes are refused "
                    "(503) until it is reachable",
                    address=self.settings.address,
                )

        return Deferred.fromCoroutine(started())

    async def _both_connected(self) -> None:
        if not self._reading:
            waiter: Deferred[None] = Deferred()
            self._waiting_for_reader.append(waiter)
            await waiter
        await self._main.when_ready()

    def _every(self, seconds: float, f: Callable[[], Any]) -> LoopingCall:
        loop = LoopingCall(f)
        loop.clock = self._reactor
        loop.start(seconds, now=False).addErrback(
            lambda failure: self.log.failure("redis maintenance loop stopped", failure)
        )
        return loop

    def stop(self) -> Deferred[None]:
        """Let publishes in flight finish, withdraw this node's presence, disconnect."""

        async def stop() -> None:
            self._running = False
            self._dispatch = None
            for loop in self._loops:
                if loop.running:
                    loop.stop()
            self._loops.clear()
            if self._pending:
                flushed = DeferredList(list(self._pending), consumeErrors=True)
                flushed.addTimeout(STOP_BOUND, self._reactor)
                try:
                    await flushed
                except Exception:
                    self.log.warn("redis: publishes still unanswered at stop")
            if self._main.connected:
                withdrawn = self.presence.withdraw()
                withdrawn.addTimeout(self.settings.timeout, self._reactor)
                try:
                    await withdrawn
                except Exception:
                    pass  # the TTL removes them
            await DeferredList([self._reader.stop(), self._main.stop()], consumeErrors=True)

        return Deferred.fromCoroutine(stop())

    # -- connections --------------------------------------------------------------

    async def _main_connected(self, link: RedisLink) -> None:
        await self.presence.restore(link)
        length = await link.execute("XLEN", self._keys[0])
        self._length = min(int(length), self._history_size)

    async def _reader_connected(self, link: RedisLink) -> None:
        stream = self._keys[0]
        if self._last_seen is None:
            # First connection: dispatch what comes from now on, not the past.
            newest = await link.execute("XREVRANGE", stream, "+", "-", "COUNT", 1)
            if newest:
                sid, fields = newest[0]
                self._last_seen = sid.decode()
                self._last_number = entry_number(fields)
                try:
                    self._remember(decode_entry(sid, fields))
                except (ValueError, TypeError, UnicodeDecodeError):
                    pass
            else:
                self._last_seen = "0-0"
            length = await link.execute("XLEN", stream)
            self._length = min(int(length), self._history_size)
            return
        # Later connections resume after self._last_seen (entry numbers tell
        # whether anything was trimmed meanwhile), unless the log itself was
        # started again behind it: a Redis that came back empty with a clock
        # behind the old one's would give new entries smaller ids, and the
        # reader would wait for them forever.
        try:
            info = await link.execute("XINFO", "STREAM", stream)
        except TransportUnavailable as e:
            if "no such key" not in str(e):
                raise
            newest = None
        else:
            fields = dict(zip(info[::2], info[1::2]))
            newest = fields.get(b"last-generated-id")
        if newest is None or position_of(newest) < position_of(self._last_seen):
            if self._last_seen != "0-0":
                self.log.info("redis reader: the update log started again; reading it "
                              "from its beginning")
            self._last_seen = "0-0"
            self._last_position = None  # last_event_id follows the new log

    def _reader_ready(self, link: RedisLink) -> None:
        if not self._reading:
            self._reading = True
            waiters, self._waiting_for_reader = self._waiting_for_reader, []
            for waiter in waiters:
                waiter.callback(None)
        protocol = link.protocol
        Deferred.fromCoroutine(self._follow(link, protocol)).addErrback(
            lambda failure: self.log.failure("redis reader stopped", failure)
        )

    async def _follow(self, link: RedisLink, protocol: Any) -> None:
        """Read the stream on this connection until it is lost; the next one resumes."""
        while self._running and link.protocol is protocol:
            assert self._last_seen is not None
            try:
                reply = await link.execute(
                    "XREAD", "COUNT", READ_COUNT, "BLOCK", READ_BLOCK_MS,
                    "STREAMS", self._keys[0], self._last_seen,
                )
            except TransportUnavailable as e:
                if link.protocol is not protocol:
                    return  # connection lost: the next connection resumes
                self.log.error("redis reader: {error}; retrying", error=str(e))
                await deferLater(self._reactor, 1.0, lambda: None)
                continue
            busy = False
            for _key, entries in reply or ():
                for sid, fields in entries:
                    self._consume(sid, fields)
                busy = busy or 0 < len(entries) < READ_COUNT
            if busy and self._busy_read_delay > 0:
                await deferLater(self._reactor, self._busy_read_delay, lambda: None)

    def _consume(self, sid: bytes, fields: Any) -> None:
        self._last_seen = sid.decode()
        number = entry_number(fields)
        if number is not None:
            self._check_gap(number)
        try:
            update = decode_entry(sid, fields)
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as e:
            self.log.warn("redis reader: skipping stream entry {sid} that is not an update: "
                          "{error}", sid=self._last_seen, error=str(e))
            return
        self._remember(update)
        if self._dispatch is not None and self._running:
            try:
                self._dispatch(update)
            except Exception:
                self.log.failure("dispatch of {id} failed", id=update.id)

    def _check_gap(self, number: int) -> None:
        last, self._last_number = self._last_number, number
        if last is None or number == last + 1:
            return
        if number > last + 1:
            # Trimmed before this node read them: a reader disconnected (or
            # lagging) longer than the stream's slack.  Said loudly: these
            # updates were not delivered by this node.
            self.missed += number - last - 1
            self.log.warn(
                "redis reader: {missed} update(s) were trimmed before this node could "
                "read them; delivering on from {sid}",
                missed=number - last - 1, sid=self._last_seen,
            )
        else:
            self.log.info("redis reader: the update log started again (Redis restarted empty)")

    def _remember(self, update: Update) -> None:
        if self._last_position is None or update.position > self._last_position:
            self._last_position = update.position
            self._last_id = update.id

    # -- the transport interface --------------------------------------------------

    def publish(self, update: Update) -> Deferred[Update]:
        if not self._reading:
            return fail(TransportUnavailable(
                f"redis {self.settings.address} has not been reached yet"))
        d = self._main.run(
            PUBLISH, self._keys, [self._stream_length, update.id, encode_update(update)]
        )
        self._pending.add(d)

        def stored(reply: list[Any]) -> Update:
            self._pending.discard(d)
            positioned = update.with_position(position_of(reply[0]))
            self._length = min(int(reply[1]), self._history_size)
            self._remember(positioned)
            return positioned

        def failed(failure: Failure) -> Failure:
            self._pending.discard(d)
            return failure

        return d.addCallbacks(stored, failed)

    def history(self, last_event_id: str) -> Deferred[HistoryResult]:
        wanted = "" if last_event_id == EARLIEST else last_event_id
        d = self._main.run(
            HISTORY, self._keys[:2], [wanted, self._history_size, self._max_age_ms]
        )
        return d.addCallback(self._history_result)

    def _history_result(self, reply: list[Any]) -> HistoryResult:
        found, up_to, entries = reply
        updates = []
        for sid, fields in reversed(entries):
            try:
                updates.append(decode_entry(sid, fields))
            except (ValueError, TypeError, KeyError, UnicodeDecodeError) as e:
                self.log.warn("history: skipping stream entry that is not an update: {error}",
                              error=str(e))
        return HistoryResult(bool(found), tuple(updates), position_of(up_to) if up_to else None)

    def last_event_id(self) -> str | None:
        return self._last_id

    def ping(self) -> Deferred[None]:
        if not self._reading:
            return fail(TransportUnavailable(
                f"redis {self.settings.address} has not been reached yet"))
        return self._main.execute("PING").addCallback(lambda _: None)

    def history_length(self) -> int | None:
        return self._length

    # -- maintenance ----------------------------------------------------------------

    def _heartbeat(self) -> Deferred[Any]:
        if not self._main.connected:
            return succeed(None)
        d = self.presence.heartbeat()
        d.addCallback(lambda _: self._main.execute("XLEN", self._keys[0]))
        d.addCallback(lambda n: setattr(self, "_length", min(int(n), self._history_size)))
        return d.addErrback(self._maintenance_failed, "heartbeat")

    def _trim_by_age(self) -> Deferred[Any]:
        if not self._main.connected:
            return succeed(None)
        age_ms = max(self._max_age_ms, self._min_stream_age_ms)
        d = self._main.run(TRIM_AGE, self._keys[:3], [age_ms])
        return d.addErrback(self._maintenance_failed, "trim")

    def _maintenance_failed(self, failure: Failure, what: str) -> None:
        failure.trap(TransportUnavailable)
        self.log.info("redis {what} skipped: {error}", what=what, error=failure.getErrorMessage())
