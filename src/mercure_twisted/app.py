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
from .logs import StreamLog
from .metrics import HubMetrics
from .subscriber import Subscriber
from .transports import transport_from_url
from .update import Update
from .web import HubResource, HubSite, HubWeb
from .web._health import Health, OperationsResource, OperationsSite

__all__ = ["HubService", "build_application"]


class HubService(Service):
    """Starts the hub with the process and drains it on stop."""

    log = Logger()

    def __init__(
        self, hub: Hub, metrics: HubMetrics | None = None, metrics_site: Site | None = None
    ) -> None:
        self.hub = hub
        self.metrics = metrics
        #: The Site of ``metrics_listen`` (None: /metrics is on the main site).
        self.metrics_site = metrics_site

    def startService(self) -> None:
        super().startService()
        self.hub.start().addErrback(
            lambda f: self.log.failure("the hub failed to start", f)
        )

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.hub.stop()


def build_application(config: HubConfig, reactor: Any) -> tuple[HubSite, HubService]:
    transport = transport_from_url(config, reactor)
    metrics = HubMetrics(transport=transport)

    def subscription_events(subscriber: Subscriber, active: bool) -> list[Update]:
        dialect = DRAFT08 if subscriber.dialect == "08" else DRAFT07
        return dialect.subscription_events(subscriber, active, config.hub_path)

    hub = Hub(
        transport=transport,
        clock=reactor,
        heartbeat=config.heartbeat,
        write_timeout=config.write_timeout,
        subscription_events=subscription_events if config.subscriptions else None,
        observers=(metrics, StreamLog(reactor)),
    )
    verifier = TokenVerifier(config, reactor=reactor, http_client=cast(HTTPClient, treq))
    web = HubWeb(hub, config, verifier, reactor)
    health = Health(hub, reactor, metrics)
    separate = config.metrics_listen is not None
    operations = OperationsResource(health, None if separate else metrics)
    site = HubSite(
        HubResource(web, operations, metrics), max_body_size=config.max_body_size, reactor=reactor
    )
    metrics_site = (
        OperationsSite(OperationsResource(health, metrics), reactor=reactor) if separate else None
    )
    return site, HubService(hub, metrics, metrics_site)
