"""The bridge as one Twisted service: both roles over one store and one client.

`build_bridge` assembles the follow role and, when ``[websub.hub]`` is
configured, the hub role, over any `IHubPort`; `attach_bridge` wires that
into ``twistd mercure`` (the in-process port, the resources mounted on the
hub's root).  The standalone ``twistd websub-bridge`` calls `build_bridge`
with its HTTP port: the two modes share everything but the port.

The roles share the bridge's SQLite file and its outbound client (one
guard, one connection pool); the service opens the file (migrating its
schema) before either role starts, and closes both after both stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from .client import OutboundClient
from .config import BridgeConfig
from .follow._machine import Follower
from .follow._web import BridgeResource
from .guard import AddressPolicy
from .hub._sqlite_store import SQLiteHubStore
from .hub._store import HubStore, HubStoreUnavailable
from .hub.role import HubRole
from .port import IHubPort, InProcessPort
from .store import Store

if TYPE_CHECKING:
    from mercure_twisted.config import HubConfig
    from mercure_twisted.hub import Hub
    from mercure_twisted.metrics import HubMetrics
    from mercure_twisted.web import HubResource

__all__ = ["BridgeService", "attach_bridge", "build_bridge", "CAPABILITY_PREFIXES"]

#: Paths whose next segment is a secret (never logged).
CAPABILITY_PREFIXES = ("/websub/callback",)


class BridgeService(Service):
    """Starts the roles with the process; on stop, ends their work and
    closes the connections and the store.  Follows and WebSub subscriptions
    are not ended on stop: they resume at the next start."""

    log = Logger()

    def __init__(
        self,
        *,
        follower: Follower,
        hub_role: HubRole | None,
        store: Store,
        hub_store: HubStore | None,
        client: OutboundClient,
    ) -> None:
        self.follower = follower
        self.hub_role = hub_role
        self.store = store
        self.hub_store = hub_store
        self.client = client
        self._started: Deferred[None] | None = None

    async def _start(self) -> None:
        await self.store.migrate()
        await self.follower.start()
        if self.hub_store is not None:
            try:
                await self.hub_store.start()
            except HubStoreUnavailable as e:
                self.log.warn(
                    "websub hub: its store is not reachable yet ({error}); requests get 503 "
                    "and deliveries wait until it is",
                    error=str(e),
                )
        if self.hub_role is not None:
            await self.hub_role.start()

    def startService(self) -> None:
        super().startService()
        self._started = Deferred.fromCoroutine(self._start())
        self._started.addErrback(lambda f: self.log.failure("the WebSub bridge failed to start", f))

    async def _stop(self) -> None:
        if self._started is not None:
            await self._started
        if self.hub_role is not None:
            await self.hub_role.stop()
        self.follower.stop()
        await self.client.close()
        if self.hub_store is not None:
            await self.hub_store.close()
        await self.store.close()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self._stop())


def build_bridge(
    config: BridgeConfig,
    *,
    reactor: Any,
    port: IHubPort,
    data_dir: str,
    store: Store | None = None,
    client: OutboundClient | None = None,
    hub_store: HubStore | None = None,
    metrics: HubMetrics | None = None,
) -> tuple[dict[str, IResource], BridgeService]:
    """The resources to mount (by path prefix) and the service of the bridge.

    ``hub_store`` is the hub role's store when it is not the bridge's
    SQLite file (the Redis one of a cluster); ignored without ``[websub.hub]``.
    """
    if store is None:
        store = Store.in_data_dir(data_dir, reactor, max_seen_entries=config.max_seen_entries)
    if client is None:
        client = OutboundClient(
            reactor,
            AddressPolicy(allowed_networks=config.allow_networks),
            timeout=config.request_timeout,
            max_body=max(config.max_body_size, 1024 * 1024),
        )
    follower = Follower(store=store, client=client, port=port, clock=reactor, config=config)
    resources: dict[str, IResource] = {
        "/websub": BridgeResource(follower, port, max_body_size=config.max_body_size)
    }
    hub_role: HubRole | None = None
    if config.hub is not None:
        if hub_store is None:
            hub_store = SQLiteHubStore(store)
        hub_role = HubRole(
            config=config.hub, public_url=config.public_url, port=port, store=hub_store,
            cursors=store, client=client, clock=reactor, max_body=config.max_body_size,
            verify_timeout=config.request_timeout, metrics=metrics,
        )
        resources["/websub/hub"] = hub_role.resource
    else:
        hub_store = None
    service = BridgeService(
        follower=follower, hub_role=hub_role, store=store, hub_store=hub_store, client=client
    )
    return resources, service


def attach_bridge(
    config: BridgeConfig,
    hub_config: HubConfig,
    root: HubResource,
    hub: Hub,
    reactor: Any,
    metrics: HubMetrics | None = None,
) -> BridgeService:
    """Wire the bridge into ``twistd mercure``: the in-process port over this
    hub and its token verifier, the resources mounted on the hub's root.
    Returns the service to start after the hub's."""
    web = root.web
    fallback = hub_config.public_url or "http://localhost" + hub_config.hub_path

    def hub_url(request: IRequest | None) -> str:
        return web.hub_url(request) if request is not None else fallback

    port = InProcessPort(hub, web.verifier, hub_url)
    resources, service = build_bridge(
        config, reactor=reactor, port=port, data_dir=hub_config.data_dir,
        hub_store=_cluster_hub_store(config, hub_config, reactor), metrics=metrics,
    )
    for prefix, resource in resources.items():
        root.mount(prefix, resource, capability_prefixes=CAPABILITY_PREFIXES)
    return service


def _cluster_hub_store(config: BridgeConfig, hub_config: HubConfig, reactor: Any) -> HubStore | None:
    """The hub role's store shared by a cluster: in the Redis of the hub's
    transport when it is Redis (None: the bridge's own SQLite file)."""
    if config.hub is None or not hub_config.transport.startswith(("redis://", "rediss://")):
        return None
    from .hub._redis_store import RedisHubStore

    return RedisHubStore.from_url(hub_config.transport, reactor)
