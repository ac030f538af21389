"""The two protocol generations: wire names and formats only, no logic.

A dialect turns request parameters into engine terms (matchers, the
requested last event id) and engine results into its draft's wire format
(response header names, subscription event topics and documents, the
subscription API).  Who may receive what is never decided here.
"""

from ._common import Dialect, RequestError, SubscribeParams
from .draft07 import DRAFT07
from .draft08 import DRAFT08

__all__ = ["DRAFT07", "DRAFT08", "Dialect", "RequestError", "SubscribeParams", "detect"]


def detect(names: "set[str]") -> Dialect:
    """Which generation a subscribe request speaks, from its parameter names."""
    if any(name.lower().startswith("match") for name in names) or "last_event_id" in names:
        return DRAFT08
    return DRAFT07
