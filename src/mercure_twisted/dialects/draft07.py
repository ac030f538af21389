"""Draft-07 (hub 0.x): ``topic`` selectors, ``lastEventID``, JSON-LD subscriptions."""

from __future__ import annotations

from typing import Any

from ..auth import DRAFT07_COOKIE
from ..matching import Matcher, compile_selector
from ..subscriber import Subscriber
from ..transports import SubscriptionRecord
from ..validation import forbidden_character
from ._common import RequestError, SubscribeParams, SubscriptionEventsMixin, expand

JSONLD_CONTEXT = "https://mercure.rocks/"


class Draft07(SubscriptionEventsMixin):
    name = "07"
    last_event_id_header = b"Last-Event-ID"
    default_cookie = DRAFT07_COOKIE
    token_in_query = True
    subscriptions_content_type = b"application/ld+json"

    def parse_subscribe(
        self, pairs: list[tuple[str, str]], *, base_url: str, max_matchers: int, max_length: int
    ) -> SubscribeParams:
        selectors = [value for name, value in pairs if name == "topic"]
        if not selectors:
            raise RequestError("missing topic parameter: give at least one topic selector")
        if len(selectors) > max_matchers:
            raise RequestError(f"too many topic selectors: {len(selectors)} > {max_matchers}")
        for selector in selectors:
            if not selector:
                raise RequestError("empty topic selector")
            if len(selector) > max_length:
                raise RequestError(f"topic selector longer than {max_length} characters")
            bad = forbidden_character(selector)
            if bad:
                raise RequestError(f"topic selector contains a forbidden character ({bad})")
        last = next((value for name, value in pairs if name == "lastEventID"), None)
        matchers = tuple(dict.fromkeys(compile_selector(s) for s in selectors))
        return SubscribeParams(matchers, ("topic",) * len(matchers), last)

    def subscription_topic(self, hub_path: str, selector: str, subscriber_id: str) -> str:
        return f"{hub_path}/subscriptions/{expand(selector)}/{expand(subscriber_id)}"

    def subscription_document(
        self, record: SubscriptionRecord, hub_path: str, active: bool = True
    ) -> dict[str, Any]:
        document: dict[str, Any] = {
            "@context": JSONLD_CONTEXT,
            "id": self.subscription_topic(hub_path, record.pattern, record.subscriber),
            "type": "Subscription",
            "topic": record.pattern,
            "subscriber": record.subscriber,
            "active": active,
        }
        if record.payload is not None:
            document["payload"] = record.payload
        return document

    def parse_api_path(self, segments: list[str]) -> tuple[str | None, str | None, str | None]:
        """(match_type, match, subscriber) from the path after /subscriptions."""
        if len(segments) > 2:
            raise RequestError("no such subscription resource", status=404)
        topic = segments[0] if segments else None
        subscriber = segments[1] if len(segments) > 1 else None
        return ("topic" if topic is not None else None), topic, subscriber

    def collection_document(
        self, path: str, documents: list[dict[str, Any]], last_event_id: str
    ) -> dict[str, Any]:
        for document in documents:
            document.pop("@context", None)
        return {
            "@context": JSONLD_CONTEXT,
            "id": path,
            "type": "Subscriptions",
            "lastEventID": last_event_id,
            "subscriptions": documents,
        }


DRAFT07 = Draft07()
