"""Content distribution on our callbacks (WebSub section 7).

A delivery is identified by its callback's token alone, never by its
``Link`` headers (which describe the topic, not the subscription).  With a
secret, the ``X-Hub-Signature`` HMAC is checked over the raw body before
anything else; then the content is published through the hub port, as one
update (``mode = "document"``) or one per feed entry not seen before
(``mode = "entries"``, seen ids kept in the store once published, so that
a hub retrying after a failure loses nothing and a restart repeats nothing).
"""

from __future__ import annotations

import attrs
from twisted.internet.defer import DeferredLock
from twisted.logger import Logger

from .._media import decode_text
from ..client import loggable_url as _u
from ..feeds import FeedError, parse_entries
from ..port import HubUnavailable, IHubPort, mercure_id
from ..signature import ALGORITHMS, SignatureCheck, verify
from ..store import Follow, Store

__all__ = ["Answer", "Deliveries"]


@attrs.frozen
class Answer:
    """What a callback request is answered: status and plain-text body."""

    status: int
    body: str
    #: The challenge is echoed exactly, without the newline of a message.
    exact: bool = False


class Deliveries:
    """Checks and publishes what hubs POST on our callbacks."""

    log = Logger()

    def __init__(self, store: Store, port: IHubPort) -> None:
        self._store = store
        self._port = port
        # One delivery at a time per follow: the seen-entries check and its
        # update must not interleave with another delivery's.
        self._locks: dict[int, DeferredLock] = {}

    async def deliver(
        self,
        token: str,
        body: bytes,
        *,
        content_type: str | None,
        signature: str | None,
    ) -> Answer:
        """A hub's POST on a callback: content distribution (section 7)."""
        callback = await self._store.callback(token)
        if callback is None:
            return Answer(404, "no subscription has this callback")
        if callback.mode == "unsubscribe":
            return Answer(410, "this subscription has ended")
        if callback.status != "active":
            return Answer(404, "this subscription has not been verified")
        follow = await self._store.follow(callback.follow_id)
        if follow is None or follow.state in ("denied", "unsubscribing"):
            return Answer(410, "this subscription has ended")
        if callback.secret is not None:
            check = verify(signature, callback.secret.encode("utf-8"), body)
            if check is SignatureCheck.MISSING:
                return Answer(403, "X-Hub-Signature is missing: this subscription was made with a secret")
            if check is SignatureCheck.UNSUPPORTED:
                return Answer(400, "X-Hub-Signature: use one of " + ", ".join(ALGORITHMS))
            if check is not SignatureCheck.VALID:
                # Section 7.1.2: ignored, yet acknowledged (no oracle for forgers).
                self.log.warn("a delivery for {topic} failed its signature check: ignored", topic=_u(follow.topic))
                return Answer(202, "accepted")
        lock = self._locks.setdefault(follow.id, DeferredLock())
        await lock.acquire()
        try:
            return await self._publish(follow, body, content_type)
        finally:
            lock.release()

    async def _publish(self, follow: Follow, body: bytes, content_type: str | None) -> Answer:
        topic = follow.target_topic
        try:
            if follow.mode == "entries":
                try:
                    entries = parse_entries(body, content_type, base=follow.self_url or follow.topic)
                except FeedError as e:
                    return Answer(400, f"not a feed this bridge can split into entries: {e}")
                ids = [entry.id for entry in entries]
                fresh = set(await self._store.unseen(follow.id, ids))
                published: list[str] = []
                # Feeds list the newest first: publish the oldest first.
                for entry in reversed(entries):
                    if entry.id not in fresh or entry.id in published:
                        continue
                    await self._port.publish(
                        [topic], entry.xml, private=follow.private, id=mercure_id(entry.id)
                    )
                    published.append(entry.id)
                if published:
                    await self._store.mark_seen(follow.id, published)
                self.log.info(
                    "{count} new entries of {topic} published", count=len(published), topic=_u(follow.topic)
                )
                return Answer(202, "accepted")
            text = decode_text(body, content_type)
            if text is None:
                return Answer(415, "the content is not text in its declared charset (default UTF-8)")
            await self._port.publish([topic], text, private=follow.private)
            self.log.info("a delivery of {topic} published ({size} bytes)", topic=_u(follow.topic), size=len(body))
            return Answer(202, "accepted")
        except HubUnavailable as e:
            return Answer(503, f"the update could not be stored: {e}")
