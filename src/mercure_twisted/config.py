"""The hub's configuration: one frozen object, validated once at start.

``tap.py`` builds it from (in increasing precedence) built-in defaults, the
TOML file given by ``--config``, the environment (the Go hub's
``MERCURE_*`` variables) and command-line flags, then calls
``HubConfig.validate`` (via ``load_config``) so that a setting that cannot
work stops the start with one clear line instead of failing on the first
request.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs

__all__ = [
    "DEV_JWT_SECRET",
    "ConfigError",
    "HubConfig",
    "KeySpec",
    "Protocol",
    "Role",
]

Role = Literal["publisher", "subscriber"]

#: Where the hub is served (the well-known path both drafts define).
DEFAULT_HUB_PATH = "/.well-known/mercure"
Protocol = Literal["0", "1", "both"]

#: The documented well-known secret of ``--dev``.  Never use it in production:
#: anyone who reads this line can mint tokens for a ``--dev`` hub.
DEV_JWT_SECRET = "!ChangeThisMercureHubJWTSecretKey!"

#: Algorithms a token may be signed with.  ``none`` is never accepted.
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512",
    "EdDSA",
)
SUPPORTED_ALGORITHMS = HMAC_ALGORITHMS + ASYMMETRIC_ALGORITHMS


class ConfigError(ValueError):
    """A setting that cannot work; the message is one line for the operator."""


@attrs.frozen
class KeySpec:
    """One trusted verification key (or JWKS URL) for one role.

    ``key`` is an HMAC secret or a PEM public key; ``jwks_url`` is a JWK Set
    fetched with treq.  Exactly one of them is set.  ``issuer`` binds the key
    to a draft-08 ``iss``; ``None`` means "the issuer configured globally with
    ``--issuer``, or any issuer for draft-07 tokens (which carry none)".
    """

    role: Role
    alg: str = "HS256"
    key: str | None = attrs.field(default=None, repr=False)
    jwks_url: str | None = None
    issuer: str | None = None


@attrs.frozen
class HubConfig:
    """Every setting of the hub, with the defaults of ``twistd mercure``."""

    listen: tuple[str, ...] = ("tcp:3000",)
    keys: tuple[KeySpec, ...] = ()
    anonymous: bool = False
    cors_origins: tuple[str, ...] = ()
    publish_origins: tuple[str, ...] = ()
    cookie_name: str | None = None  # None: each draft's default name
    subscriptions: bool = False
    heartbeat: float = 40.0  # seconds; 0 disables
    write_timeout: float = 600.0  # seconds; 0 disables
    dispatch_timeout: float = 5.0  # seconds; 0 disables
    max_body_size: int = 1024 * 1024  # bytes
    public_url: str | None = None  # e.g. https://hub.example.com/.well-known/mercure
    issuers: tuple[str, ...] = ()  # draft-08 iss values the keys are bound to
    protocol: Protocol = "both"
    history_size: int = 1000
    # Seconds an update stays in history; 0 keeps it until history_size evicts it.
    history_max_age: float = 0.0
    # ``twistd mercure`` defaults to ``sqlite:///<data_dir>/mercure.db`` (see
    # ``_configload.default_data_dir``); a hub built in code defaults to memory.
    transport: str = "memory://"
    # Where the hub keeps its files (the SQLite history, the WebSub bridge's state).
    data_dir: str = ""
    dev: bool = False
    debug_ui: bool = False
    # Limits (400 beyond them): matchers per subscription and their length,
    # topics per update.
    max_matchers: int = 100
    max_matcher_length: int = 2048
    max_topics: int = 100
    # A subscriber whose unwritten events exceed this many bytes is cut off.
    max_subscriber_buffer: int = 4 * 1024 * 1024
    # Concurrent subscriptions (429 beyond): in total (0: what the open-file
    # limit allows) and per client address (0: no per-address bound).
    max_connections: int = 0
    max_connections_per_client: int = 0
    # Production (see metrics.py, logs.py, shutdown.py): a separate endpoint
    # for /metrics (None: /metrics on the main listeners), the log output
    # format, and how long SIGTERM waits for streams to end before aborting.
    metrics_listen: str | None = None
    log_format: str = "text"  # "text" or "json"
    # Events below this level are dropped before they are formatted.
    log_level: str = "info"  # "debug", "info", "warn", "error" or "critical"
    shutdown_timeout: float = 10.0
    # The optional WebSub bridge (``websub_bridge.config`` validates these
    # fully when ``tap.py`` wires it in): the base URL hubs reach its
    # callbacks under, the CIDRs its outbound guard admits, and the rest of
    # the ``[websub]`` TOML table, raw and read-only.
    websub_public_url: str | None = None
    websub_allow_networks: tuple[str, ...] = ()
    websub: Mapping[str, Any] = attrs.field(factory=lambda: MappingProxyType({}), eq=False)

    def keys_for(self, role: Role) -> tuple[KeySpec, ...]:
        return tuple(k for k in self.keys if k.role == role)

    @property
    def hub_path(self) -> str:
        """The path of the hub URL: the root of its reserved namespace and of
        subscription-event topics (``/.well-known/mercure`` by default)."""
        if self.public_url:
            return urlsplit(self.public_url).path.rstrip("/") or DEFAULT_HUB_PATH
        return DEFAULT_HUB_PATH

    @property
    def accepts_draft07(self) -> bool:
        return self.protocol in ("0", "both")

    @property
    def accepts_draft08(self) -> bool:
        return self.protocol in ("1", "both")


from ._configload import load_config  # noqa: E402

__all__ += ["load_config"]
