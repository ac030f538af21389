"""What both dialects share: parsed subscribe parameters and the dialect shape."""

from __future__ import annotations

import json
from typing import Any, Protocol
from urllib.parse import quote

import attrs

from ..matching import Matcher
from ..subscriber import Subscriber
from ..transports import SubscriptionRecord
from ..update import Update, new_event_id


class RequestError(ValueError):
    """A malformed request: ``status`` (400 or 413) and a plain message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@attrs.frozen
class SubscribeParams:
    matchers: tuple[Matcher, ...]
    match_types: tuple[str, ...]
    last_event_id: str | None  # from the query (the header takes precedence)


class Dialect(Protocol):
    name: str  # "07" or "08"
    last_event_id_header: bytes
    default_cookie: str
    token_in_query: bool
    subscriptions_content_type: bytes

    def parse_subscribe(
        self, pairs: list[tuple[str, str]], *, base_url: str, max_matchers: int, max_length: int
    ) -> SubscribeParams: ...

    def subscription_events(
        self, subscriber: Subscriber, active: bool, hub_path: str
    ) -> list[Update]: ...

    def subscription_document(
        self, record: SubscriptionRecord, hub_path: str, active: bool = True
    ) -> dict[str, Any]: ...

    def parse_api_path(self, segments: list[str]) -> tuple[str | None, str | None, str | None]: ...

    def collection_document(
        self, path: str, documents: list[dict[str, Any]], last_event_id: str
    ) -> dict[str, Any]: ...


class SubscriptionEventsMixin:
    """Subscription events built from a dialect's own document format."""

    #: The SSE event type of hub-generated events (None: the default type).
    hub_event_type: str | None = None

    def subscription_document(
        self, record: SubscriptionRecord, hub_path: str, active: bool = True
    ) -> dict[str, Any]:
        raise NotImplementedError

    def subscription_events(
        self, subscriber: Subscriber, active: bool, hub_path: str
    ) -> list[Update]:
        """One private update per subscription, whose topic is the document's id."""
        events = []
        for record in subscriber.records():
            document = self.subscription_document(record, hub_path, active)
            events.append(private_event(document["id"], document, self.hub_event_type))
        return events


def expand(value: str) -> str:
    """Percent-encode a whole value exactly once, as RFC 6570 simple expansion does."""
    return quote(value, safe="")


def private_event(topic: str, document: dict[str, Any], type: str | None) -> Update:
    return Update(
        topics=(topic,),
        id=new_event_id(),
        data=json.dumps(document, separators=(",", ":")),
        private=True,
        type=type,
    )
