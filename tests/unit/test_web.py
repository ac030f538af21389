"""The HTTP face of the hub, both drafts, in memory through StubTreq."""

from __future__ import annotations

import json
import uuid
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from ._web import HUB, Stream, cut, draft07_token, draft08_token, make_hub, open_stream, start_get

FORM = {"Content-Type": ["application/x-www-form-urlencoded"]}
PUB07 = draft07_token(publish=["*"])
PUB08 = draft08_token({"actions": ["publish"], "topics": [{"match": "*"}]})


class WebTestCase(SynchronousTestCase):
    settings: dict[str, Any] = {"anonymous": True}

    def setUp(self) -> None:
        self.web = make_hub(**self.settings)

    def publish(self, body: Any, token: str | None = PUB07, headers: dict[str, list[str]] | None = None) -> tuple[int, bytes, Any]:
        h = dict(FORM)
        if token:
            h["Authorization"] = [f"Bearer {token}"]
        h.update(headers or {})
        d = self.web.stub.post(self.web.url(), data=body, headers=h)
        self.web.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(response.content())
        return response.code, content, response

    def get(self, url: str, **kwargs: Any) -> tuple[int, bytes, Any]:
        d = self.web.stub.get(url, **kwargs)
        self.web.flush()
        response = self.successResultOf(d)
        return response.code, self.successResultOf(response.content()), response

    def stream(self, query: str, **kwargs: Any) -> Stream:
        result = open_stream(self.web, self.web.url("?" + query), **kwargs)
        self.assertIsInstance(result, Stream, getattr(result, "code", None))
        return result  # type: ignore[no-any-return]


