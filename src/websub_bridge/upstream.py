"""``[websub.mercure]``: the Mercure hub the standalone bridge works against.

Only ``twistd websub-bridge`` reads it (inside ``twistd mercure`` the
bridge *is* in the hub).  The tokens are secrets: each may be given inline,
as ``@FILE`` (the file's content, stripped: what a secrets mount provides),
or by the environment (``WEBSUB_BRIDGE_PUBLISHER_TOKEN``,
``WEBSUB_BRIDGE_SUBSCRIBER_TOKEN``, which win over the file), and they are
never shown in a ``repr`` or a log.

The subscriber token must not grant any ``mercure.subscribe`` topic: over
SSE a private update cannot be told from a public one, and the bridge must
never hand a private update to a WebSub subscriber.  Without a subscriber
token the bridge subscribes anonymously (the hub must allow it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from mercure_twisted.config import ConfigError

from .http_port import check_subscriber_token

__all__ = ["ENVIRONMENT", "UpstreamConfig", "check_subscriber_token", "upstream_config"]

ENVIRONMENT = {
    "publisher_token": "WEBSUB_BRIDGE_PUBLISHER_TOKEN",
    "subscriber_token": "WEBSUB_BRIDGE_SUBSCRIBER_TOKEN",
}
_KEYS = frozenset({"url", "publisher_token", "subscriber_token", "reconnect_max_seconds"})


@attrs.frozen
class UpstreamConfig:
    """The Mercure hub's URL and the bridge's two tokens for it."""

    url: str
    publisher_token: str = attrs.field(repr=False)
    subscriber_token: str | None = attrs.field(default=None, repr=False)
    #: The longest wait between two attempts to reopen a cut SSE stream.
    reconnect_max_seconds: float = 30.0


def _token(table: Mapping[str, Any], key: str, environ: Mapping[str, str]) -> str | None:
    value: Any = environ.get(ENVIRONMENT[key]) or table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"'websub.mercure.{key}' must be a token or @FILE")
    if value.startswith("@"):
        path = value[1:]
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read websub.mercure.{key} from {path}: {e}") from None
    value = value.strip()
    if not value or any(c.isspace() for c in value):
        raise ConfigError(f"'websub.mercure.{key}' is not a token (empty, or with spaces)")
    return str(value)


def upstream_config(table: Any, environ: Mapping[str, str], url: str | None = None) -> UpstreamConfig:
    """The validated ``[websub.mercure]`` table (``url`` from a flag wins)."""
    from .config import _is_http_url

    if table is None:
        table = {}
    if not isinstance(table, Mapping):
        raise ConfigError("'websub.mercure' must be a table ([websub.mercure])")
    for key in table:
        if key not in _KEYS:
            raise ConfigError(f"unknown key 'websub.mercure.{key}'")
    url = url or table.get("url")
    if not isinstance(url, str) or not _is_http_url(url):
        raise ConfigError(
            "the standalone bridge needs the Mercure hub's URL: set --mercure-url "
            "(TOML: [websub.mercure] url), e.g. http://127.0.0.1:3000/.well-known/mercure"
        )
    publisher = _token(table, "publisher_token", environ)
    if publisher is None:
        raise ConfigError(
            "the standalone bridge needs a publisher token for the Mercure hub: set "
            f"{ENVIRONMENT['publisher_token']} (TOML: [websub.mercure] publisher_token = \"@FILE\")"
        )
    subscriber = _token(table, "subscriber_token", environ)
    if subscriber is not None:
        try:
            check_subscriber_token(subscriber)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    cap = table.get("reconnect_max_seconds", 30.0)
    if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not 0 < cap <= 3600:
        raise ConfigError("'websub.mercure.reconnect_max_seconds' must be a number in (0, 3600]")
    return UpstreamConfig(
        url=url, publisher_token=publisher, subscriber_token=subscriber,
        reconnect_max_seconds=float(cap),
    )
