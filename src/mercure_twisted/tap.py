"""``twistd mercure``: the command line and the service tree.

``Options`` parses the flags and loads the configuration once
(defaults < ``--config`` TOML file < environment < flags, see
`mercure_twisted.config.load_config`), so that a setting that cannot work
stops ``twistd`` with one line before anything listens.  ``makeService``
builds a `MultiService`: the hub service first, then one listening service
per ``--listen`` endpoint, so that on stop the listeners close before the hub
drains its open streams.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.logger import Logger
from twisted.python import usage

from ._configload import LOG_LEVELS
from .config import ConfigError, HubConfig, load_config

__all__ = ["Options", "makeService", "raise_nofile_limit", "with_backlog"]

#: ``listen(2)`` backlog given to TCP and TLS endpoints that do not set one:
#: a hub takes bursts of reconnecting subscribers (every browser tab at once
#: after a deploy), far more than Twisted's default of 50.
DEFAULT_BACKLOG = 4096

_BACKLOG_TYPES = frozenset({"tcp", "tcp6", "ssl"})


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number of seconds") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{value!r} is not a non-negative number of seconds")
    return seconds


def _integer(value: str, *, minimum: int, what: str, too_small: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not {what}") from None
    if n < minimum:
        raise ValueError(f"{value!r} {too_small}")
    return n


def _count(value: str) -> int:
    return _integer(value, minimum=0, what="an integer", too_small="is negative")


def _size(value: str) -> int:
    return _integer(
        value, minimum=1, what="a number of bytes", too_small="is not a positive number of bytes"
    )


def _protocol(value: str) -> str:
    if value not in ("0", "1", "both"):
        raise ValueError(f'--protocol must be 1, 0 or both, not {value!r}')
    return value


def _log_level(value: str) -> str:
    if value not in LOG_LEVELS:
        raise ValueError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return value


def _log_format(value: str) -> str:
    if value not in ("text", "json"):
        raise ValueError(f"--log-format must be text or json, not {value!r}")
    return value


def _origins(value: str) -> tuple[str, ...]:
    return tuple(value.split())


class Options(usage.Options):
    """The flags of ``twistd mercure``; every flag is also a TOML key (see README)."""

    synopsis = "[options]"
    longdesc = (
        "A Mercure hub (draft-07 and draft-08). Settings come from, in "
        "increasing precedence: defaults, the --config TOML file, the "
        "MERCURE_* environment variables, these flags."
    )

    optFlags = [
        ["anonymous", None, "Allow subscribers without a token."],
        ["subscriptions", None, "Publish subscription events (/.well-known/mercure/subscriptions)."],
        ["dev", None,
         "Development preset: the well-known JWT secret for both roles (unless keys are "
         "given), anonymous, subscriptions, CORS *, debug UI. Never in production."],
    ]

    # Every default is None so that only the flags actually given reach
    # load_config (a default here would override the TOML file); the real
    # defaults are HubConfig's and are shown in the help texts.
    optParameters: list[list[Any]] = [
        ["config", "c", None, "TOML configuration file."],
        ["publisher-jwt-key", None, None, "Publisher HMAC secret or PEM public key (or @FILE)."],
        ["publisher-jwt-alg", None, None, "Publisher token algorithm (default: HS256)."],
        ["subscriber-jwt-key", None, None, "Subscriber HMAC secret or PEM public key (or @FILE)."],
        ["subscriber-jwt-alg", None, None, "Subscriber token algorithm (default: HS256)."],
        ["publisher-jwks-url", None, None, "JWK Set URL of the publishers' keys."],
        ["subscriber-jwks-url", None, None, "JWK Set URL of the subscribers' keys."],
        ["cors-origins", None, None, "Space-separated origins allowed to subscribe (or *).", _origins],
        ["publish-origins", None, None, "Space-separated origins allowed to publish from a browser.", _origins],
        ["cookie-name", None, None, "Authorization cookie name (default: each draft's own)."],
        ["heartbeat", None, None, "Seconds between heartbeats, 0 disables (default: 40).", _seconds],
        ["write-timeout", None, None, "Max seconds a stream stays open, 0 disables (default: 600).", _seconds],
        ["dispatch-timeout", None, None, "Max seconds to deliver one update, 0 disables (default: 5).", _seconds],
        ["max-body-size", None, None, "Max publish body in bytes (default: 1048576).", _size],
        ["public-url", None, None, "Public URL of the hub, e.g. https://hub.example.com/.well-known/mercure."],
        ["issuer", None, None, "Draft-08 issuer (iss) the keys are bound to."],
        ["protocol", None, None, "Protocol generations: 1 (draft-08), 0 (draft-07) or both (default).", _protocol],
        ["history-size", None, None, "Updates kept for Last-Event-ID (default: 1000).", _count],
        ["max-connections", None, None, "Max concurrent subscriptions, 0: the open-file limit less 128 (default: 0).", _count],
        ["max-connections-per-client", None, None, "Max concurrent subscriptions per client address, 0: no bound (default: 0).", _count],
        ["history-max-age", None, None, "Seconds an update stays in history, 0: no age limit (default: 0).", _seconds],
        ["metrics-listen", None, None, "Endpoint serving /metrics (and the health checks) apart from --listen, e.g. tcp:9100:interface=127.0.0.1 (default: /metrics on --listen)."],
        ["log-format", None, None, "Log output: text (default) or json (one object per line).", _log_format],
        ["log-level", None, None, "Lowest level logged: debug, info (default), warn, error, critical.", _log_level],
        ["shutdown-timeout", None, None, "Seconds SIGTERM waits for streams and connections to close before aborting them, 0: no bound (default: 10).", _seconds],
        ["transport", None, None, "Transport URL: sqlite:///path.db (default: DATA_DIR/mercure.db), redis://host:6379/0 or memory://."],
        ["data-dir", None, None, "Directory of the hub's files (default: $STATE_DIRECTORY or ~/.local/share/mercure-twisted)."],
        ["websub-public-url", None, None, "Base URL under which WebSub hubs reach the bridge's callbacks (enables the WebSub bridge), e.g. https://hub.example.com."],
    ]

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._environ = os.environ if environ is None else environ
        self._listen: list[str] = []
        self._websub_networks: list[str] = []
        self["hub_config"] = None
        self["bridge_config"] = None

    def opt_listen(self, endpoint: str) -> None:
        """Listening endpoint, repeatable (default: tcp:3000), e.g. tcp:3000:interface=127.0.0.1 or ssl:443:privateKey=key.pem:certKey=cert.pem."""
        self._listen.append(endpoint)

    def opt_websub_allow_network(self, cidr: str) -> None:
        """Network (CIDR) the WebSub bridge may connect to although it is private or special-use, repeatable, e.g. 10.0.0.0/8 or 127.0.0.0/8."""
        self._websub_networks.append(cidr)

    def postOptions(self) -> None:
        flags: dict[str, Any] = {}
        if self._listen:
            flags["listen"] = tuple(self._listen)
        if self._websub_networks:
            flags["websub_allow_networks"] = tuple(self._websub_networks)
        for name in ("anonymous", "subscriptions", "dev"):
            if self[name]:
                flags[name] = True
        for parameter in self.optParameters:
            name = parameter[0]
            if name != "config" and self[name] is not None:
                flags[name.replace("-", "_")] = self[name]
        try:
            self["hub_config"] = load_config(
                flags=flags, environ=self._environ, toml_path=self["config"]
            )
            config = self["hub_config"]
            if config.websub_public_url is not None or config.websub or config.websub_allow_networks:
                # The optional bridge validates its own settings, here, so
                # that one that cannot work stops the start with one line.
                from websub_bridge.config import bridge_config

                self["bridge_config"] = bridge_config(config)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None

    @property
    def hub_config(self) -> HubConfig:
        config = self["hub_config"]
        assert isinstance(config, HubConfig), "postOptions has not run"
        return config


def _segments(description: str) -> list[str]:
    """The ``:``-separated segments of an endpoint description, unescaped.

    Same grammar as `twisted.internet.endpoints.serverFromString`: a
    backslash escapes the next character (``\\:`` is a colon in a value).
    """
    segments: list[str] = []
    current: list[str] = []
    chars = iter(description)
    for c in chars:
        if c == "\\":
            current.append(next(chars, ""))
        elif c == ":":
            segments.append("".join(current))
            current = []
        else:
            current.append(c)
    segments.append("".join(current))
    return segments


def with_backlog(description: str, backlog: int = DEFAULT_BACKLOG) -> str:
    """``description`` with ``backlog=`` added to a tcp/tcp6/ssl endpoint that has none.

    A bare port (``3000``, ``3000:interface=::1``) becomes ``tcp:3000...``,
    the type modern Twisted no longer infers.  Other endpoint types (unix,
    systemd, plugins) are returned as they are.
    """
    segments = _segments(description)
    kind = segments[0]
    if kind.isdigit():
        description = "tcp:" + description
        segments.insert(0, "tcp")
    elif kind not in _BACKLOG_TYPES:
        return description
    if any(s.partition("=")[0] == "backlog" for s in segments[1:] if "=" in s):
        return description
    return f"{description}:backlog={backlog}"


def _safe_url(url: str) -> str:
    """``url`` without a password, for the log (redis://:secret@host)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = (parts.username or "") + ":***@" + parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable URL>"


class _Startup:
    """What ``makeService`` does before building the tree, with its log."""

    log = Logger()

    def raise_nofile_limit(self) -> tuple[int, int]:
        try:
            import resource
        except ImportError:  # not a Unix
            return (-1, -1)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == hard:
            self.log.info("open files limit {soft} (already the hard limit)", soft=soft)
            return (soft, soft)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            self.log.warn(
                "cannot raise the open files limit from {soft} to {hard}: {error}",
                soft=soft, hard=hard, error=str(e),
            )
            return (soft, soft)
        after = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.log.info("open files limit raised from {soft} to {after} (hard limit {hard})",
                      soft=soft, after=after, hard=hard)
        return (soft, after)
    def log_config(self, config: HubConfig) -> None:
        # Never key values: only which roles have keys, and how many.
        self.log.info(
            "mercure hub: protocol {protocol}, transport {transport}, "
            "{publisher} publisher key(s), {subscriber} subscriber key(s), "
            "anonymous={anonymous}, listening on {listen}",
            protocol=config.protocol,
            transport=_safe_url(config.transport),
            publisher=len(config.keys_for("publisher")),
            subscriber=len(config.keys_for("subscriber")),
            anonymous=config.anonymous,
            listen=", ".join(config.listen),
        )
        if config.dev:
            self.log.warn(
                "--dev: tokens signed with the well-known development secret are "
                "accepted; never run --dev in production"
            )
        if not config.keys_for("publisher"):
            self.log.warn(
                "no publisher key configured: every publish will be refused with 401 "
                "(set --publisher-jwt-key, --publisher-jwks-url or publisher_jwt_key)"
            )




def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return (before, after).

    Every subscriber holds a socket open, so the usual soft limit of 1024
    caps a hub at about a thousand subscribers.  Where the limit cannot be
    raised (no ``resource`` module: (-1, -1); an unlimited hard limit the
    kernel refuses) the soft limit stays and a warning is logged.
    """
    return _Startup().raise_nofile_limit()


def makeService(options: Options, reactor: Any = None) -> MultiService:
    """The service tree of ``twistd mercure``: hub service, then one listener per endpoint."""
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    # Late import: keeps `twistd --help` and option parsing independent of
    # the web application's imports.
    from .app import build_application
    from .logs import log_observer_for
    from .shutdown import HubTree
    from .tls import listen
    from .web import _flush

    config = options.hub_config
    startup = _Startup()
    startup.raise_nofile_limit()
    startup.log_config(config)

    try:
        site, hub_service = build_application(config, reactor)
    except ConfigError as e:
        # A transport that cannot open (a locked, corrupted or foreign SQLite
        # file, a bad Redis URL) stops the start with one line, no traceback.
        raise SystemExit(f"twistd mercure: {e}") from None
    bridge = options["bridge_config"] if "bridge_config" in options else None
    # Bounded graceful stop (shutdown.py); the JSON log observer, if asked,
    # is handed to twistd through the tree (the parent is twistd's options).
    top = HubTree(
        reactor, (site.connections,), config.shutdown_timeout,
        log_observer_for(config.log_format, getattr(options, "parent", None), config.log_level),
    )
    hub_service.setServiceParent(top)
    if bridge is not None:
        # The WebSub bridge: mounted under /websub, started after the hub
        # and stopped before it (after the listeners).
        from websub_bridge.service import attach_bridge

        attach_bridge(
            bridge, config, site.resource, hub_service.hub, reactor, hub_service.metrics
        ).setServiceParent(top)
    listeners: list[tuple[str, Any]] = [(with_backlog(e), site) for e in config.listen]
    if config.metrics_listen is not None and hub_service.metrics_site is not None:
        listeners.append((with_backlog(config.metrics_listen), hub_service.metrics_site))
    # The answers and events written in a reactor pass leave at its end.
    _flush.install()
    # ssl: endpoints get HTTP/2 through ALPN and certificates reloaded on SIGHUP.
    try:
        listen(top, listeners, reactor)
    except ConfigError as e:  # a certificate or key that cannot be loaded
        raise SystemExit(f"twistd mercure: {e}") from None
    reactor.addSystemEventTrigger("after", "shutdown", _report_clean_stop, reactor)
    return top


def _report_clean_stop(reactor: Any) -> None:
    """Exit 0 after a SIGTERM/SIGINT that was handled by draining.

    twistd re-raises the stopping signal against itself once the reactor
    has stopped, so that the process looks killed (status 143).  By the time
    this runs every stream has ended and the hub has flushed: the stop was
    clean, and supervisors and container runtimes should see it as such.
    """
    if getattr(reactor, "_exitSignal", None) is not None:
        reactor._exitSignal = None