class PublishTests(WebTestCase):
    def test_publish_returns_id_as_text(self) -> None:
        code, body, response = self.publish({"topic": "https://example.com/a", "data": "x"})
        self.assertEqual(code, 200)
        self.assertTrue(body.startswith(b"urn:uuid:"))
        self.assertEqual(uuid.UUID(body.decode()[len("urn:uuid:"):]).version, 7)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"])

    def test_publish_keeps_given_id(self) -> None:
        code, body, _ = self.publish({"topic": "t", "id": "my-id"})
        self.assertEqual((code, body), (200, b"my-id"))

    def test_update_that_cannot_be_stored_is_503(self) -> None:
        from twisted.internet.defer import fail

        from mercure_twisted.transports import TransportUnavailable

        self.web.hub.transport.publish = lambda u: fail(TransportUnavailable("store is down"))
        code, content, response = self.publish({"topic": "t"})
        self.assertEqual(code, 503)
        self.assertIn(b"store is down", content)

    def test_draft08_token_publishes(self) -> None:
        code, _, _ = self.publish({"topic": "https://example.com/a"}, token=PUB08)
        self.assertEqual(code, 200)

    def test_validation_rules(self) -> None:
        cases = [
            ({"data": "x"}, "missing topic"),
            ({"topic": "*"}, "reserved for the wildcard"),
            ({"topic": "/.well-known/mercure/subscriptions/x/y"}, "reserved namespace"),
            ({"topic": "http://hub.test/.well-known/%6Dercure/x"}, "reserved namespace"),
            ({"topic": "a\nb"}, "forbidden character"),
            ({"topic": "a\u200bb"}, "forbidden character"),
            ({"topic": "t", "id": "#frag"}, "must not start with '#'"),
            ({"topic": "t", "id": "earliest"}, "reserved"),
            ({"topic": "t", "id": "a\rb"}, "forbidden character"),
            ({"topic": "t", "type": "mercure"}, "reserved for events the hub generates"),
            ({"topic": "t", "type": "a\nb"}, "forbidden character"),
            ({"topic": "t", "retry": "10s"}, "ASCII digits"),
            ({"topic": "t", "retry": "-1"}, "ASCII digits"),
        ]
        for body, reason in cases:
            code, content, _ = self.publish(body)
            self.assertEqual(code, 400, body)
            self.assertIn(reason, content.decode(), body)

    def test_invalid_utf8_is_400(self) -> None:
        code, content, _ = self.publish(b"topic=t&data=%ff%fe")
        self.assertEqual(code, 400)
        self.assertIn(b"UTF-8", content)

    def test_body_over_limit_is_413(self) -> None:
        web = make_hub(max_body_size=100)
        self.web = web
        code, _, _ = self.publish({"topic": "t", "data": "x" * 200})
        self.assertEqual(code, 413)

    def test_wrong_content_type_is_415(self) -> None:
        code, _, _ = self.publish(b'{"topic": "t"}', headers={"Content-Type": ["application/json"]})
        self.assertEqual(code, 415)

    def test_no_token_is_401_with_challenge(self) -> None:
        code, content, response = self.publish({"topic": "t"}, token=None)
        self.assertEqual(code, 401)
        challenge = response.headers.getRawHeaders("www-authenticate")[0]
        self.assertTrue(challenge.startswith("Bearer "))
        self.assertNotIn("error=", challenge)
        self.assertIn("resource_metadata=", challenge)

    def test_invalid_token_is_401_invalid_token(self) -> None:
        bad = draft07_token(publish=["*"], key="another-secret-that-is-long-enough!!")
        code, content, response = self.publish({"topic": "t"}, token=bad)
        self.assertEqual(code, 401)
        self.assertIn('error="invalid_token"', response.headers.getRawHeaders("www-authenticate")[0])
        self.assertNotIn(bad.encode(), content)

    def test_topic_not_granted_is_403_naming_topic(self) -> None:
        token = draft07_token(publish=["https://example.com/a"])
        code, content, response = self.publish(
            {"topic": ["https://example.com/a", "https://example.com/b"]}, token=token)
        self.assertEqual(code, 403)
        self.assertIn(b"https://example.com/b", content)
        self.assertIn('error="insufficient_scope"', response.headers.getRawHeaders("www-authenticate")[0])

    def test_empty_publish_claim_grants_nothing(self) -> None:
        code, _, _ = self.publish({"topic": "t"}, token=draft07_token(publish=[]))
        self.assertEqual(code, 403)

    def test_subscriber_token_cannot_publish(self) -> None:
        code, _, _ = self.publish({"topic": "t"}, token=draft07_token(subscribe=["*"]))
        self.assertEqual(code, 403)

    def test_cookie_publish_checks_origin(self) -> None:
        self.web = make_hub(publish_origins=("https://app.test",))
        cookie = {"Cookie": [f"mercureAuthorization={PUB07}"]}
        code, _, _ = self.publish({"topic": "t"}, token=None, headers=cookie)
        self.assertEqual(code, 403)
        code, _, _ = self.publish({"topic": "t"}, token=None,
                                  headers={**cookie, "Origin": ["https://evil.test"]})
        self.assertEqual(code, 403)
        code, _, _ = self.publish({"topic": "t"}, token=None,
                                  headers={**cookie, "Origin": ["https://app.test"]})
        self.assertEqual(code, 200)
        code, _, _ = self.publish({"topic": "t"}, token=None,
                                  headers={**cookie, "Referer": ["https://app.test/page"]})
        self.assertEqual(code, 200)


