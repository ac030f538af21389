"""The bridge's configuration, validated once at start.

``mercure_twisted`` keeps the ``[websub]`` settings raw and type-checked
only at the top (``HubConfig.websub_public_url``,
``websub_allow_networks`` and the rest of the ``[websub]`` table in
``HubConfig.websub``): it never imports the bridge.  ``tap.py`` calls
`bridge_config` to turn them into a `BridgeConfig`, and any setting that
cannot work raises `mercure_twisted.config.ConfigError`, which stops the
start with one line, like every other setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs

from mercure_twisted.config import ConfigError, HubConfig

from .guard import GuardError, IPNetwork, parse_network
from .hub._config import HubRoleConfig, hub_role_config

__all__ = ["BridgeConfig", "FollowSpec", "bridge_config", "follow_spec"]

FollowMode = Literal["document", "entries"]
MODES: tuple[FollowMode, ...] = ("document", "entries")


@attrs.frozen
class FollowSpec:
    """One ``[[websub.follow]]`` table, or one follow added with the API."""

    topic: str
    mercure_topic: str | None = None
    private: bool = False
    lease_seconds: int | None = None
    mode: FollowMode = "document"


@attrs.frozen
class BridgeConfig:
    """Everything the follow role needs, with its defaults."""

    #: Base URL under which hubs reach our callbacks (no trailing slash).
    public_url: str
    allow_networks: tuple[IPNetwork, ...] = ()
    #: Send a ``hub.secret`` to http (not https) hubs too.  Over http the
    #: secret travels in clear; the signature then only proves the hub knows it.
    http_secret: bool = False
    #: Largest content distribution body accepted (413 beyond).
    max_body_size: int = 1024 * 1024
    #: Seconds every outbound request may take.
    request_timeout: float = 10.0
    #: The lease asked of hubs when a follow asks none (the hub decides).
    lease_seconds: int | None = None
    #: Feed entry ids remembered per follow (``mode = "entries"``).
    max_seen_entries: int = 10_000
    #: Follows the API may add (each one makes the bridge send requests out).
    max_follows: int = 1000
    follows: tuple[FollowSpec, ...] = ()
    #: The WebSub hub role (``[websub.hub]``), None when not configured.
    hub: HubRoleConfig | None = None

    @property
    def callback_base(self) -> str:
        return self.public_url + "/websub/callback/"


_TOP_KEYS = frozenset(
    {
        "http_secret", "max_body_size", "request_timeout", "lease_seconds",
        "max_seen_entries", "max_follows", "follow", "hub",
    }
)
_FOLLOW_KEYS = frozenset({"topic", "mercure_topic", "private", "lease_seconds", "mode"})


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc


def follow_spec(table: Mapping[str, Any], where: str) -> FollowSpec:
    """A validated `FollowSpec`; raises ``ValueError`` with a one-line reason
    (the API answers it as 400, the configuration as `ConfigError`)."""
    for key in table:
        if key not in _FOLLOW_KEYS:
            raise ValueError(f"unknown key {key!r} in {where}")
    topic = table.get("topic")
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"{where} needs a 'topic' (the URL to follow)")
    if not _is_http_url(topic):
        raise ValueError(f"'topic' in {where} must be an absolute http(s) URL, not {topic!r}")
    mercure_topic = table.get("mercure_topic")
    if mercure_topic is not None and (not isinstance(mercure_topic, str) or not mercure_topic):
        raise ValueError(f"'mercure_topic' in {where} must be a non-empty string")
    private = table.get("private", False)
    if not isinstance(private, bool):
        raise ValueError(f"'private' in {where} must be a boolean (true or false)")
    lease = table.get("lease_seconds")
    if lease is not None and (isinstance(lease, bool) or not isinstance(lease, int) or lease <= 0):
        raise ValueError(f"'lease_seconds' in {where} must be a positive integer")
    mode = table.get("mode", "document")
    if mode not in MODES:
        raise ValueError(f"'mode' in {where} must be \"document\" or \"entries\", not {mode!r}")
    return FollowSpec(
        topic=topic, mercure_topic=mercure_topic, private=private, lease_seconds=lease, mode=mode
    )


def _positive_int(table: Mapping[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"'websub.{key}' must be a positive integer, not {value!r}")
    return value


def bridge_config(config: HubConfig, *, standalone: bool = False) -> BridgeConfig | None:
    """The validated bridge settings, or None when the bridge is not configured.

    The bridge runs when ``websub_public_url`` is set; ``[websub]``
    settings without it cannot work and stop the start.  ``[websub.mercure]``
    (the hub the bridge talks to) is read by the standalone bridge itself
    (`websub_bridge.upstream`); inside ``twistd mercure`` it is an error.
    """
    table: Mapping[str, Any] = config.websub
    public_url = config.websub_public_url
    if public_url is None:
        if table or config.websub_allow_networks:
            raise ConfigError(
                "the WebSub bridge needs a public URL: set --websub-public-url "
                "(TOML: [websub] public_url)"
            )
        return None
    if not _is_http_url(public_url) or urlsplit(public_url).query or urlsplit(public_url).fragment:
        raise ConfigError(
            f"websub public_url must be an absolute http(s) URL without query, not {public_url!r}"
        )
    for key in table:
        if key == "mercure":
            if not standalone:
                raise ConfigError(
                    "[websub.mercure] configures the standalone bridge (twistd websub-bridge); "
                    "inside twistd mercure the bridge uses this hub"
                )
        elif key not in _TOP_KEYS:
            raise ConfigError(f"unknown key 'websub.{key}'")
    networks: list[IPNetwork] = []
    for text in config.websub_allow_networks:
        try:
            networks.append(parse_network(text))
        except GuardError as e:
            raise ConfigError(f"--websub-allow-network: {e}") from None
    http_secret = table.get("http_secret", False)
    if not isinstance(http_secret, bool):
        raise ConfigError("'websub.http_secret' must be a boolean (true or false)")
    timeout = table.get("request_timeout", 10.0)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ConfigError(f"'websub.request_timeout' must be a positive number of seconds, not {timeout!r}")
    lease = table.get("lease_seconds")
    if lease is not None:
        lease = _positive_int(table, "lease_seconds", 1)
    raw_follows = table.get("follow", ())
    if not isinstance(raw_follows, (list, tuple)) or not all(
        isinstance(t, Mapping) for t in raw_follows
    ):
        raise ConfigError("'websub.follow' must be an array of tables ([[websub.follow]])")
    follows: list[FollowSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_follows):
        try:
            spec = follow_spec(raw, f"websub.follow[{i}]")
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if spec.topic in seen:
            raise ConfigError(f"websub.follow[{i}]: topic {spec.topic!r} is followed twice")
        seen.add(spec.topic)
        follows.append(spec)
    return BridgeConfig(
        public_url=public_url.rstrip("/"),
        allow_networks=tuple(networks),
        http_secret=http_secret,
        max_body_size=min(_positive_int(table, "max_body_size", 1024 * 1024), config.max_body_size),
        request_timeout=float(timeout),
        lease_seconds=lease,
        max_seen_entries=_positive_int(table, "max_seen_entries", 10_000),
        max_follows=_positive_int(table, "max_follows", 1000),
        follows=tuple(follows),
        hub=hub_role_config(table.get("hub")),
    )
