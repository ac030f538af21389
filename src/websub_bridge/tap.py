"""``twistd websub-bridge``: both bridge roles against any Mercure hub over HTTP.

The same bridge as inside ``twistd mercure`` (`websub_bridge.service`),
with `websub_bridge.http_port.HttpHubPort` as its port: it publishes to the
Mercure hub with a publisher token and reads it over SSE, one stream per
subscribed topic, resuming each with ``Last-Event-ID`` after a cut.  It
serves ``/websub/...`` (the follow role's callbacks and API, the hub
role's ``/websub/hub``) and ``/healthz`` on its own listener.

Settings are read like the hub's (`mercure_twisted.config.load_config`:
defaults < TOML < environment < flags), so one TOML file format serves
both daemons: ``listen``, ``data_dir``, ``log_format``, ``log_level``, the
publisher keys (``publisher_jwt_key``, JWKS, issuers: what checks the
tokens of the bridge's own API callers and publish pings) and ``[websub]``,
plus ``[websub.mercure]`` (`websub_bridge.upstream`).  The hub's own
settings (heartbeat, history, CORS and the like) mean nothing here and are
refused, so a file written for the hub is not half-applied silently.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

import attrs
from twisted.application.service import MultiService, Service
from twisted.python import usage
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from mercure_twisted.config import ConfigError, HubConfig

from .config import BridgeConfig, bridge_config
from .upstream import UpstreamConfig, upstream_config

__all__ = ["BridgeRoot", "Options", "makeService"]

DEFAULT_LISTEN = "tcp:8090"
#: HubConfig settings the standalone bridge reads; any other one given is refused.
_USED = frozenset(
    {
        "listen", "data_dir", "log_format", "log_level", "shutdown_timeout", "max_body_size",
        "keys", "issuers", "websub_public_url", "websub_allow_networks", "websub",
        "transport",  # set by the loader's default, never opened here
    }
)


class Options(usage.Options):
    """The flags of ``twistd websub-bridge``."""

    synopsis = "[options]"
    longdesc = (
        "The WebSub bridge on its own, against any Mercure hub over HTTP. Settings come "
        "from, in increasing precedence: defaults, the --config TOML file, the environment "
        "(WEBSUB_BRIDGE_PUBLISHER_TOKEN, WEBSUB_BRIDGE_SUBSCRIBER_TOKEN, MERCURE_* keys), "
        "these flags."
    )
    optParameters: list[list[Any]] = [
        ["config", "c", None, "TOML configuration file ([websub], [websub.mercure], ...)."],
        ["mercure-url", None, None, "The Mercure hub, e.g. http://127.0.0.1:3000/.well-known/mercure."],
        ["websub-public-url", None, None, "Base URL under which WebSub peers reach this bridge, e.g. https://bridge.example.com."],
        ["publisher-jwt-key", None, None, "Key checking the publisher tokens of the bridge's API callers (or @FILE)."],
        ["publisher-jwt-alg", None, None, "Its algorithm (default: HS256)."],
        ["data-dir", None, None, "Directory of websub.db (default: $STATE_DIRECTORY or ~/.local/share/mercure-twisted/websub-bridge)."],
        ["log-format", None, None, "Log output: text (default) or json."],
        ["log-level", None, None, "Lowest level logged (default: info)."],
    ]

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._environ = os.environ if environ is None else environ
        self._listen: list[str] = []
        self._networks: list[str] = []
        self["hub_config"] = None

    def opt_listen(self, endpoint: str) -> None:
        """Listening endpoint, repeatable (default: tcp:8090)."""
        self._listen.append(endpoint)

    def opt_websub_allow_network(self, cidr: str) -> None:
        """Network (CIDR) the bridge may connect to although it is private, repeatable."""
        self._networks.append(cidr)

    def postOptions(self) -> None:
        from mercure_twisted._configload import default_data_dir
        from mercure_twisted.config import load_config

        flags: dict[str, Any] = {}
        if self._listen:
            flags["listen"] = tuple(self._listen)
        if self._networks:
            flags["websub_allow_networks"] = tuple(self._networks)
        for name in ("websub-public-url", "publisher-jwt-key", "publisher-jwt-alg", "data-dir",
                     "log-format", "log-level"):
            if self[name] is not None:
                flags[name.replace("-", "_")] = self[name]
        try:
            config = load_config(flags=flags, environ=self._environ, toml_path=self["config"])
            _refuse_hub_settings(config)
            if "listen" not in flags and config.listen == HubConfig().listen:
                config = _evolve(config, listen=(DEFAULT_LISTEN,))
            if self["data-dir"] is None and config.data_dir == os.path.abspath(
                os.path.expanduser(default_data_dir(self._environ))
            ):
                # Beside a hub on the same machine, never in its websub.db.
                config = _evolve(config, data_dir=os.path.join(config.data_dir, "websub-bridge"))
            bridge = bridge_config(config, standalone=True)
            if bridge is None:
                raise ConfigError(
                    "the bridge needs its public URL: set --websub-public-url "
                    "(TOML: [websub] public_url)"
                )
            upstream = upstream_config(
                config.websub.get("mercure"), self._environ, url=self["mercure-url"]
            )
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        self["hub_config"] = config
        self["bridge_config"] = bridge
        self["upstream"] = upstream


def _evolve(config: HubConfig, **changes: Any) -> HubConfig:
    return attrs.evolve(config, **changes)


def _refuse_hub_settings(config: HubConfig) -> None:
    """A setting of the hub itself given to the bridge is a mistake to say."""
    defaults = HubConfig()
    for field in attrs.fields(HubConfig):
        if field.name in _USED or not field.eq:
            continue
        if getattr(config, field.name) != getattr(defaults, field.name):
            raise ConfigError(
                f"{field.name} is a setting of the Mercure hub, not of twistd websub-bridge"
            )


class BridgeRoot(Resource):
    """The standalone bridge's root: the bridge's resources by longest path
    prefix, ``/healthz``, and 404 for everything else."""

    isLeaf = True

    def __init__(self, resources: Mapping[str, IResource]) -> None:
        # Late import, as in makeService: option parsing stays free of the
        # hub's web application.
        from mercure_twisted.web._root import mounted_at

        super().__init__()
        self._resources = {prefix.encode("ascii"): r for prefix, r in resources.items()}
        self._mounted_at = mounted_at

    def render(self, request: IRequest) -> Any:
        path = request.path
        found = self._mounted_at(self._resources, path)
        if found is not None:
            return found.render(request)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        if path == b"/healthz":
            return b"ok\n"
        request.setResponseCode(404)
        return b"no such resource: the bridge serves /websub/...\n"


def makeService(options: Options, reactor: Any = None) -> MultiService:
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    import treq

    from mercure_twisted.auth import TokenVerifier
    from mercure_twisted.logs import log_observer_for, register_capability_prefix
    from mercure_twisted.shutdown import HubTree
    from mercure_twisted.tls import listen
    from mercure_twisted.web import HubSite

    from .http_port import HttpHubPort
    from .service import CAPABILITY_PREFIXES, build_bridge

    config: HubConfig = options["hub_config"]
    bridge: BridgeConfig = options["bridge_config"]
    upstream: UpstreamConfig = options["upstream"]
    os.makedirs(config.data_dir, exist_ok=True)
    verifier = TokenVerifier(config, reactor=reactor, http_client=cast(Any, treq))
    port = HttpHubPort(
        upstream.url,
        publisher_token=upstream.publisher_token,
        subscriber_token=upstream.subscriber_token,
        verifier=verifier,
        reactor=reactor,
        backoff_cap=upstream.reconnect_max_seconds,
    )
    resources, service = build_bridge(bridge, reactor=reactor, port=port, data_dir=config.data_dir)
    for prefix in CAPABILITY_PREFIXES:
        register_capability_prefix(prefix)
    site = HubSite(BridgeRoot(resources), max_body_size=config.max_body_size, reactor=reactor)
    top = HubTree(
        reactor, (site.connections,), config.shutdown_timeout,
        log_observer_for(config.log_format, getattr(options, "parent", None), config.log_level),
    )
    # A service tree stops in reverse order: the port closes after the bridge.
    _PortCloser(port).setServiceParent(top)
    service.setServiceParent(top)
    try:
        listen(top, [(endpoint, site) for endpoint in config.listen], reactor)
    except ConfigError as e:
        raise SystemExit(f"twistd websub-bridge: {e}") from None
    return top


class _PortCloser(Service):
    """Closes the HTTP port (its streams and connection pool) at stop."""

    def __init__(self, port: Any) -> None:
        self._port = port

    def stopService(self) -> Any:
        super().stopService()
        return self._port.close()