class SubscribeTests(WebTestCase):
    def test_stream_headers_and_opening_comment(self) -> None:
        s = self.stream("topic=t")
        headers = s.response.headers
        self.assertEqual(headers.getRawHeaders("content-type"), ["text/event-stream; charset=utf-8"])
        self.assertIn("no-cache", headers.getRawHeaders("cache-control")[0])
        self.assertEqual(headers.getRawHeaders("x-accel-buffering"), ["no"])
        self.assertIn('rel="mercure"', headers.getRawHeaders("link")[0])
        self.assertEqual(s.data, b":\n\n")

    def test_draft07_receive(self) -> None:
        s = self.stream("topic=https://example.com/books/{id}")
        self.publish({"topic": "https://example.com/books/1", "data": "line1\nline2", "id": "e1",
                      "type": "custom", "retry": "1000"})
        self.assertEqual(s.events(), [{"id": "e1", "event": "custom", "retry": "1000",
                                       "data": "line1\nline2"}])

    def test_draft08_receive_match_and_urlpattern(self) -> None:
        s = self.stream("match=https://example.com/a&match_urlpattern=https://example.com/books/:id")
        self.publish({"topic": "https://example.com/a", "id": "1"})
        self.publish({"topic": "https://example.com/books/2", "id": "2"})
        self.publish({"topic": "https://example.com/books/2/x", "id": "3"})
        self.assertEqual(s.ids(), ["1", "2"])

    def test_bad_subscribe_requests_are_400(self) -> None:
        for query in ["", "match_regex=x", "MATCHES=x", "match=a%0Ab", "match_urlpattern=https://x/(",
                      "topic=a%00b", "match=" + "x" * 3000]:
            code, content, _ = self.get(self.web.url("?" + query))
            self.assertEqual(code, 400, query)
        code, _, _ = self.get(self.web.url("?" + "&".join(f"match=t{i}" for i in range(101))))
        self.assertEqual(code, 400)

    def test_anonymous_off_requires_token(self) -> None:
        self.web = make_hub(anonymous=False)
        code, _, response = self.get(self.web.url("?topic=t"))
        self.assertEqual(code, 401)
        self.assertIsInstance(self.stream(f"topic=t&authorization={draft07_token(subscribe=['t'])}"), Stream)

    def test_invalid_token_refused_even_when_anonymous(self) -> None:
        code, _, _ = self.get(self.web.url("?topic=t"), headers={"Authorization": ["Bearer nope"]})
        self.assertEqual(code, 401)

    def test_private_updates_filtered(self) -> None:
        anon = self.stream("topic=t")
        token = draft07_token(subscribe=["t"])
        authorized = self.stream("topic=t", headers={"Authorization": [f"Bearer {token}"]})
        by_cookie = self.stream("topic=t", cookies={"mercureAuthorization": token})
        token08 = draft08_token({"actions": ["subscribe"], "topics": [{"match": "t"}]})
        by_cookie08 = self.stream("match=t", cookies={"__Secure-mercure_access_token": token08})
        self.publish({"topic": "t", "id": "secret", "private": "on"})
        self.publish({"topic": "t", "id": "public"})
        self.assertEqual(anon.ids(), ["public"])
        for s in (authorized, by_cookie, by_cookie08):
            self.assertEqual(s.ids(), ["secret", "public"])

    def test_last_event_id_header_and_query_07(self) -> None:
        for i in range(3):
            self.publish({"topic": "t", "id": f"e{i}"})
        s = self.stream("topic=t&lastEventID=e0")
        self.assertEqual(s.response.headers.getRawHeaders("last-event-id"), ["e0"])
        self.assertEqual(s.ids(), ["e1", "e2"])
        s = self.stream("topic=t&lastEventID=e0", headers={"Last-Event-ID": ["e1"]})
        self.assertEqual(s.ids(), ["e2"])
        s = self.stream("topic=t&lastEventID=unknown")
        self.assertEqual(s.response.headers.getRawHeaders("last-event-id"), ["earliest"])
        s = self.stream("topic=t")
        self.assertIsNone(s.response.headers.getRawHeaders("last-event-id"))

    def test_last_event_id_08(self) -> None:
        for i in range(3):
            self.publish({"topic": "t", "id": f"e{i}"})
        s = self.stream("match=t&last_event_id=e1")
        self.assertEqual(s.response.headers.getRawHeaders("mercure-last-event-id"), ["e1"])
        self.assertEqual(s.ids(), ["e2"])
        s = self.stream("match=t&last_event_id=earliest")
        self.assertEqual(s.response.headers.getRawHeaders("mercure-last-event-id"), ["earliest"])
        self.assertEqual(s.ids(), ["e0", "e1", "e2"])

    def test_history_failure_is_503_and_unregisters(self) -> None:
        from twisted.internet.defer import fail

        self.web.hub.transport.history = lambda _id: fail(RuntimeError("disk on fire"))
        code, content, response = self.get(self.web.url("?topic=t&lastEventID=x"))
        self.assertEqual(code, 503)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["1"])
        self.assertEqual(self.web.hub.subscribers, {})
        self.flushLoggedErrors(RuntimeError)

    def test_client_leaving_during_replay_unregisters(self) -> None:
        from twisted.internet.defer import Deferred

        pending: Deferred = Deferred()
        self.web.hub.transport.history = lambda _id: pending
        d, connection = start_get(self.web, self.web.url("?topic=t&lastEventID=x"))
        d.addErrback(lambda _: None)
        self.assertEqual(len(self.web.hub.subscribers), 1)
        cut(self.web, connection)
        self.assertEqual(self.web.hub.subscribers, {})
        self.assertTrue(pending.called)  # cancelled

    def test_head_answers_headers_only(self) -> None:
        d = self.web.stub.head(self.web.url("?topic=t"))
        self.web.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/event-stream; charset=utf-8"])

    def test_query_method_with_body(self) -> None:
        d = self.web.stub.request("QUERY", self.web.url("?match=a"), data={"match": "b"}, headers=FORM)
        self.web.flush()
        s = Stream(self.web, self.successResultOf(d), set())
        self.publish({"topic": "b", "id": "1"})
        self.publish({"topic": "a", "id": "2"})
        self.assertEqual(s.ids(), ["1", "2"])

    def test_disconnect_unsubscribes(self) -> None:
        s = self.stream("topic=t")
        self.assertEqual(len(self.web.hub.subscribers), 1)
        s.disconnect()
        self.assertEqual(len(self.web.hub.subscribers), 0)

    def test_expired_token_closes_stream(self) -> None:
        token = draft07_token(subscribe=["t"], exp=self.web.clock.seconds() + 10)
        s = self.stream("topic=t", headers={"Authorization": [f"Bearer {token}"]})
        self.web.clock.advance(11)
        self.web.flush()
        self.successResultOf(s.done)
        self.assertEqual(len(self.web.hub.subscribers), 0)

    def test_protocol_restriction(self) -> None:
        self.web = make_hub(anonymous=True, protocol="1")
        code, content, _ = self.get(self.web.url("?topic=t"))
        self.assertEqual(code, 400)
        self.web = make_hub(anonymous=True, protocol="0")
        code, content, _ = self.get(self.web.url("?match=t"))
        self.assertEqual(code, 400)


