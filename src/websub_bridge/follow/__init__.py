"""The follow role of the bridge: WebSub subscriptions re-published into Mercure."""

from ._machine import Answer, Follower, backoff_delay, retry_after_seconds
from ._web import BridgeResource

__all__ = ["Answer", "BridgeResource", "Follower", "backoff_delay", "retry_after_seconds"]
