"""HTTP: the Klein routes, the SSE response, CORS, the subscription API, metadata."""

from ._app import HubWeb
from ._root import HubResource
from ._site import HubSite

__all__ = ["HubResource", "HubSite", "HubWeb"]
