"""The contract suite's Redis backend: a real redis-server of its own per test."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import reactor
from twisted.internet.interfaces import IReactorTime

from mercure_twisted.transports import ITransport
from mercure_twisted.transports._redis import RedisTransport
from mercure_twisted.transports._redis_url import parse_redis_url

from ..redis_server import RedisServer
from ._transport_backends import Backend


class RedisBackend(Backend):
    name = "redis"
    # A transport made again on the same Redis finds what was stored.
    durable = True
    shared = True
    # Ages are Redis's own clock (TIME, stream ids): tests/unit/
    # test_redis_transport.py checks retention by age on real time instead.
    controllable_clock = False

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.server = RedisServer(tmp_path / "redis").start()

    def make(
        self,
        *,
        history_size: int = 1000,
        history_max_age: float = 0.0,
        clock: IReactorTime | None = None,
    ) -> ITransport:
        return RedisTransport(
            parse_redis_url(self.server.url(query="prefix=contract")), reactor=reactor,
            history_size=history_size, history_max_age=history_max_age,
        )

    def stored_ids(self) -> list[str]:
        # Straight from Redis, not through the transport's client.
        entries = self.server.command("XRANGE", "contract:updates", "-", "+")
        return [dict(zip(fields[::2], fields[1::2]))[b"i"].decode() for _, fields in entries]

    def close(self) -> None:
        self.server.stop()
