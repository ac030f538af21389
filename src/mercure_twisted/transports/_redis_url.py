"""``redis://`` and ``rediss://`` transport URLs, parsed and checked once at start.

``redis://[[user]:password@]host[:port][/db][?option=value&...]``; ``rediss://``
is the same over TLS.  Options: ``prefix`` (key prefix, so that several hubs
can share one Redis), ``presence_ttl`` (seconds a dead node's subscribers
stay listed), ``timeout`` (seconds to wait for a Redis reply), and for
``rediss://`` ``ca`` (a PEM file of the CA to trust instead of the system's).
Anything else is a one-line ``ConfigError``, so that a typo stops ``twistd``
at start instead of being silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from ..config import ConfigError

DEFAULT_PORT = 6379
DEFAULT_PREFIX = "mercure"
DEFAULT_PRESENCE_TTL = 30.0
DEFAULT_TIMEOUT = 5.0

_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


@attrs.frozen
class RedisSettings:
    """Where Redis is and how to talk to it; ``__repr__`` never shows the password."""

    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    tls: bool = False
    ca: str | None = None
    prefix: str = DEFAULT_PREFIX
    presence_ttl: float = DEFAULT_PRESENCE_TTL
    timeout: float = DEFAULT_TIMEOUT

    @property
    def address(self) -> str:
        """``host:port/db``, for logs: no user, no password."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{host}:{self.port}/{self.db}"

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))


def _seconds(name: str, value: str, minimum: float) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"redis transport: {name}={value!r} is not a number of seconds") from None
    if not seconds >= minimum or seconds == float("inf"):
        raise ConfigError(f"redis transport: {name} must be at least {minimum:g} seconds, not {value!r}")
    return seconds


def parse_redis_url(url: str) -> RedisSettings:
    """The settings of ``url``; raises ``ConfigError`` (one line, no password) if it cannot work."""
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as e:
        raise ConfigError(f"invalid redis transport URL: {e}") from None
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(f"not a redis:// or rediss:// URL (scheme {parts.scheme!r})")
    if not host:
        raise ConfigError("redis transport URL has no host: use redis://host:6379/0")
    if parts.fragment:
        raise ConfigError("redis transport URL must not have a #fragment")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ConfigError(f"redis transport URL: the path must be a database number, not {path!r}")
    settings: dict[str, Any] = {
        "host": host,
        "port": port or DEFAULT_PORT,
        "db": int(path) if path else 0,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password is not None else None,
        "tls": parts.scheme == "rediss",
    }
    seen: set[str] = set()
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name in seen:
            raise ConfigError(f"redis transport URL: option {name!r} given twice")
        seen.add(name)
        if name == "prefix":
            if not _PREFIX.fullmatch(value):
                raise ConfigError(
                    f"redis transport: prefix {value!r} must be 1-100 of A-Z a-z 0-9 _ . : -"
                )
            settings["prefix"] = value
        elif name == "presence_ttl":
            settings["presence_ttl"] = _seconds(name, value, 1.0)
        elif name == "timeout":
            settings["timeout"] = _seconds(name, value, 0.1)
        elif name == "ca":
            if parts.scheme != "rediss":
                raise ConfigError("redis transport: ca= only applies to rediss:// (TLS) URLs")
            if not Path(value).is_file():
                raise ConfigError(f"redis transport: ca file {value!r} does not exist")
            settings["ca"] = value
        else:
            raise ConfigError(
                f"redis transport URL: unknown option {name!r} "
                "(known: prefix, presence_ttl, timeout, ca)"
            )
    return RedisSettings(**settings)
