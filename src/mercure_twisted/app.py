"""Wiring: from a validated ``HubConfig`` to a Site and the hub's service."""

from __future__ import annotations

from typing import Any, cast

import treq
from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.server import Site

from .auth import HTTPClient, TokenVerifier
from .config import HubConfig
from .dialects import DRAFT07, DRAFT08
from .hub import Hub
from .subscriber import Subscriber
from .transports import transport_from_url
from .update import Update
from .web import HubResource, HubSite, HubWeb

__all__ = ["HubService", "build_application"]


class HubService(Service):
    """Starts the hub with the process and drains it on stop."""

    log = Logger()

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def startService(self) -> None:
        super().startService()
        self.hub.start().addErrback(
            lambda f: self.log.failure("the hub failed to start", f)
        )

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.hub.stop()


def build_application(config: HubConfig, reactor: Any) -> tuple[Site, IService]:
    transport = transport_from_url(config, reactor)

    def subscription_events(subscriber: Subscriber, active: bool) -> list[Update]:
        dialect = DRAFT08 if subscriber.dialect == "08" else DRAFT07
        return dialect.subscription_events(subscriber, active, config.hub_path)

    hub = Hub(
        transport=transport,
        clock=reactor,
        heartbeat=config.heartbeat,
        write_timeout=config.write_timeout,
        subscription_events=subscription_events if config.subscriptions else None,
    )
    verifier = TokenVerifier(config, reactor=reactor, http_client=cast(HTTPClient, treq))
    web = HubWeb(hub, config, verifier, reactor)
    site = HubSite(HubResource(web), max_body_size=config.max_body_size, reactor=reactor)
    return site, HubService(hub)