class CORSTests(WebTestCase):
    settings = {"anonymous": True, "cors_origins": ("https://app.test",)}

    def test_listed_origin_gets_credentials(self) -> None:
        s = self.stream("topic=t", headers={"Origin": ["https://app.test"]})
        h = s.response.headers
        self.assertEqual(h.getRawHeaders("access-control-allow-origin"), ["https://app.test"])
        self.assertEqual(h.getRawHeaders("access-control-allow-credentials"), ["true"])

    def test_other_origin_gets_nothing(self) -> None:
        s = self.stream("topic=t", headers={"Origin": ["https://evil.test"]})
        self.assertIsNone(s.response.headers.getRawHeaders("access-control-allow-origin"))

    def test_star_never_with_credentials(self) -> None:
        self.web = make_hub(anonymous=True, cors_origins=("*",))
        s = self.stream("topic=t", headers={"Origin": ["https://any.test"]})
        h = s.response.headers
        self.assertEqual(h.getRawHeaders("access-control-allow-origin"), ["*"])
        self.assertIsNone(h.getRawHeaders("access-control-allow-credentials"))

    def test_preflight(self) -> None:
        d = self.web.stub.request("OPTIONS", self.web.url(), headers={
            "Origin": ["https://app.test"], "Access-Control-Request-Method": ["POST"]})
        self.web.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 204)
        self.assertIn("Authorization", response.headers.getRawHeaders("access-control-allow-headers")[0])


class ConnectionLimitTests(WebTestCase):
    """Draft-08: bounds on concurrent connections, per client and in total, 429 beyond."""

    def test_per_client_limit(self) -> None:
        self.web = make_hub(anonymous=True, max_connections_per_client=2)
        first = self.stream("topic=t")
        self.stream("match=t")
        code, body, response = self.get(self.web.url("?topic=t"))
        self.assertEqual(code, 429)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["10"])
        self.assertIn(b"too many subscriptions from", body)
        self.assertEqual(len(self.web.hub.subscribers), 2)
        first.disconnect()
        self.stream("topic=t")  # the slot was given back
        self.assertEqual(len(self.web.hub.subscribers), 2)

    def test_total_limit(self) -> None:
        self.web = make_hub(anonymous=True, max_connections=1)
        self.stream("topic=t")
        code, body, _ = self.get(self.web.url("?topic=t"))
        self.assertEqual(code, 429)
        self.assertIn(b"maximum of 1 subscriptions", body)

    def test_default_total_follows_the_open_file_limit(self) -> None:
        import resource

        from mercure_twisted.web._limits import RESERVED_FILES

        from mercure_twisted.web._limits import ConnectionLimits

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.assertEqual(ConnectionLimits(0, 0).max_total, max(1, soft - RESERVED_FILES))
        self.assertFalse(ConnectionLimits(0, 0).per_client)


