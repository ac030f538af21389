"""Limits on concurrent subscriptions: in total and per client address.

Draft-08 asks hubs to bound the long-lived connections one client and all
clients may hold, and allows a 429 beyond.  The total bound defaults to
what the open-file limit allows (a connection refused with a clear 429
beats an ``accept`` failing on EMFILE for every client); the per-address
bound is off by default because behind a reverse proxy every client has
the proxy's address.  Counts are this process's.
"""

from __future__ import annotations

import resource

__all__ = ["ConnectionLimits", "default_total"]

#: File descriptors kept for everything but subscriptions (publishers,
#: listening sockets, the transport, logs).
RESERVED_FILES = 128


def default_total() -> int:
    """The total bound when ``max_connections`` is 0: the soft open-file limit
    (already raised to the hard one by ``twistd mercure``) minus a reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    return max(1, soft - RESERVED_FILES)


class ConnectionLimits:
    """Admits a new subscription or says why not (the 429's message)."""

    def __init__(self, max_total: int, max_per_client: int) -> None:
        self.max_total = max_total if max_total > 0 else default_total()
        self.max_per_client = max_per_client
        self._per_client: dict[str, int] = {}
        self._client_of: dict[str, str] = {}

    @property
    def per_client(self) -> bool:
        return self.max_per_client > 0

    def refusal(self, open_now: int, client: str) -> str | None:
        if open_now >= self.max_total:
            return f"this hub holds its maximum of {self.max_total} subscriptions: retry later"
        if self.per_client and self._per_client.get(client, 0) >= self.max_per_client:
            return (
                f"too many subscriptions from {client}: at most {self.max_per_client}"
                " at once (max_connections_per_client)"
            )
        return None

    def opened(self, subscriber: str, client: str) -> None:
        if self.per_client:
            self._client_of[subscriber] = client
            self._per_client[client] = self._per_client.get(client, 0) + 1

    def closed(self, subscriber: str) -> None:
        client = self._client_of.pop(subscriber, None)
        if client is None:
            return
        left = self._per_client[client] - 1
        if left:
            self._per_client[client] = left
        else:
            del self._per_client[client]
