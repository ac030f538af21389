"""Choose a transport from its URL (``--transport``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ..config import ConfigError, HubConfig
from ._interface import ITransport
from ._memory import MemoryTransport


def transport_from_url(config: HubConfig, reactor: Any = None) -> ITransport:
    """The transport ``config.transport`` names, not yet started.

    Raises ``ConfigError`` (one line) for a URL that cannot work, so that
    ``twistd`` stops at start rather than on the first publish.
    """
    scheme = urlsplit(config.transport).scheme
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    if scheme == "memory":
        return MemoryTransport(
            config.history_size, max_age=config.history_max_age, clock=reactor
        )
    if scheme == "sqlite":
        from ._sqlite import SQLiteTransport

        return SQLiteTransport.from_url(config.transport, config=config, reactor=reactor)
    if scheme in ("redis", "rediss"):
        from ._redis import RedisTransport

        return RedisTransport.from_url(config.transport, config=config, reactor=reactor)
    raise ConfigError(
        f"unsupported transport {config.transport!r}: use sqlite://, redis:// or memory://"
    )
