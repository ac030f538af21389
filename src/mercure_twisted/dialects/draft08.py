"""Draft-08 (Mercure 1.0): ``match``/``match_<type>``, ``last_event_id``, JSON subscriptions."""

from __future__ import annotations

from typing import Any

from ..auth import DRAFT08_COOKIE
from ..matching import MATCHER_TYPES, Matcher, MatcherError, compile_matcher
from ..subscriber import Subscriber
from ..transports import SubscriptionRecord
from ..validation import forbidden_character
from ._common import RequestError, SubscribeParams, SubscriptionEventsMixin, expand

#: The SSE event type of the events the hub generates itself.
HUB_EVENT_TYPE = "mercure"


def _matcher_type(name: str) -> str | None:
    """The matcher type a parameter name selects, None if not a matcher name.

    Raises RequestError for a name in the reserved ``match`` namespace that
    names no supported type (a misspelling must fail loudly).
    """
    if not name.lower().startswith("match"):
        return None
    if name == "match":
        return "exact"
    if name.startswith("match_") and name[len("match_"):] in MATCHER_TYPES:
        return name[len("match_"):]
    raise RequestError(
        f"unsupported matcher parameter {name!r}: use match, "
        + ", ".join("match_" + t for t in MATCHER_TYPES)
    )


class Draft08(SubscriptionEventsMixin):
    name = "08"
    last_event_id_header = b"Mercure-Last-Event-ID"
    default_cookie = DRAFT08_COOKIE
    token_in_query = False
    subscriptions_content_type = b"application/json"
    hub_event_type = HUB_EVENT_TYPE

    def parse_subscribe(
        self, pairs: list[tuple[str, str]], *, base_url: str, max_matchers: int, max_length: int
    ) -> SubscribeParams:
        requested: list[tuple[str, str]] = []
        for name, value in pairs:
            match_type = _matcher_type(name)
            if match_type is None:
                continue
            bad = forbidden_character(value)
            if bad:
                raise RequestError(f"{name} value contains a forbidden character ({bad})")
            if not value:
                raise RequestError(f"empty {name} value")
            if len(value) > max_length:
                raise RequestError(f"{name} value longer than {max_length} characters")
            requested.append((match_type, value))
        if not requested:
            raise RequestError("missing match parameter: give at least one topic matcher")
        if len(requested) > max_matchers:
            raise RequestError(f"too many topic matchers: {len(requested)} > {max_matchers}")
        compiled: dict[tuple[Matcher, str], None] = {}
        for match_type, value in requested:
            try:
                matcher = compile_matcher(match_type, value, base_url)
            except MatcherError as e:
                raise RequestError(str(e)) from None
            compiled[(matcher, match_type)] = None
        last = next((value for name, value in pairs if name == "last_event_id"), None)
        return SubscribeParams(
            tuple(m for m, _ in compiled), tuple(t for _, t in compiled), last
        )

    def subscription_topic(
        self, hub_path: str, match_type: str, match: str, subscriber_id: str
    ) -> str:
        return (
            f"{hub_path}/subscriptions/{expand(match_type)}/{expand(match)}"
            f"/{expand(subscriber_id)}"
        )

    def subscription_document(
        self, record: SubscriptionRecord, hub_path: str, active: bool = True
    ) -> dict[str, Any]:
        document: dict[str, Any] = {
            "id": self.subscription_topic(
                hub_path, record.match_type, record.pattern, record.subscriber
            ),
            "type": "subscription",
            "match_type": record.match_type,
            "match": record.pattern,
            "subscriber": record.subscriber,
            "active": active,
        }
        if record.payload is not None:
            document["payload"] = record.payload
        return document

    def parse_api_path(self, segments: list[str]) -> tuple[str | None, str | None, str | None]:
        if len(segments) == 1 or len(segments) > 3:
            raise RequestError("no such subscription resource", status=404)
        if not segments:
            return None, None, None
        if segments[0] not in MATCHER_TYPES:
            raise RequestError(f"unsupported matcher type {segments[0]!r}", status=404)
        return segments[0], segments[1], (segments[2] if len(segments) > 2 else None)

    def collection_document(
        self, path: str, documents: list[dict[str, Any]], last_event_id: str
    ) -> dict[str, Any]:
        return {"id": path, "type": "subscriptions", "subscriptions": documents}


DRAFT08 = Draft08()
