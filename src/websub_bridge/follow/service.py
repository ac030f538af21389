"""The follow role as a Twisted service, and its wiring inside ``twistd mercure``."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from mercure_twisted.config import HubConfig
from mercure_twisted.hub import Hub
from mercure_twisted.web import HubResource

from ..client import OutboundClient
from ..config import BridgeConfig
from ..guard import AddressPolicy
from ..port import IHubPort, InProcessPort
from ..store import Store
from ._machine import Follower
from ._web import BridgeResource

__all__ = ["FollowService", "attach_follow", "build_follow"]


class FollowService(Service):
    """Starts the follows with the process; on stop, cancels the timers and
    closes the outbound connections and the store.  Subscriptions are not
    ended on stop: they are resumed at the next start."""

    log = Logger()

    def __init__(self, follower: Follower, store: Store, client: OutboundClient) -> None:
        self.follower = follower
        self.store = store
        self.client = client
        self._started: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()
        self._started = Deferred.fromCoroutine(self.follower.start())
        self._started.addErrback(lambda f: self.log.failure("the WebSub bridge failed to start", f))

    async def _stop(self) -> None:
        if self._started is not None:
            await self._started
        self.follower.stop()
        await self.client.close()
        await self.store.close()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self._stop())


def build_follow(
    config: BridgeConfig, *, reactor: Any, port: IHubPort, data_dir: str, store: Store | None = None,
    client: OutboundClient | None = None,
) -> tuple[BridgeResource, FollowService]:
    """The ``/websub`` resource and the service of the follow role."""
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
    resource = BridgeResource(follower, port, max_body_size=config.max_body_size)
    return resource, FollowService(follower, store, client)


def attach_follow(
    config: BridgeConfig, hub_config: HubConfig, root: HubResource, hub: Hub, reactor: Any
) -> FollowService:
    """Wire the follow role into ``twistd mercure``: the in-process port over
    this hub and its token verifier, ``/websub`` mounted on the hub's root
    resource.  Returns the service to start after the hub's."""
    web = root.web
    fallback = hub_config.public_url or "http://localhost" + hub_config.hub_path

    def hub_url(request: IRequest | None) -> str:
        return web.hub_url(request) if request is not None else fallback

    port = InProcessPort(hub, web.verifier, hub_url)
    resource, service = build_follow(config, reactor=reactor, port=port, data_dir=hub_config.data_dir)
    root.mount("/websub", resource, capability_prefixes=("/websub/callback",))
    return service
