"""HTTP: the Klein routes, the SSE response, CORS, the subscription API, metadata."""

from ._app import HubWeb
from ._site import HubSite

__all__ = ["HubSite", "HubWeb"]
