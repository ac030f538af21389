"""Atom and RSS entries, for follows in ``mode = "entries"``.

A delivery of a feed becomes one Mercure update per entry (Atom) or item
(RSS 2.0, 0.9x, 1.0/RDF) not seen before. To tell "seen before", every entry
needs a stable id: ``atom:id``, the RSS ``guid``, else its link, else a
SHA-256 of the serialized element. Each entry is re-serialized as a
standalone XML document (namespace declarations included, prefixes as the
feed spelled them) so that a browser can ``DOMParser`` it on its own.

Feeds are untrusted: parsing goes through :mod:`websub_bridge._xml`
(``defusedxml``: no entities, no external references, bounded depth).
"""

from __future__ import annotations

import hashlib
import urllib.parse
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import attrs

from ._xml import UnsafeXML, local_name, namespace, parse_untrusted, xml_base

__all__ = ["Entry", "FeedError", "parse_entries", "serialize"]

ATOM_NS = "http://www.w3.org/2005/Atom"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RSS1_NS = "http://purl.org/rss/1.0/"
DC_NS = "http://purl.org/dc/elements/1.1/"
XML_NS = "http://www.w3.org/XML/1998/namespace"

# Media types that are certainly not feeds: refused without parsing.
_NOT_FEEDS = ("text/html", "application/json", "text/css", "text/javascript")


class FeedError(ValueError):
    """The body is not a feed we can split into entries (or is unsafe XML)."""


@attrs.frozen
class Entry:
    """One entry of a feed."""

    id: str  # atom:id, RSS guid, else link, else sha256 of ``xml``
    xml: str  # the entry/item element as a standalone XML document
    title: str | None
    link: str | None
    updated: str | None


