"""History and fan-out transports behind one interface.

``memory://`` keeps a bounded history in this process.  SQLite and Redis
implement the same ``ITransport`` (next issue).
"""

from ._interface import HistoryResult, ITransport, TransportUnavailable
from ._memory import MemoryTransport
from ._select import transport_from_url

__all__ = [
    "HistoryResult",
    "ITransport",
    "MemoryTransport",
    "TransportUnavailable",
    "transport_from_url",
]
