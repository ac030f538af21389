"""HTTP: the Klein routes, the SSE response, CORS, the subscription API, metadata."""

from ._app import HubWeb

__all__ = ["HubWeb"]
