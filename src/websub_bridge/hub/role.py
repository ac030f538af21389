"""The WebSub hub role, assembled: endpoint, subscriptions, intake, worker.

One `HubRole` per process.  It is the same inside ``twistd mercure`` (an
in-process port that watches every topic at once) and in the standalone
bridge (an HTTP port that opens one SSE stream per topic): where the port
cannot watch all topics, the role watches the concrete topics that have
subscribers, re-read from the store every ``TOPICS_REFRESH`` seconds and
at once after a verified subscription, so a topic's stream opens as soon
as it has its first subscriber and closes once its last lease ends.  The
same refresh keeps the intake's set of subscribed topics current.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..client import OutboundClient
from ..port import IHubPort
from ..store import Store
from ._config import HubRoleConfig
from ._distribute import Distributor
from ._intake import ALL_TOPICS, Intake
from ._pings import Pings
from ._store import HubStore
from ._subscriptions import Subscriptions
from ._web import HubEndpoint

if TYPE_CHECKING:
    from mercure_twisted.metrics import HubMetrics

__all__ = ["HubRole", "hub_endpoint_url"]


def hub_endpoint_url(public_url: str) -> str:
    """The hub URL subscribers are given (and the ``rel="hub"`` of every
    delivery): ``<public_url>/websub/hub``, exactly."""
    return public_url.rstrip("/") + "/websub/hub"


class HubRole:
    """Everything the hub role runs, started and stopped as one."""

    log = Logger()
    TOPICS_REFRESH = 30.0

    def __init__(
        self,
        *,
        config: HubRoleConfig,
        public_url: str,
        port: IHubPort,
        store: HubStore,
        cursors: Store,
        client: OutboundClient,
        clock: IReactorTime,
        max_body: int,
        verify_timeout: float = 10.0,
        metrics: HubMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.url = hub_endpoint_url(public_url)
        self._port = port
        self._clock = clock
        self.distributor = Distributor(
            store=store, client=client, config=config, clock=clock, hub_url=self.url,
            metrics=metrics, rng=rng,
        )
        self.intake = Intake(
            port=port, store=store, cursors=cursors, config=config, clock=clock,
            on_queued=self.distributor.wake,
        )
        self.subscriptions = Subscriptions(
            store=store, client=client, config=config, clock=clock,
            verify_timeout=verify_timeout, on_subscribed=self._subscribed,
        )
        self.pings = Pings(client=client, port=port, max_body=max_body)
        self.resource = HubEndpoint(
            subscriptions=self.subscriptions, pings=self.pings, port=port, config=config
        )
        self._refresher: LoopingCall | None = None

    async def start(self) -> None:
        self.distributor.start()
        await self.intake.refresh_subscribed()
        if self._port.watches_all:
            await self.intake.watch(ALL_TOPICS)
        self._refresher = LoopingCall(lambda: Deferred.fromCoroutine(self.refresh_topics()))
        self._refresher.clock = self._clock
        self._refresher.start(self.TOPICS_REFRESH, now=not self._port.watches_all).addErrback(
            lambda f: self.log.failure("websub hub: the topic refresh failed", f)
        )
        self.log.info("websub hub: serving {url}", url=self.url)

    async def refresh_topics(self) -> None:
        """Re-read the subscribed topics; where the port watches topic by
        topic, watch exactly those."""
        wanted = await self.intake.refresh_subscribed()
        if self._port.watches_all or wanted is None:
            return
        for name in self.intake.watched - wanted:
            self.intake.unwatch(name)
        for name in sorted(wanted - self.intake.watched):
            await self.intake.watch(name)

    def _subscribed(self, topic: str) -> None:
        self.intake.subscribed(topic)
        if not self._port.watches_all and topic not in self.intake.watched:
            d = Deferred.fromCoroutine(self.intake.watch(topic))
            d.addErrback(lambda f: self.log.failure("websub hub: watching {topic} failed", f, topic=topic))

    async def stop(self) -> None:
        if self._refresher is not None and self._refresher.running:
            self._refresher.stop()
        await self.intake.stop()
        self.subscriptions.stop()
        self.pings.stop()
        await self.distributor.stop()
