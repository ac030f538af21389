"""The HTTP face of the hub: subscriptions, publishing, the subscription API.

Requests are translated by a dialect into engine terms and handed to the
``Hub``; this module decides nothing about who receives what.  Every
failure is answered with a precise status and a plain-text reason.
Subscriptions are served on plain twisted.web (``render_subscribe``, see
``_root.py``); everything short-lived is routed by Klein.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from klein import Klein
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import NOT_DONE_YET

from ..auth import (
    ANONYMOUS,
    MERCURE_DETAIL_TYPE,
    Grants,
    TokenError,
    TokenVerifier,
    forbidden_publish,
    read_token,
)
from ..config import DEFAULT_HUB_PATH, HubConfig
from ..dialects import DRAFT07, DRAFT08, Dialect, RequestError, detect
from ..hub import Hub
from ..logs import debug_logged
from ..subscriber import Subscriber
from ..transports import TransportUnavailable
from ..update import Update, new_event_id
from ..urlencoded import query_of
from ..validation import RETRY_DIGITS, addresses_reserved_namespace, forbidden_character
from ._cors import CORSPolicy
from ._limits import ConnectionLimits
from ._forms import parse_form
from ._responses import answer_error, bearer_challenge
from ._sse import RequestSink, start_stream
from ._ui import CONTENT_SECURITY_POLICY, ui_file

HUB_PATH = DEFAULT_HUB_PATH
METADATA_PATH = "/.well-known/oauth-protected-resource" + HUB_PATH
FORM_TYPE = b"application/x-www-form-urlencoded"


class HubWeb:
    """The HTTP face of one ``Hub``, served through ``HubResource``."""

    app = Klein()
    log = Logger()

    def __init__(
        self, hub: Hub, config: HubConfig, verifier: TokenVerifier, clock: IReactorTime
    ) -> None:
        self.hub = hub
        self.config = config
        self.verifier = verifier
        self.clock = clock
        self.cors = CORSPolicy(config.cors_origins)
        self.limits = ConnectionLimits(config.max_connections, config.max_connections_per_client)
        self.hub_path = config.hub_path

    # -- helpers ----------------------------------------------------------

    def hub_url(self, request: IRequest) -> str:
        """The hub's URL: ``public_url``, or derived from the request."""
        if self.config.public_url:
            return self.config.public_url
        # A publish needs it twice (its Link header, the token's audience),
        # and isSecure is a zope adapter lookup: derived once per request.
        derived: str | None = getattr(request, "derived_hub_url", None)
        if derived is not None:
            return derived
        scheme = "https" if request.isSecure() else "http"
        host = request.getHeader(b"host")
        if host:
            authority = host.decode("latin-1")
        else:
            address = request.getHost()
            authority = f"{getattr(address, 'host', 'localhost')}:{getattr(address, 'port', 80)}"
        derived = f"{scheme}://{authority}{HUB_PATH}"
        try:
            request.derived_hub_url = derived  # type: ignore[attr-defined]
        except AttributeError:
            pass  # a request type that takes no new attribute
        return derived

    def metadata_url(self, request: IRequest) -> str | None:
        if not self.config.accepts_draft08:
            return None
        parts = urlsplit(self.hub_url(request))
        return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path}"

    def discovery_link(self, request: IRequest) -> bytes:
        return f'<{self.hub_url(request)}>; rel="mercure"'.encode("utf-8")

    def cookie_names(self, first: Dialect | None = None) -> list[str]:
        if self.config.cookie_name:
            return [self.config.cookie_name]
        names = [d.default_cookie for d in (DRAFT07, DRAFT08)]
        if first is DRAFT08:
            names.reverse()
        return names

    def token_error(self, request: IRequest, error: TokenError) -> bytes:
        challenge = bearer_challenge(error.error, error.reason, self.metadata_url(request))
        return answer_error(request, error.status, error.reason, challenge=challenge)

    def unauthorized(self, request: IRequest, reason: str) -> bytes:
        challenge = bearer_challenge(None, None, self.metadata_url(request))
        return answer_error(request, 401, reason, challenge=challenge)

    def forbidden(self, request: IRequest, reason: str) -> bytes:
        challenge = bearer_challenge("insufficient_scope", reason, self.metadata_url(request))
        return answer_error(request, 403, reason, challenge=challenge)

    async def grants_for(
        self, request: IRequest, role: str, dialect: Dialect | None, allow_query: bool
    ) -> Grants | None:
        """The request's grants; None when it presented no token.  Raises TokenError."""
        presentation = read_token(
            request, cookie_names=self.cookie_names(dialect), allow_query=allow_query
        )
        if presentation is None:
            return None
        grants = await self.verifier.verify(
            presentation.token, role, self.hub_url(request)  # type: ignore[arg-type]
        )
        if presentation.via == "cookie" and role == "publisher":
            self.check_publish_origin(request)
        return grants

    def check_publish_origin(self, request: IRequest) -> None:
        """CSRF defence for cookie-authenticated publishing."""
        allowed = self.config.publish_origins
        source = request.getHeader(b"origin")
        if source is None:
            referer = request.getHeader(b"referer")
            if referer is not None:
                parts = urlsplit(referer.decode("latin-1"))
                source = f"{parts.scheme}://{parts.netloc}".encode("latin-1")
        if source is None:
            raise _Forbidden("cookie-authenticated publish without Origin or Referer header")
        origin = source.decode("latin-1").rstrip("/")
        if "*" not in allowed and origin not in allowed:
            raise _Forbidden(f"origin {origin} is not allowed to publish (see publish_origins)")

    # -- subscribe --------------------------------------------------------

    async def subscribe(self, request: IRequest, sink: RequestSink) -> bytes | None:
        self.cors.apply(request)
        request.setHeader(b"Link", self.discovery_link(request))
        try:
            pairs = self.subscribe_pairs(request)
            dialect = detect({name for name, _ in pairs})
            if dialect is DRAFT07 and not self.config.accepts_draft07:
                raise RequestError(
                    "this hub speaks only Mercure 1.0 (draft-08): subscribe with match=..."
                )
            if dialect is DRAFT08 and not self.config.accepts_draft08:
                raise RequestError("this hub speaks only draft-07: subscribe with topic=...")
            params = dialect.parse_subscribe(
                pairs,
                base_url=self.hub_url(request),
                max_matchers=self.config.max_matchers,
                max_length=self.config.max_matcher_length,
            )
            header = request.getHeader(b"last-event-id")
            last_event_id = header.decode("utf-8") if header is not None else params.last_event_id
            grants = await self.grants_for(
                request, "subscriber", dialect, dialect.token_in_query
            )
        except RequestError as e:
            return answer_error(request, e.status, str(e))
        except UnicodeDecodeError:
            return answer_error(request, 400, "Last-Event-ID header is not valid UTF-8")
        except TokenError as e:
            return self.token_error(request, e)
        if grants is None:
            if not self.config.anonymous:
                return self.unauthorized(
                    request, "this hub requires a subscriber token (anonymous access is off)"
                )
            grants = ANONYMOUS
        if request.method == b"HEAD":
            start_stream(request)
            return b""

        client = _client_address(request)
        refusal = self.limits.refusal(len(self.hub.subscribers), client)
        if refusal is not None:
            request.setHeader(b"Retry-After", b"10")
            return answer_error(request, 429, refusal)
        subscriber = Subscriber(
            id=new_event_id(),
            matchers=params.matchers,
            match_types=params.match_types,
            grants=grants,
            dialect=dialect.name,
            sink=sink,
            clock=self.clock,
            on_close=self._closed if self.limits.per_client else self.hub.unsubscribe,
            max_buffer=self.config.max_subscriber_buffer,
            dispatch_timeout=self.config.dispatch_timeout,
        )
        self.limits.opened(subscriber.id, client)
        started = False

        def before_replay(response_last_event_id: str | None) -> None:
            nonlocal started
            started = True
            if response_last_event_id is not None:
                request.setHeader(
                    dialect.last_event_id_header, response_last_event_id.encode("utf-8")
                )
            start_stream(request)
            sink.register_producer(subscriber)

        try:
            await self.hub.subscribe(subscriber, last_event_id, before_replay)
        except CancelledError:  # the client left while history was read
            subscriber.connection_lost()
            return None
        except Exception:
            self.log.failure("subscription of {subscriber} failed", subscriber=subscriber.id)
            if started:
                subscriber.close("internal error")
                return None
            subscriber.connection_lost("history unavailable")
            return answer_error(request, 503, "history unavailable: retry later")
        # From now on a client that leaves ends the subscriber; until now it
        # cancelled this coroutine (render_subscribe), replay included.
        if not subscriber.closed:
            sink.on_lost = subscriber.connection_lost
        # The stream is open: this coroutine ends here and keeps nothing
        # alive; the subscriber finishes the response when its stream ends.
        return None

    def _closed(self, subscriber: Subscriber, reason: str) -> None:
        self.limits.closed(subscriber.id)
        self.hub.unsubscribe(subscriber, reason)

    def render_subscribe(self, request: IRequest) -> object:
        """Serve a subscription on plain twisted.web (see ``HubResource``).

        The coroutine answers an error (bytes, then the response is
        finished) or opens the stream and returns None; a client that leaves
        while it runs cancels it.
        """
        # One notifyFinish per stream, the sink's: while the coroutine runs,
        # a client that leaves cancels it; once the stream is open the sink
        # tells the subscriber instead.  (A second hook kept for the life of
        # every idle stream cost ~0.5 KB each.)
        sink = RequestSink(request)
        d = Deferred.fromCoroutine(self.subscribe(request, sink))
        if sink.on_lost is None and not d.called:
            sink.on_lost = d.cancel

        def answered(result: bytes | None) -> None:
            if result is None or _finished(request):
                return
            request.write(result)
            request.finish()  # type: ignore[attr-defined]

        def failed(failure: Failure) -> None:
            if failure.check(CancelledError):
                return
            self.log.failure("subscribe request failed", failure)
            if not _finished(request):
                request.setResponseCode(500)
                request.finish()  # type: ignore[attr-defined]

        d.addCallbacks(answered, failed)
        return NOT_DONE_YET

    def subscribe_pairs(self, request: IRequest) -> list[tuple[str, str]]:
        pairs = parse_form(query_of(request.uri), "query")
        if request.method == b"QUERY":
            body = self.read_body(request)
            if body:
                if _media_type(request) != FORM_TYPE:
                    raise RequestError(
                        "a QUERY body must be application/x-www-form-urlencoded", 415
                    )
                body_pairs = parse_form(body, "body")
                # The query's last_event_id wins over the body's.
                if any(n == "last_event_id" for n, _ in pairs):
                    body_pairs = [(n, v) for n, v in body_pairs if n != "last_event_id"]
                pairs += body_pairs
        return pairs

    def read_body(self, request: IRequest) -> bytes:
        """The body, at most ``max_body_size`` bytes (413 beyond).

        ``HubSite`` already stops storing an oversized body as it arrives;
        the length checks here also cover requests from another Site.
        """
        limit = self.config.max_body_size
        length = request.getHeader(b"content-length")
        body = b""
        too_large = getattr(request, "body_too_large", False) or (
            length is not None and length.isdigit() and int(length) > limit
        )
        if not too_large and request.content is not None:
            body = request.content.read(limit + 1)
            too_large = len(body) > limit
        if too_large:
            raise RequestError(f"request body larger than {limit} bytes", 413)
        return body

    # -- publish ----------------------------------------------------------

    # Served by HubResource directly, not through Klein (see web/_root.py).
    async def publish(self, request: IRequest) -> Any:
        self.cors.apply(request)
        request.setHeader(b"Link", self.discovery_link(request))
        try:
            if _media_type(request, default=FORM_TYPE) != FORM_TYPE:
                raise RequestError(
                    "publish with Content-Type: application/x-www-form-urlencoded", 415
                )
            update = self.parse_update(parse_form(self.read_body(request)), request)
            grants = await self.grants_for(
                request, "publisher", None, self.config.accepts_draft07
            )
        except RequestError as e:
            return answer_error(request, e.status, str(e))
        except TokenError as e:
            return self.token_error(request, e)
        except _Forbidden as e:
            return self.forbidden(request, str(e))
        if grants is None:
            if not self.config.keys_for("publisher"):
                return self.unauthorized(request, "this hub has no publisher key configured")
            return self.unauthorized(request, "publishing requires a publisher token")
        for topic in update.topics:
            if not grants.may_publish(topic):
                return self.forbidden(request, forbidden_publish(topic))
        try:
            stored = await self.hub.publish(update)
        except TransportUnavailable as e:
            return answer_error(request, 503, f"update not stored: {e}")
        if debug_logged():
            self.log.debug(
                "published {id} to {topics} ({size} bytes)",
                id=stored.id, topics=list(stored.topics), size=len(stored.data),
            )
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return stored.id.encode("utf-8")

    def parse_update(self, pairs: list[tuple[str, str]], request: IRequest) -> Update:
        """Every publish rule of both drafts; raises RequestError."""
        fields: dict[str, str] = {}
        topics: list[str] = []
        for name, value in pairs:
            if name == "topic":
                topics.append(value)
            else:
                fields.setdefault(name, value)
        if not topics:
            raise RequestError("missing topic field: an update needs at least one topic")
        if len(topics) > self.config.max_topics:
            raise RequestError(f"too many topics: {len(topics)} > {self.config.max_topics}", 413)
        hub_url = self.hub_url(request)
        for topic in topics:
            if not topic:
                raise RequestError("empty topic")
            bad = forbidden_character(topic)
            if bad:
                raise RequestError(f"topic {topic!r} contains a forbidden character ({bad})")
            if topic == "*":
                raise RequestError("topic '*' is reserved for the wildcard matcher")
            if addresses_reserved_namespace(topic, hub_url):
                raise RequestError(
                    f"topic {topic!r} is in the hub's reserved namespace {self.hub_path}/"
                )
        id = fields.get("id")
        if id is not None:
            if not id:
                raise RequestError("empty id")
            if id.startswith("#"):
                raise RequestError("id must not start with '#'")
            if id == "earliest":
                raise RequestError("id 'earliest' is reserved")
            bad = forbidden_character(id)
            if bad:
                raise RequestError(f"id contains a forbidden character ({bad})")
        type = fields.get("type") or None
        if type is not None:
            if type == "mercure":
                raise RequestError("type 'mercure' is reserved for events the hub generates")
            bad = forbidden_character(type)
            if bad:
                raise RequestError(f"type contains a forbidden character ({bad})")
        retry = fields.get("retry")
        if retry is not None and not RETRY_DIGITS.match(retry):
            raise RequestError("retry must consist only of ASCII digits")
        return Update(
            topics=tuple(topics),
            id=id or new_event_id(),
            data=fields.get("data", ""),
            private="private" in fields,
            type=type,
            retry=int(retry) if retry else None,
        )

    # -- CORS preflight ---------------------------------------------------

    @app.route(HUB_PATH, methods=["OPTIONS"])
    @app.route(HUB_PATH + "/subscriptions", methods=["OPTIONS"], branch=True)
    def preflight(self, request: IRequest) -> bytes:
        return self.cors.preflight(request)

    # -- subscription API -------------------------------------------------

    @app.route(HUB_PATH + "/subscriptions", methods=["GET"], branch=True)
    async def subscriptions(self, request: IRequest) -> Any:
        self.cors.apply(request)
        if not self.config.subscriptions:
            return answer_error(request, 404, "the subscription API is disabled on this hub")
        raw_path = request.path.decode("latin-1")
        prefix = HUB_PATH + "/subscriptions"
        rest = raw_path[len(prefix):].strip("/")
        try:
            grants = await self.grants_for(request, "subscriber", None, self.config.accepts_draft07)
            if grants is None:
                return self.unauthorized(request, "the subscription API requires a token")
            dialect: Dialect = DRAFT08 if grants.dialect == "08" else DRAFT07
            try:
                segments = [unquote_to_bytes(s).decode("utf-8") for s in rest.split("/")] if rest else []
            except UnicodeDecodeError:
                raise RequestError("subscription path is not valid UTF-8") from None
            match_type, match, subscriber_id = dialect.parse_api_path(segments)
        except RequestError as e:
            return answer_error(request, e.status, str(e))
        except TokenError as e:
            return self.token_error(request, e)
        # The resource in the relative form subscription-event topics use.
        topic = self.hub_path + raw_path[len(HUB_PATH):]
        if not grants.may_read_topic(topic):
            return self.forbidden(request, f"token has no subscribe grant for {topic}")

        try:
            records = await self.hub.subscriptions()
        except TransportUnavailable as e:
            return answer_error(request, 503, f"subscriptions unavailable: {e}")
        documents = [
            dialect.subscription_document(record, self.hub_path)
            for record in records
            if record.dialect == dialect.name
            and (subscriber_id is None or record.subscriber == subscriber_id)
            and (match is None or (record.pattern == match and record.match_type == match_type))
        ]
        last_event_id = self.hub.last_event_id()
        if subscriber_id is not None:
            if not documents:
                return answer_error(request, 404, "no such active subscription")
            body: dict[str, Any] = documents[0]
            if dialect is DRAFT07:
                body["lastEventID"] = last_event_id
        else:
            body = dialect.collection_document(topic, documents, last_event_id)
        request.setHeader(b"Content-Type", dialect.subscriptions_content_type)
        request.setHeader(b"Cache-Control", b"must-revalidate")
        request.setHeader(b"ETag", f'"{last_event_id}"'.encode("utf-8"))
        link = f'<{self.hub_url(request)}>; rel="mercure"; last-event-id="{last_event_id}"'
        if dialect is DRAFT08:
            link += '; type="mercure"; content-type="application/json"'
        request.setHeader(b"Link", link.encode("utf-8"))
        return json.dumps(body).encode("utf-8")

    # -- debugging page ---------------------------------------------------

    @app.route(HUB_PATH + "/ui", methods=["GET", "HEAD"])
    def ui_root(self, request: IRequest) -> bytes:
        if not self.config.debug_ui:
            return answer_error(request, 404, "the debugging page is disabled (debug_ui)")
        request.setResponseCode(308)
        request.setHeader(b"Location", (HUB_PATH + "/ui/").encode("ascii"))
        return b""

    @app.route(HUB_PATH + "/ui/", methods=["GET", "HEAD"], branch=True)
    def ui(self, request: IRequest) -> bytes:
        if not self.config.debug_ui:
            return answer_error(request, 404, "the debugging page is disabled (debug_ui)")
        name = request.path.decode("latin-1")[len(HUB_PATH + "/ui/"):]
        found = ui_file(name)
        if found is None:
            return answer_error(request, 404, f"no such file {name!r} in the debugging page")
        content_type, body = found
        request.setHeader(b"Content-Type", content_type)
        request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Cache-Control", b"no-cache")
        return body

    # -- discovery --------------------------------------------------------

    @app.route(METADATA_PATH, methods=["GET", "HEAD"])
    def metadata(self, request: IRequest) -> bytes:
        self.cors.apply(request)
        if not self.config.accepts_draft08:
            return answer_error(request, 404, "this hub speaks draft-07 only: no metadata")
        document: dict[str, Any] = {
            "resource": self.hub_url(request),
            "authorization_details_types_supported": [MERCURE_DETAIL_TYPE],
            "bearer_methods_supported": ["header"],
            "mercure_cookie": self.config.cookie_name or DRAFT08.default_cookie,
            "mercure_matcher_types_supported": ["exact", "urlpattern"],
        }
        if self.config.subscriptions:
            document["mercure_subscriptions"] = True
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"max-age=300")
        return json.dumps(document).encode("utf-8")


def _media_type(request: IRequest, default: bytes = b"") -> bytes:
    """The request's media type, lower case, without parameters."""
    return (request.getHeader(b"content-type") or default).split(b";")[0].strip().lower()


def _finished(request: IRequest) -> bool:
    return bool(getattr(request, "finished", False) or getattr(request, "_disconnected", False))


class _Forbidden(Exception):
    """A valid token presented in a way this request may not use."""


def _client_address(request: IRequest) -> str:
    """The peer's address (a reverse proxy's, behind one)."""
    address = request.getClientAddress()
    return str(getattr(address, "host", address))
