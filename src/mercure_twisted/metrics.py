"""Prometheus metrics of one hub, in the official ``prometheus_client`` library.

Every hub gets its own ``CollectorRegistry`` (never the process-global one),
so that tests can build many hubs in one process and two hubs never share a
counter.  The engine does not import this module: it is handed a
``HubMetrics`` as its observer (see ``hub.HubObserver``) and calls a few
plain methods; the web layer feeds the publish outcomes and latencies.

Names follow the Go hub where it has one (``mercure_subscribers_connected``,
``mercure_subscribers_total``, ``mercure_updates_total``), without its
per-topic labels: a label per topic makes a series per topic, which
Prometheus cannot hold for a hub with millions of topics.  Every label here
has a small, fixed set of values.

The WebSub metrics are defined here so that their names are part of this
release's contract; they are fed by the WebSub hub role (issue 5) and stay
at zero until it exists.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from .subscriber import Subscriber
from .update import Update

__all__ = ["CONTENT_TYPE", "HubMetrics", "disconnect_reason", "publish_outcome"]

#: ``Content-Type`` of the text exposition format ``render`` produces.
CONTENT_TYPE = CONTENT_TYPE_LATEST.encode("ascii")

#: Publish latency buckets (seconds): a memory hub answers in well under a
#: millisecond, a Redis or SQLite one in a few; anything near a second is
#: an incident.
PUBLISH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Dispatch latency buckets: handing one update to every matching subscriber.
DISPATCH_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5)

#: HTTP status of a publish answer -> its outcome label.
_PUBLISH_OUTCOMES = {
    200: "accepted",
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    413: "too_large",
    415: "unsupported_media_type",
    503: "transport_unavailable",
}


def publish_outcome(status: int) -> str:
    """The ``outcome`` label of a publish answered with ``status``."""
    return _PUBLISH_OUTCOMES.get(status, "error")


#: Subscriber close reasons (see subscriber.py and hub.py) -> label.
_DISCONNECT_REASONS = (
    ("client disconnected", "client"),
    ("write_timeout", "write_timeout"),
    ("token expired", "token_expired"),
    ("hub shutting down", "shutdown"),
    ("slow: write buffer", "slow_buffer"),
    ("slow: more than dispatch_timeout", "slow_lag"),
    ("history unavailable", "history_unavailable"),
)


def disconnect_reason(reason: str) -> str:
    """The ``reason`` label of a stream that ended for ``reason`` (free text)."""
    for prefix, label in _DISCONNECT_REASONS:
        if reason.startswith(prefix):
            return label
    return "other"


class _HistoryCollector:
    """``mercure_history_size``, asked of the transport at scrape time.

    ``history_length()`` is cheap by contract (a cached count); a transport
    without it, or one that cannot tell (``None``), exports no sample rather
    than a wrong zero.
    """

    log = Logger()

    def __init__(self, history_length: Callable[[], Any] | None) -> None:
        self._history_length = history_length

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "mercure_history_size", "Updates currently kept in history for Last-Event-ID."
        )
        if self._history_length is not None:
            try:
                length = self._history_length()
            except Exception:
                self.log.failure("history_length() failed")
                length = None
            if isinstance(length, int) and not isinstance(length, bool):
                family.add_metric([], length)
        yield family

    def describe(self) -> Iterable[Metric]:
        # Known up front, so registering does not call the transport.
        return [GaugeMetricFamily("mercure_history_size", "")]


class HubMetrics:
    """The metric objects of one hub, and the observer methods that feed them."""

    def __init__(self, *, transport: Any = None, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)

        # -- subscribers (Go hub names) --
        self.subscribers_connected = Gauge(
            "mercure_subscribers_connected", "Subscribers connected now.", registry=r
        )
        self.subscribers = Counter(
            "mercure_subscribers", "Subscribers that have connected since start.", registry=r
        )
        self.disconnects = Counter(
            "mercure_subscriber_disconnects",
            "Streams that ended, by reason (client, write_timeout, token_expired, "
            "shutdown, slow_buffer, slow_lag, history_unavailable, other).",
            ["reason"], registry=r,
        )
        self.slow_disconnects = Counter(
            "mercure_slow_subscriber_disconnects",
            "Subscribers cut off for reading too slowly (cause: buffer over "
            "max_subscriber_buffer, or lag over dispatch_timeout).",
            ["cause"], registry=r,
        )

        # -- updates --
        self.updates = Counter(
            "mercure_updates", "Updates dispatched to subscribers (every source).", registry=r
        )
        self.publish_requests = Counter(
            "mercure_publish_requests",
            "Publish requests by outcome (accepted, invalid, unauthorized, forbidden, "
            "too_large, unsupported_media_type, transport_unavailable, error).",
            ["outcome"], registry=r,
        )
        self.publish_latency = Histogram(
            "mercure_publish_duration_seconds",
            "Time from a publish request's arrival to its answer (every outcome).",
            buckets=PUBLISH_BUCKETS, registry=r,
        )
        self.dispatch_latency = Histogram(
            "mercure_dispatch_duration_seconds",
            "Time to hand one update to every subscriber it matches.",
            buckets=DISPATCH_BUCKETS, registry=r,
        )
        self.deliveries = Counter(
            "mercure_deliveries", "Live updates handed to subscribers (one per receiver).",
            registry=r,
        )
        self.transport_errors = Counter(
            "mercure_transport_errors",
            "Transport operations that failed, by operation (publish, history, ping, "
            "subscription_event).",
            ["operation"], registry=r,
        )
        r.register(_HistoryCollector(getattr(transport, "history_length", None)))

        # -- WebSub (fed by the WebSub hub role, issue 5) --
        self.websub_deliveries = Counter(
            "mercure_websub_deliveries",
            "WebSub content distributions by outcome (delivered, retried, failed, "
            "gone). Fed by the WebSub hub role.",
            ["outcome"], registry=r,
        )
        self.websub_retry_queue = Gauge(
            "mercure_websub_retry_queue_depth",
            "WebSub deliveries queued (due now or waiting for a retry), read every minute. "
            "Fed by the WebSub hub role.",
            registry=r,
        )

        # Series that exist from the start at zero, so that rate() and
        # alerts work before the first event of each kind.
        for outcome in sorted(set(_PUBLISH_OUTCOMES.values()) | {"error"}):
            self.publish_requests.labels(outcome)
        for _, label in _DISCONNECT_REASONS:
            self.disconnects.labels(label)
        self.disconnects.labels("other")
        for cause in ("buffer", "lag"):
            self.slow_disconnects.labels(cause)
        for operation in ("publish", "history", "ping", "subscription_event"):
            self.transport_errors.labels(operation)

    # -- the hub's observer (hub.HubObserver) -----------------------------

    def subscribed(self, subscriber: Subscriber) -> None:
        self.subscribers.inc()
        self.subscribers_connected.inc()

    def unsubscribed(self, subscriber: Subscriber, reason: str) -> None:
        self.subscribers_connected.dec()
        label = disconnect_reason(reason)
        self.disconnects.labels(label).inc()
        if label.startswith("slow_"):
            self.slow_disconnects.labels(label[len("slow_"):]).inc()

    def dispatched(self, update: Update, receivers: int, seconds: float) -> None:
        self.updates.inc()
        self.deliveries.inc(receivers)
        self.dispatch_latency.observe(seconds)

    def transport_failed(self, operation: str) -> None:
        self.transport_errors.labels(operation).inc()

    # -- fed by the web layer ---------------------------------------------

    def observe_publish(self, request: Any, clock: IReactorTime) -> None:
        """Count ``request`` (a publish) by outcome and time it when it is answered.

        A publisher that leaves before the answer is not counted: the hub
        never told it anything.
        """
        started = clock.seconds()

        def answered(_: object) -> None:
            self.published(int(request.code), clock.seconds() - started)

        request.notifyFinish().addCallbacks(answered, lambda _: None)

    def published(self, status: int, seconds: float) -> None:
        """A publish request was answered with ``status`` after ``seconds``."""
        outcome = publish_outcome(status)
        self.publish_requests.labels(outcome).inc()
        self.publish_latency.observe(seconds)
        if outcome == "transport_unavailable":
            self.transport_failed("publish")

    # -- exposition -------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition format of every metric of this hub."""
        return generate_latest(self.registry)
