"""/metrics in memory: the Go hub's names, outcomes, latencies, disconnects, history size.

Each test builds its own hub, and each hub its own registry: the counts
seen here are this hub's alone.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import fail
from twisted.trial.unittest import SynchronousTestCase

from mercure_twisted.metrics import HubMetrics, disconnect_reason, publish_outcome
from mercure_twisted.transports import TransportUnavailable

from ._web import draft07_token, make_hub, open_stream

FORM = {"Content-Type": ["application/x-www-form-urlencoded"]}
PUB = draft07_token(publish=["*"])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by (name, sorted labels), parsed by
    prometheus_client's own parser (so the text is valid exposition)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class MetricsEndpointTests(SynchronousTestCase):
    settings: dict[str, Any] = {"anonymous": True}

    def setUp(self) -> None:
        self.web = make_hub(**self.settings)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        d = self.web.stub.get("http://hub.test/metrics")
        self.web.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        self.assertTrue(
            response.headers.getRawHeaders("content-type")[0].startswith("text/plain; version=")
        )
        return samples(self.successResultOf(response.content()).decode())

    def publish(self, body: dict[str, str], token: str | None = PUB) -> int:
        headers = dict(FORM)
        if token:
            headers["Authorization"] = [f"Bearer {token}"]
        d = self.web.stub.post(self.web.url(), data=body, headers=headers)
        self.web.flush()
        response = self.successResultOf(d)
        self.successResultOf(response.content())
        return int(response.code)

    def test_go_hub_names_start_at_zero(self) -> None:
        got = self.scrape()
        for name in ("mercure_subscribers_connected", "mercure_subscribers_total",
                     "mercure_updates_total", "mercure_websub_retry_queue_depth"):
            self.assertEqual(got[(name, ())], 0.0, name)
        self.assertEqual(got[("mercure_publish_requests_total", (("outcome", "accepted"),))], 0)
        self.assertEqual(got[("mercure_history_size", ())], 0)

    def test_subscribers_gauge_and_total(self) -> None:
        a = open_stream(self.web, self.web.url("?topic=https://example.com/a"))
        open_stream(self.web, self.web.url("?topic=https://example.com/b"))
        got = self.scrape()
        self.assertEqual(got[("mercure_subscribers_connected", ())], 2)
        self.assertEqual(got[("mercure_subscribers_total", ())], 2)
        a.disconnect()
        got = self.scrape()
        self.assertEqual(got[("mercure_subscribers_connected", ())], 1)
        self.assertEqual(got[("mercure_subscribers_total", ())], 2)
        self.assertEqual(
            got[("mercure_subscriber_disconnects_total", (("reason", "client"),))], 1
        )

    def test_publish_outcomes_latency_and_dispatch(self) -> None:
        stream = open_stream(self.web, self.web.url("?topic=https://example.com/a"))
        self.assertEqual(self.publish({"topic": "https://example.com/a", "data": "x"}), 200)
        self.assertEqual(self.publish({"topic": "https://example.com/a"}, token=None), 401)
        self.assertEqual(self.publish({"data": "no topic"}), 400)
        self.assertEqual(self.publish({"topic": "https://example.com/a"},
                                      token=draft07_token(publish=["other"])), 403)
        self.assertEqual(len(stream.ids()), 1)
        got = self.scrape()
        by_outcome = {
            labels[0][1]: value
            for (name, labels), value in got.items()
            if name == "mercure_publish_requests_total"
        }
        self.assertEqual(by_outcome["accepted"], 1)
        self.assertEqual(by_outcome["unauthorized"], 1)
        self.assertEqual(by_outcome["invalid"], 1)
        self.assertEqual(by_outcome["forbidden"], 1)
        self.assertEqual(by_outcome["transport_unavailable"], 0)
        self.assertEqual(got[("mercure_publish_duration_seconds_count", ())], 4)
        self.assertEqual(got[("mercure_updates_total", ())], 1)
        self.assertEqual(got[("mercure_deliveries_total", ())], 1)
        self.assertEqual(got[("mercure_dispatch_duration_seconds_count", ())], 1)
        self.assertEqual(got[("mercure_history_size", ())], 1)

    def test_transport_unavailable_is_counted(self) -> None:
        self.web.hub.transport.publish = lambda update: fail(TransportUnavailable("down"))
        self.assertEqual(self.publish({"topic": "https://example.com/a"}), 503)
        got = self.scrape()
        self.assertEqual(
            got[("mercure_publish_requests_total", (("outcome", "transport_unavailable"),))], 1
        )
        self.assertEqual(
            got[("mercure_transport_errors_total", (("operation", "publish"),))], 1
        )

    def test_history_that_cannot_be_read_is_counted(self) -> None:
        self.web.hub.transport.history = lambda last: fail(TransportUnavailable("down"))
        response = open_stream(self.web, self.web.url("?topic=https://example.com/a"),
                               headers={"Last-Event-ID": "earliest"})
        self.assertEqual(response.code, 503)
        self.flushLoggedErrors(TransportUnavailable)
        got = self.scrape()
        self.assertEqual(got[("mercure_transport_errors_total", (("operation", "history"),))], 1)
        self.assertEqual(got[("mercure_subscribers_connected", ())], 0)
        self.assertEqual(
            got[("mercure_subscriber_disconnects_total", (("reason", "history_unavailable"),))], 1
        )

    def test_slow_subscriber_cut_off_is_counted(self) -> None:
        stream = open_stream(self.web, self.web.url("?topic=https://example.com/a"))
        stream.done.addErrback(lambda _: None)  # an aborted stream is data loss
        (only,) = list(self.web.hub.subscribers.values())
        only.cut_off("slow: write buffer over limit")
        got = self.scrape()
        self.assertEqual(
            got[("mercure_slow_subscriber_disconnects_total", (("cause", "buffer"),))], 1
        )
        self.assertEqual(got[("mercure_subscribers_connected", ())], 0)


class SeparateListenerTests(SynchronousTestCase):
    def test_metrics_only_on_the_metrics_site_when_metrics_listen_is_set(self) -> None:
        web = make_hub(metrics_listen="tcp:9100")
        d = web.stub.get("http://hub.test/metrics")
        web.flush()
        # The main site has no /metrics then: it falls through to Klein's 404.
        self.assertEqual(self.successResultOf(d).code, 404)
        self.assertIsNotNone(web.service.metrics_site)

        from treq.testing import StubTreq

        stub = StubTreq(web.service.metrics_site.resource)
        d = stub.get("http://metrics.test/metrics")
        stub.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        self.assertIn(b"mercure_subscribers_connected", self.successResultOf(response.content()))
        d = stub.get("http://metrics.test/healthz")
        stub.flush()
        self.assertEqual(self.successResultOf(d).code, 200)


class RegistryTests(SynchronousTestCase):
    def test_two_hubs_never_share_a_counter(self) -> None:
        a, b = HubMetrics(process=False), HubMetrics(process=False)
        a.published(200, 0.001)
        self.assertIn(b'mercure_publish_requests_total{outcome="accepted"} 1.0', a.render())
        self.assertIn(b'mercure_publish_requests_total{outcome="accepted"} 0.0', b.render())

    def test_history_size_of_a_transport_that_cannot_tell_is_absent(self) -> None:
        class Blind:
            def history_length(self) -> None:
                return None

        text = HubMetrics(transport=Blind(), process=False).render().decode()
        self.assertNotIn(("mercure_history_size", ()), samples(text))
        self.assertIn("# TYPE mercure_history_size gauge", text)

    def test_labels(self) -> None:
        self.assertEqual(publish_outcome(413), "too_large")
        self.assertEqual(publish_outcome(500), "error")
        self.assertEqual(disconnect_reason("slow: more than dispatch_timeout behind"), "slow_lag")
        self.assertEqual(disconnect_reason("write_timeout reached"), "write_timeout")
        self.assertEqual(disconnect_reason("something new"), "other")