class SharedPresence:
    """Another node's view of the cluster, as a cluster transport's IPresence
    gives it (the Redis one is tested end to end in test_redis_cluster)."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[Any, ...]] = {}

    def add(self, subscriber: str, records: tuple[Any, ...]) -> None:
        self.records[subscriber] = records

    def remove(self, subscriber: str) -> None:
        self.records.pop(subscriber, None)

    def active(self) -> Any:
        from twisted.internet.defer import succeed

        return succeed([r for rs in self.records.values() for r in rs])


class SubscriptionTests(WebTestCase):
    settings = {"anonymous": True, "subscriptions": True}

    def test_draft07_events_and_api(self) -> None:
        token = draft07_token(subscribe=["/.well-known/mercure/subscriptions{/topic}{/subscriber}"],
                              payload={"user": 1})
        auth = {"Authorization": [f"Bearer {token}"]}
        watcher = self.stream("topic=/.well-known/mercure/subscriptions{/topic}{/subscriber}", headers=auth)
        s = self.stream("topic=https://example.com/{x}", headers=auth)
        events = watcher.events()
        self.assertTrue(events)
        doc = json.loads(events[-1]["data"])
        self.assertEqual(doc["type"], "Subscription")
        self.assertEqual(doc["topic"], "https://example.com/{x}")
        self.assertEqual(doc["payload"], {"user": 1})
        self.assertTrue(doc["id"].startswith("/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2F%7Bx%7D/"))
        self.assertNotIn("event", events[-1])

        code, body, response = self.get(self.web.url("/subscriptions"), headers=auth)
        self.assertEqual(code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/ld+json"])
        collection = json.loads(body)
        self.assertEqual(collection["type"], "Subscriptions")
        self.assertIn("lastEventID", collection)
        self.assertEqual(len(collection["subscriptions"]), 2)

        code, body, _ = self.get("http://hub.test" + doc["id"], headers=auth)
        self.assertEqual(code, 200)
        self.assertEqual(json.loads(body)["subscriber"], doc["subscriber"])

        s.disconnect()
        last = json.loads(watcher.events()[-1]["data"])
        self.assertFalse(last["active"])
        code, _, _ = self.get("http://hub.test" + doc["id"], headers=auth)
        self.assertEqual(code, 404)

    def test_draft08_events_and_api(self) -> None:
        token = draft08_token({"actions": ["subscribe"], "payload": {"p": 1}, "topics": [
            {"match": "/.well-known/mercure/subscriptions/*", "match_type": "urlpattern"},
            {"match": "/.well-known/mercure/subscriptions", "match_type": "exact"}]})
        auth = {"Authorization": [f"Bearer {token}"]}
        watcher = self.stream("match_urlpattern=/.well-known/mercure/subscriptions/*", headers=auth)
        self.stream("match=https://example.com/a", headers=auth)
        event = watcher.events()[-1]
        self.assertEqual(event["event"], "mercure")
        doc = json.loads(event["data"])
        self.assertEqual(doc["type"], "subscription")
        self.assertEqual(doc["match_type"], "exact")
        self.assertEqual(doc["match"], "https://example.com/a")
        self.assertTrue(doc["id"].startswith("/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fexample.com%2Fa/"))
        code, body, response = self.get(self.web.url("/subscriptions"), headers=auth)
        self.assertEqual(code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        self.assertIn("last-event-id=", response.headers.getRawHeaders("link")[0])
        self.assertEqual(json.loads(body)["type"], "subscriptions")
        code, body, _ = self.get(self.web.url("/subscriptions/exact/https%3A%2F%2Fexample.com%2Fa"), headers=auth)
        self.assertEqual(code, 200)
        self.assertEqual(len(json.loads(body)["subscriptions"]), 1)

    def test_api_lists_the_subscriptions_the_presence_knows(self) -> None:
        """With a cluster transport, presence holds the subscriptions of
        every node: the API lists them, not only this process's."""
        from mercure_twisted.transports import SubscriptionRecord

        presence = SharedPresence()
        self.web.hub.transport.presence = presence
        presence.add("urn:uuid:other-node-subscriber", (
            SubscriptionRecord("urn:uuid:other-node-subscriber", "07", "topic", "https://example.com/elsewhere"),
            SubscriptionRecord("urn:uuid:other-node-subscriber", "08", "exact", "https://example.com/08"),
        ))
        token = draft07_token(subscribe=["/.well-known/mercure/subscriptions{/topic}{/subscriber}"])
        auth = {"Authorization": [f"Bearer {token}"]}
        self.stream("topic=https://example.com/here", headers=auth)
        code, body, _ = self.get(self.web.url("/subscriptions"), headers=auth)
        self.assertEqual(code, 200)
        topics = sorted(d["topic"] for d in json.loads(body)["subscriptions"])
        self.assertEqual(topics, ["https://example.com/elsewhere", "https://example.com/here"])
        presence.remove("urn:uuid:other-node-subscriber")
        code, body, _ = self.get(self.web.url("/subscriptions"), headers=auth)
        self.assertEqual([d["topic"] for d in json.loads(body)["subscriptions"]], ["https://example.com/here"])

    def test_api_answers_503_when_presence_is_unavailable(self) -> None:
        from twisted.internet.defer import fail

        from mercure_twisted.transports import TransportUnavailable

        presence = SharedPresence()
        presence.active = lambda: fail(TransportUnavailable("redis is down"))  # type: ignore[method-assign]
        self.web.hub.transport.presence = presence
        token = draft07_token(subscribe=["/.well-known/mercure/subscriptions{/topic}{/subscriber}"])
        code, body, _ = self.get(self.web.url("/subscriptions"), headers={"Authorization": [f"Bearer {token}"]})
        self.assertEqual(code, 503)
        self.assertIn(b"redis is down", body)

    def test_api_requires_grant(self) -> None:
        code, _, _ = self.get(self.web.url("/subscriptions"))
        self.assertEqual(code, 401)
        token = draft07_token(subscribe=["https://example.com/other"])
        code, _, _ = self.get(self.web.url("/subscriptions"), headers={"Authorization": [f"Bearer {token}"]})
        self.assertEqual(code, 403)


