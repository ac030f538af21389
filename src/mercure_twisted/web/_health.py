"""``/healthz``, ``/readyz`` and ``/metrics``: what orchestrators and Prometheus ask.

Served on plain twisted.web ahead of Klein (see ``_root.py``), and by the
separate ``metrics_listen`` site.  All three are cheap and need no token:

* ``/healthz`` (liveness) answers 200 for as long as the reactor turns: if it
  does not answer, the process is stuck and should be restarted.
* ``/readyz`` (readiness) answers 200 once the hub has started and its
  transport answers ``ping()`` (for Redis: the server is reachable); 503
  with the reason otherwise, and while the hub shuts down, so that a load
  balancer stops sending new subscribers before the streams are ended.
* ``/metrics`` is the Prometheus text format of the hub's registry.  It is
  public like the Go hub's: put it on ``metrics_listen`` (a private
  interface) in production, or deny it at the reverse proxy.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from ..hub import Hub
from ..metrics import CONTENT_TYPE, HubMetrics
from ..transports import TransportUnavailable

__all__ = ["Health", "OperationsResource", "OperationsSite", "HEALTH_PATHS", "METRICS_PATH"]

HEALTH_PATHS = frozenset({b"/healthz", b"/readyz"})
METRICS_PATH = b"/metrics"

#: A ping that has not answered by then makes ``/readyz`` answer 503: a
#: probe must never hang on a transport that does not answer.
PING_TIMEOUT = 2.0


class Health:
    """Liveness and readiness of one hub."""

    log = Logger()

    def __init__(
        self, hub: Hub, clock: IReactorTime, metrics: HubMetrics | None = None
    ) -> None:
        self._hub = hub
        self._clock = clock
        self._metrics = metrics

    async def ready(self) -> str | None:
        """None when ready, else the reason it is not (one plain line)."""
        if not self._hub.running:
            return "the hub is not running (starting or shutting down)"
        ping = getattr(self._hub.transport, "ping", None)
        if ping is None:
            return None
        try:
            d = ping()
            if isinstance(d, Deferred):
                d.addTimeout(PING_TIMEOUT, self._clock)
                await d
        except TransportUnavailable as e:
            reason = f"transport unavailable: {e}" if str(e) else "transport unavailable"
        except TimeoutError:
            reason = f"transport did not answer a ping within {PING_TIMEOUT:g} s"
        except Exception:
            self.log.failure("transport ping failed")
            reason = "transport ping failed"
        else:
            return None
        if self._metrics is not None:
            self._metrics.transport_failed("ping")
        return reason


class OperationsResource(Resource):
    """Renders the health endpoints, and ``/metrics`` when ``metrics`` is given."""

    isLeaf = True

    def __init__(self, health: Health, metrics: HubMetrics | None) -> None:
        super().__init__()
        self._health = health
        self._metrics = metrics

    def serves(self, path: bytes) -> bool:
        return path in HEALTH_PATHS or (self._metrics is not None and path == METRICS_PATH)

    def render(self, request: IRequest) -> Any:
        request.setHeader(b"Cache-Control", b"no-store")
        if not self.serves(request.path):
            return _plain(request, 404, "not found")
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            return _plain(request, 405, "use GET or HEAD")
        if request.path == b"/healthz":
            return _plain(request, 200, "ok")
        if request.path == METRICS_PATH:
            assert self._metrics is not None
            request.setHeader(b"Content-Type", CONTENT_TYPE)
            return self._metrics.render()

        def answer(reason: str | None) -> None:
            if getattr(request, "_disconnected", False):
                return
            if reason is None:
                body = _plain(request, 200, "ready")
            else:
                request.setHeader(b"Retry-After", b"5")
                body = _plain(request, 503, reason)
            request.write(body)
            request.finish()  # type: ignore[attr-defined]

        def failed(failure: Failure) -> None:  # pragma: no cover - ready() catches
            answer("readiness check failed")

        Deferred.fromCoroutine(self._health.ready()).addCallbacks(answer, failed)
        return NOT_DONE_YET


def _plain(request: IRequest, status: int, text: str) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    return (text + "\n").encode("utf-8")


class OperationsSite(Site):
    """The ``metrics_listen`` site: probes and scrapes, not access-logged
    (one line per scrape every few seconds would drown the real log)."""

    noisy = False

    def log(self, request: Any) -> None:
        pass