def parse_entries(
    body: bytes, content_type: str | None, *, base: str | None = None
) -> list[Entry]:
    """The entries of an Atom or RSS document, in document order.

    ``base`` (the topic URL) resolves relative links. Raises
    :class:`FeedError` for a document that is not a feed, not well-formed,
    or uses entities or external references (billion laughs, XXE).
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media.startswith(_NOT_FEEDS) or media.startswith(("image/", "audio/", "video/")):
        raise FeedError(f"not a feed: {media}")
    try:
        root = parse_untrusted(body)
    except UnsafeXML as e:
        raise FeedError(str(e)) from None
    root_base = xml_base(root, base or "")
    if root.tag == f"{{{ATOM_NS}}}feed":
        items = [(e, xml_base(e, root_base)) for e in root if e.tag == f"{{{ATOM_NS}}}entry"]
        return [_atom_entry(e, b) for e, b in items]
    if root.tag == f"{{{ATOM_NS}}}entry":
        return [_atom_entry(root, root_base)]
    if local_name(root.tag) == "rss" and namespace(root.tag) == "":
        items = [
            (item, xml_base(channel, root_base))
            for channel in root
            if channel.tag == "channel"
            for item in channel
            if item.tag == "item"
        ]
        return [_rss_item(item, b) for item, b in items]
    if root.tag == f"{{{RDF_NS}}}RDF":
        items = [(e, root_base) for e in root if e.tag == f"{{{RSS1_NS}}}item"]
        return [_rss_item(item, b) for item, b in items]
    raise FeedError(f"not an Atom or RSS feed (root element {local_name(root.tag)!r})")


def _text(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    text = "".join(element.itertext()).strip()
    return text or None


def _atom_entry(entry: ET.Element, base: str) -> Entry:
    link: str | None = None
    for candidate in entry.findall(f"{{{ATOM_NS}}}link"):
        href = candidate.get("href")
        if href and candidate.get("rel", "alternate") == "alternate":
            link = _resolve(xml_base(candidate, base), href)
            break
    xml = serialize(entry, base or None)
    updated = _text(entry.find(f"{{{ATOM_NS}}}updated")) or _text(
        entry.find(f"{{{ATOM_NS}}}published")
    )
    return Entry(
        id=_text(entry.find(f"{{{ATOM_NS}}}id")) or link or _digest(xml),
        xml=xml,
        title=_text(entry.find(f"{{{ATOM_NS}}}title")),
        link=link,
        updated=updated,
    )


def _rss_item(item: ET.Element, base: str) -> Entry:
    ns = namespace(item.tag)

    def child(name: str) -> ET.Element | None:
        return item.find(f"{{{ns}}}{name}" if ns else name)

    raw_link = _text(child("link")) or item.get(f"{{{RDF_NS}}}about")
    link = _resolve(base, raw_link) if raw_link else None
    xml = serialize(item, base or None)
    updated = _text(child("pubDate")) or _text(item.find(f"{{{DC_NS}}}date"))
    return Entry(
        id=_text(child("guid")) or link or _digest(xml),
        xml=xml,
        title=_text(child("title")),
        link=link,
        updated=updated,
    )


def _resolve(base: str, href: str) -> str:
    return urllib.parse.urljoin(base, href.strip()) if base else href.strip()


def _digest(xml: str) -> str:
    return "sha256:" + hashlib.sha256(xml.encode("utf-8")).hexdigest()


# -- serialization -----------------------------------------------------------


def serialize(element: ET.Element, base: str | None = None) -> str:
    """``element`` as a standalone XML document (no XML declaration).

    ``base``, the absolute base URL in effect for the element in its feed,
    is written as its ``xml:base`` so relative links keep their meaning.

    ElementTree keeps namespace URIs, not the feed's prefixes, so they are
    chosen here: the element's own namespace becomes the default namespace
    (unless some element of the subtree has no namespace, which a default
    would capture), the usual feed namespaces get their usual prefixes, and
    every namespace used is declared on the root of the new document.
    """
    uris: list[str] = []
    unqualified = False
    for node in element.iter():
        uri = namespace(node.tag)
        if uri:
            if uri not in uris:
                uris.append(uri)
        else:
            unqualified = True
        for name in node.keys():
            attr_uri = namespace(name)
            if attr_uri and attr_uri != XML_NS and attr_uri not in uris:
                uris.append(attr_uri)
    own = namespace(element.tag)
    default = own if own and not unqualified else None
    prefixes: dict[str, str] = {XML_NS: "xml"}
    taken = {"xml"}
    for uri in uris:
        if uri == default:
            continue
        prefix = _KNOWN_PREFIXES.get(uri)
        if prefix is None or prefix in taken:
            prefix = f"ns{len(taken)}"
            while prefix in taken:
                prefix += "_"
        prefixes[uri] = prefix
        taken.add(prefix)
    declarations = []
    if default is not None:
        declarations.append(f" xmlns={quoteattr(default)}")
    for uri, prefix in prefixes.items():
        if uri != XML_NS:
            declarations.append(f" xmlns:{prefix}={quoteattr(uri)}")
    if base:
        declarations.append(f" xml:base={quoteattr(base, _ATTR_ENTITIES)}")
    out: list[str] = []
    _write(element, out, prefixes, default, "".join(declarations), skip_base=bool(base))
    return "".join(out)


_KNOWN_PREFIXES = {
    ATOM_NS: "atom",
    RDF_NS: "rdf",
    DC_NS: "dc",
    RSS1_NS: "rss",
    "http://purl.org/rss/1.0/modules/content/": "content",
    "http://search.yahoo.com/mrss/": "media",
    "http://www.w3.org/1999/xhtml": "xhtml",
    "http://www.itunes.com/dtds/podcast-1.0.dtd": "itunes",
    "http://purl.org/syndication/thread/1.0": "thr",
}


# Characters the XML parser would otherwise normalise away on re-reading.
_TEXT_ENTITIES = {"\r": "&#13;"}
_ATTR_ENTITIES = {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def _name(tag: str, prefixes: dict[str, str], default: str | None, *, attribute: bool) -> str:
    uri = namespace(tag)
    local = local_name(tag)
    if not uri:
        return local
    if uri == default and not attribute:
        return local
    return f"{prefixes[uri]}:{local}"


def _write(
    element: ET.Element,
    out: list[str],
    prefixes: dict[str, str],
    default: str | None,
    declarations: str = "",
    *,
    skip_base: bool = False,
) -> None:
    # Depth is bounded by _xml.MAX_DEPTH, so recursion is safe here.
    tag = _name(element.tag, prefixes, default, attribute=False)
    attributes = "".join(
        f" {_name(name, prefixes, default, attribute=True)}={quoteattr(value, _ATTR_ENTITIES)}"
        for name, value in element.items()
        if not (skip_base and name == f"{{{XML_NS}}}base")
    )
    out.append(f"<{tag}{declarations}{attributes}")
    if not len(element) and not element.text:
        out.append("/>")
    else:
        out.append(">")
        if element.text:
            out.append(escape(element.text, _TEXT_ENTITIES))
        for child in element:
            _write(child, out, prefixes, default)
            if child.tail:
                out.append(escape(child.tail, _TEXT_ENTITIES))
        out.append(f"</{tag}>")