class MetadataTests(WebTestCase):
    def test_protected_resource_metadata(self) -> None:
        code, body, _ = self.get("http://hub.test/.well-known/oauth-protected-resource/.well-known/mercure")
        self.assertEqual(code, 200)
        doc = json.loads(body)
        self.assertEqual(doc["resource"], HUB)
        self.assertEqual(doc["authorization_details_types_supported"],
                         ["https://mercure.rocks/authorization-detail"])
        self.assertEqual(doc["bearer_methods_supported"], ["header"])


class DebugPageTests(WebTestCase):
    settings = {"anonymous": True, "debug_ui": True}

    def test_served_with_a_strict_policy(self) -> None:
        code, body, response = self.get(self.web.url("/ui/"))
        self.assertEqual(code, 200)
        self.assertIn(b"<title>Mercure hub", body)
        self.assertIn("connect-src 'self'", response.headers.getRawHeaders("content-security-policy")[0])
        for name, kind in [("ui.js", "text/javascript"), ("ui.css", "text/css")]:
            code, _, response = self.get(self.web.url("/ui/" + name))
            self.assertEqual(code, 200)
            self.assertTrue(response.headers.getRawHeaders("content-type")[0].startswith(kind))
        self.assertEqual(self.get(self.web.url("/ui/../../etc/passwd"))[0], 404)
        self.assertEqual(self.get(self.web.url("/ui/_ui.py"))[0], 404)

    def test_disabled_by_default(self) -> None:
        self.web = make_hub(anonymous=True)
        self.assertEqual(self.get(self.web.url("/ui/"))[0], 404)
