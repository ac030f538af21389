"""``hub.mode=publish`` pings: fetch the topic, publish its content to Mercure.

WebSub leaves the publisher-to-hub protocol open (section 6); the common
one is a form with ``hub.mode=publish`` and the changed URLs.  Such a ping
is a "thin" notification: the hub fetches the topic itself, through the
outbound guard like every URL given to it, and publishes the body as a
Mercure update on that topic, which the intake then delivers to the
topic's WebSub subscribers like any other update.

Pings for the same URL while its fetch is running are folded into one
more fetch after it: a burst of pings costs at most two fetches, and the
last content is always published.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from .._media import decode_text
from ..client import OutboundClient, OutboundError, loggable_url
from ..guard import GuardError
from ..port import HubUnavailable, IHubPort

__all__ = ["Pings"]


class Pings:
    """Fetches pinged topics and publishes what they hold."""

    log = Logger()

    def __init__(self, *, client: OutboundClient, port: IHubPort, max_body: int) -> None:
        self._client = client
        self._port = port
        self._max_body = max_body
        self._running: dict[str, bool] = {}  # url -> pinged again meanwhile
        self._pending: set[Deferred[None]] = set()

    def ping(self, url: str) -> None:
        """Fetch and publish ``url`` soon (the caller answered 204 already)."""
        if url in self._running:
            self._running[url] = True
            return
        self._running[url] = False
        d = Deferred.fromCoroutine(self._refresh(url))
        self._pending.add(d)
        d.addErrback(self._failed, url)
        d.addBoth(lambda _: self._pending.discard(d))

    def _failed(self, failure: Failure, url: str) -> None:
        self.log.failure("websub hub: publishing {url} failed", failure, url=loggable_url(url))

    async def _refresh(self, url: str) -> None:
        try:
            while True:
                self._running[url] = False
                await self._publish(url)
                if not self._running[url]:
                    return
        finally:
            del self._running[url]

    async def _publish(self, url: str) -> None:
        where = loggable_url(url)
        try:
            response = await self._client.request("GET", url, max_body=self._max_body)
        except (OutboundError, GuardError) as e:
            self.log.warn("websub hub: could not fetch pinged {url}: {error}", url=where, error=str(e))
            return
        if not 200 <= response.status < 300:
            self.log.warn(
                "websub hub: pinged {url} answered {status}; nothing published",
                url=where, status=response.status,
            )
            return
        data = decode_text(response.body, response.header("content-type"))
        if data is None:
            self.log.warn(
                "websub hub: pinged {url} is not text in its declared charset; nothing published",
                url=where,
            )
            return
        try:
            update_id = await self._port.publish([url], data)
        except HubUnavailable as e:
            self.log.warn(
                "websub hub: could not publish pinged {url} ({error})", url=where, error=str(e)
            )
            return
        self.log.info("websub hub: published pinged {url} as {id}", url=where, id=update_id)

    def stop(self) -> None:
        for d in list(self._pending):
            d.cancel()
