"""WebSub discovery (section 4): which hubs serve a topic, and its self URL.

The order is the specification's, stopping at the first mechanism that
names a hub:

1. ``HEAD`` the topic: its ``Link`` headers, when they name a hub *and* a
   ``rel=self``, settle it without downloading the document;
2. otherwise ``GET`` it: ``Link`` headers first, then the document's own
   links: ``<link>`` elements of the HTML ``<head>`` only (section 8.1: a
   ``<link>`` a user slipped into the body must not choose our hub), or the
   feed-level Atom ``<link>`` / RSS ``<atom:link>`` elements of an XML feed
   (whatever the XML media type it is served as).

Redirects of the topic are followed (each hop guarded by the client), and
relative URLs are resolved against the URL finally fetched. Hubs come
https first (section 8.2), then http, each in document order.

The parsers are pure functions, so they are property-tested on their own.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Sequence
from html.parser import HTMLParser

import attrs
from twisted.logger import Logger

from ._media import charset_of
from ._xml import UnsafeXML, local_name, parse_untrusted, xml_base
from .client import OutboundClient, OutboundError, Response, loggable_origin, loggable_url

__all__ = [
    "Discovery",
    "DiscoveryError",
    "document_kind",
    "Link",
    "discover",
    "links_from_feed",
    "links_from_html",
    "parse_link_header",
]

Link = tuple[str, frozenset[str]]  # (absolute URL, lower-case rel tokens)

ATOM_NS = "http://www.w3.org/2005/Atom"
# What we would like to receive: a feed first (its self link is the
# representation the hub will deliver), then HTML, then anything.
DEFAULT_ACCEPT = (
    "application/atom+xml, application/rss+xml;q=0.9, application/xml;q=0.8, "
    "text/xml;q=0.8, text/html;q=0.7, */*;q=0.5"
)

log = Logger()


class DiscoveryError(Exception):
    """No hub could be discovered for a topic; the message says where it looked."""


@attrs.frozen
class Discovery:
    """What discovery found for a topic."""

    topic: str  # the URL finally fetched (after redirects)
    self_url: str | None  # the advertised rel=self: what hub.topic must be
    hubs: tuple[str, ...]  # https first, then http, in document order
    content_type: str | None  # Content-Type of the document fetched


# -- Link headers (RFC 8288) -------------------------------------------------

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WS = " \t"


def parse_link_header(values: Sequence[str], base: str) -> list[Link]:
    """Every link of one or more ``Link`` header values that has a ``rel``.

    Handles several headers and comma-separated links, ``rel`` with several
    space-separated tokens, quoted or bare parameter values (commas and
    semicolons inside quotes), and resolves targets against ``base``. Only
    the first ``rel`` of a link counts (RFC 8288 section 3.3); a link with an
    ``anchor`` naming another resource is not about this one and is skipped.
    A malformed link is skipped up to the next comma, never fatal.
    """
    links: list[Link] = []
    for value in values:
        for target, params in _link_values(value):
            rel = params.get("rel")
            if rel is None:
                continue
            anchor = params.get("anchor")
            if anchor is not None and urllib.parse.urljoin(base, anchor) != base:
                continue
            rels = frozenset(token.lower() for token in rel.split())
            if rels:
                links.append((urllib.parse.urljoin(base, target.strip()), rels))
    return links


def _link_values(value: str) -> Iterable[tuple[str, dict[str, str]]]:
    pos, end = 0, len(value)
    while pos < end:
        while pos < end and value[pos] in _WS + ",":
            pos += 1
        if pos >= end:
            return
        if value[pos] != "<":
            pos = _after_comma(value, pos)
            continue
        close = value.find(">", pos + 1)
        if close < 0:
            return
        target = value[pos + 1 : close]
        pos = close + 1
        params: dict[str, str] = {}
        valid = True
        while True:
            pos = _skip_ws(value, pos)
            if pos >= end:
                break
            if value[pos] == ",":
                pos += 1
                break
            if value[pos] != ";":
                valid = False
                pos = _after_comma(value, pos)
                break
            pos = _skip_ws(value, pos + 1)
            start = pos
            while pos < end and value[pos] in _TOKEN_CHARS:
                pos += 1
            name = value[start:pos].lower()
            pos = _skip_ws(value, pos)
            param = ""
            if pos < end and value[pos] == "=":
                pos = _skip_ws(value, pos + 1)
                if pos < end and value[pos] == '"':
                    param, pos = _quoted(value, pos)
                else:
                    start = pos
                    while pos < end and value[pos] not in ";,":
                        pos += 1
                    param = value[start:pos].strip(_WS)
            if name and name not in params:
                params[name] = param
        if valid:
            yield target, params


def _skip_ws(value: str, pos: int) -> int:
    while pos < len(value) and value[pos] in _WS:
        pos += 1
    return pos


def _quoted(value: str, pos: int) -> tuple[str, int]:
    """A quoted-string starting at ``value[pos] == '"'``: (content, after)."""
    out: list[str] = []
    pos += 1
    while pos < len(value):
        char = value[pos]
        if char == "\\" and pos + 1 < len(value):
            out.append(value[pos + 1])
            pos += 2
            continue
        if char == '"':
            return "".join(out), pos + 1
        out.append(char)
        pos += 1
    return "".join(out), pos


def _after_comma(value: str, pos: int) -> int:
    """The position after the next comma outside quotes and ``<...>``."""
    quoted = bracketed = False
    while pos < len(value):
        char = value[pos]
        if quoted:
            if char == "\\":
                pos += 1
            elif char == '"':
                quoted = False
        elif bracketed:
            bracketed = char != ">"
        elif char == '"':
            quoted = True
        elif char == "<":
            bracketed = True
        elif char == ",":
            return pos + 1
        pos += 1
    return pos


# -- HTML <head> -------------------------------------------------------------

# Elements that may appear in a <head>: any other start tag (or text)
# implies the body has begun, as in the HTML parsing algorithm.
_HEAD_ELEMENTS = frozenset(
    {"html", "head", "title", "meta", "link", "style", "script", "noscript", "base", "template"}
)
_TEXT_ELEMENTS = frozenset({"title", "style", "script", "noscript", "template"})


class _HeadLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base_href: str | None = None
        self.raw: list[tuple[str, str]] = []
        self.done = False
        self._text_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        if tag not in _HEAD_ELEMENTS:
            self.done = True
            return
        values = {name: value or "" for name, value in reversed(attrs)}
        if tag == "base" and self.base_href is None and "href" in values:
            self.base_href = values["href"].strip()
        elif tag == "link" and "href" in values and "rel" in values:
            self.raw.append((values["href"].strip(), values["rel"]))
        elif tag in _TEXT_ELEMENTS:
            self._text_depth += 1
            if tag not in self.CDATA_CONTENT_ELEMENTS:
                # <title> is text (RCDATA), and <noscript>/<template> hold no
                # live links for a scripting browser: read their content as
                # text up to the end tag, as html.parser does for <script>.
                self.set_cdata_mode(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # HTML ignores the "/" of "<title/>" or "<head/>": they open the
        # element. html.parser does not read "<script/>" as opening a
        # script, so that one opens nothing here either.
        if tag not in self.CDATA_CONTENT_ELEMENTS:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("head", "html"):
            self.done = True
        elif tag in _TEXT_ELEMENTS and self._text_depth:
            self._text_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.done and not self._text_depth and data.strip():
            self.done = True


def links_from_html(text: str, base: str) -> list[Link]:
    """The ``<link rel href>`` elements of the document's ``<head>``.

    ``<head>`` ends where the HTML parsing algorithm ends it: ``</head>``,
    ``<body>``, any element that cannot be in a head, or text. A
    ``<base href>`` in the head changes what relative links resolve against.
    Malformed HTML never raises: whatever could be read is returned.
    """
    parser = _HeadLinks()
    try:
        # Fed in slices so a long page stops being parsed where its head ends.
        for start in range(0, len(text), 8192):
            parser.feed(text[start : start + 8192])
            if parser.done:
                break
        else:
            parser.close()
    except Exception:  # html.parser is tolerant; never let a page break us
        log.debug("websub discovery: HTML parser gave up at {origin}", origin=loggable_origin(base))
    if parser.base_href:
        base = urllib.parse.urljoin(base, parser.base_href)
    links: list[Link] = []
    for href, rel in parser.raw:
        rels = frozenset(token.lower() for token in rel.split())
        if rels:
            links.append((urllib.parse.urljoin(base, href), rels))
    return links


# -- Atom and RSS ------------------------------------------------------------


def links_from_feed(body: bytes, base: str) -> list[Link]:
    """The feed-level Atom links of an Atom feed or entry, or of an RSS channel.

    Only links of the feed itself count (an entry's ``rel=self`` is not the
    topic's): children ``atom:link`` of the Atom root, of an RSS ``<rss>``
    root or of its ``<channel>`` (RSS 2.0 and RSS 1.0 alike). ``xml:base``
    is honoured. Raises :class:`DiscoveryError` for XML that is malformed or
    unsafe (entities, external references).
    """
    try:
        root = parse_untrusted(body)
    except UnsafeXML as e:
        raise DiscoveryError(str(e)) from None
    base = xml_base(root, base)
    containers = [(root, base)] + [
        (child, xml_base(child, base)) for child in root if local_name(child.tag) == "channel"
    ]
    links: list[Link] = []
    for container, container_base in containers:
        for child in container:
            if child.tag != f"{{{ATOM_NS}}}link":
                continue
            href = child.get("href")
            if href is None:
                continue
            rels = frozenset(token.lower() for token in child.get("rel", "alternate").split())
            target = urllib.parse.urljoin(xml_base(child, container_base), href.strip())
            links.append((target, rels))
    return links


# -- discovery ---------------------------------------------------------------


def _is_web_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _choose(links: Sequence[Link]) -> tuple[tuple[str, ...], str | None]:
    """(hubs https first then http, in order, without repeats; first self)."""
    hubs: list[str] = []
    self_url: str | None = None
    for url, rels in links:
        if not _is_web_url(url):
            continue
        if "hub" in rels and url not in hubs:
            hubs.append(url)
        if "self" in rels and self_url is None:
            self_url = url
    hubs.sort(key=lambda hub: not hub.startswith("https:"))
    return tuple(hubs), self_url


def _header_links(response: Response) -> list[Link]:
    raw = response.headers.getRawHeaders(b"link") or []
    return parse_link_header([v.decode("latin-1") for v in raw], response.url)


def _content_type(response: Response) -> str | None:
    raw = response.headers.getRawHeaders(b"content-type")
    return raw[0].decode("latin-1").strip() if raw else None


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def document_kind(content_type: str | None, body: bytes) -> str | None:
    """``"html"``, ``"xml"`` or None: which embedded links a body may carry.

    By media type; a missing or generic one (``text/plain``,
    ``application/octet-stream``) is sniffed from the first bytes.
    """
    media = _media_type(content_type)
    if media in ("text/html", "application/xhtml+xml"):
        return "html"
    if media in ("text/xml", "application/xml") or media.endswith("+xml"):
        return "xml"
    if media and media not in ("text/plain", "application/octet-stream"):
        return None
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"
    if head.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf:rdf")):
        return "xml"
    return None


def _body_links(response: Response) -> list[Link]:
    content_type = _content_type(response)
    kind = document_kind(content_type, response.body)
    if kind == "html":
        try:
            text = response.body.decode(charset_of(content_type), errors="replace")
        except LookupError:  # an unknown charset name
            text = response.body.decode("utf-8", errors="replace")
        return links_from_html(text, response.url)
    if kind == "xml":
        return links_from_feed(response.body, response.url)
    return []


async def discover(
    client: OutboundClient,
    topic_url: str,
    *,
    max_redirects: int = 5,
    accept: str = DEFAULT_ACCEPT,
) -> Discovery:
    """Discover the hubs and the self URL of ``topic_url`` (section 4).

    Raises :class:`DiscoveryError` when the topic cannot be fetched or names
    no hub; the client's :class:`~websub_bridge.guard.GuardError` (a
    refused URL or address, a body too large) passes through as it is.
    """
    headers = {"Accept": accept}
    head: Response | None
    try:
        head = await client.request(
            "HEAD", topic_url, headers=headers, follow_redirects=max_redirects
        )
    except OutboundError:  # some servers break on HEAD: GET decides
        head = None
    if head is not None and 200 <= head.status < 300:
        hubs, self_url = _choose(_header_links(head))
        if hubs and self_url is not None:
            return Discovery(head.url, self_url, hubs, _content_type(head))
    try:
        got = await client.request(
            "GET", topic_url, headers=headers, follow_redirects=max_redirects
        )
    except OutboundError as e:
        raise DiscoveryError(f"cannot fetch the topic: {e}") from None
    if not 200 <= got.status < 300:
        raise DiscoveryError(f"{loggable_url(got.url)} answered {got.status}")
    header_hubs, header_self = _choose(_header_links(got))
    hubs, self_url = header_hubs, header_self
    if not hubs or self_url is None:
        try:
            body_hubs, body_self = _choose(_body_links(got))
        except DiscoveryError as e:
            if not hubs:
                raise DiscoveryError(f"no hub found at {loggable_url(got.url)}: {e}") from None
            body_hubs, body_self = (), None
        if not hubs:
            hubs, self_url = body_hubs, body_self or header_self
        else:
            self_url = body_self
    if not hubs:
        raise DiscoveryError(
            f"no hub advertised at {loggable_url(got.url)} (Link headers, HTML <head> "
            "links and feed links were checked)"
        )
    log.info(
        "websub discovery at {origin}: {count} hub(s), self link {has_self}",
        origin=loggable_origin(got.url),
        count=len(hubs),
        has_self=self_url is not None,
    )
    return Discovery(got.url, self_url, hubs, _content_type(got))
