"""History and fan-out transports behind one interface.

``sqlite://`` (the default of ``twistd mercure``) keeps a durable, bounded
history in one file; ``redis://`` shares updates, history and presence
between the nodes of a cluster; ``memory://`` keeps a bounded history in
this process (tests, ephemeral hubs).  All implement ``ITransport`` and pass
the same contract tests (tests/unit/test_transport_contract.py).
"""

from ._interface import (
    HistoryResult,
    IPresence,
    ITransport,
    SubscriptionRecord,
    TransportUnavailable,
)
from ._memory import MemoryTransport
from ._select import transport_from_url

__all__ = [
    "HistoryResult",
    "IPresence",
    "ITransport",
    "MemoryTransport",
    "SubscriptionRecord",
    "TransportUnavailable",
    "transport_from_url",
]
