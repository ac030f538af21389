"""Choose a transport from its URL (``--transport``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..config import ConfigError, HubConfig
from ._interface import ITransport
from ._memory import MemoryTransport


def transport_from_url(config: HubConfig) -> ITransport:
    scheme = urlsplit(config.transport).scheme
    if scheme == "memory":
        return MemoryTransport(config.history_size)
    raise ConfigError(
        f"unsupported transport {config.transport!r}: this hub supports memory://"
    )
