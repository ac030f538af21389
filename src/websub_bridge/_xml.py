"""Untrusted XML, parsed safely: the one XML entry point of the bridge.

Feeds and discovery documents come from anywhere. ``defusedxml`` refuses
every entity declaration (billion laughs, quadratic blowup, external
entities: XXE) and external references; a DOCTYPE without entities (old RSS
0.91 feeds have one) is still read. On top of that, trees deeper than
:data:`MAX_DEPTH` are refused so that nothing walking them can exhaust the
stack.
"""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

__all__ = ["MAX_DEPTH", "UnsafeXML", "local_name", "namespace", "parse_untrusted", "xml_base"]

MAX_DEPTH = 256
XML_NS = "http://www.w3.org/XML/1998/namespace"


class UnsafeXML(ValueError):
    """The document is not well-formed XML, or uses what we refuse."""


def parse_untrusted(body: bytes) -> ET.Element:
    """The root element of ``body``, or :class:`UnsafeXML` saying why not."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise UnsafeXML(f"XML refused: {type(e).__name__} (entities and external references are not allowed)") from None
    except ET.ParseError as e:
        raise UnsafeXML(f"not well-formed XML ({e})") from None
    if not isinstance(root, ET.Element):
        raise UnsafeXML("not an XML document")
    _check_depth(root)
    return root


def _check_depth(root: ET.Element) -> None:
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UnsafeXML(f"XML nested deeper than {MAX_DEPTH} elements")
        stack.extend((child, depth + 1) for child in element)


def namespace(tag: str) -> str:
    """The namespace URI of a ``{uri}local`` tag ('' for none)."""
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def local_name(tag: str) -> str:
    """The local part of a ``{uri}local`` tag."""
    return tag.rsplit("}", 1)[-1]


def xml_base(element: ET.Element, base: str) -> str:
    """``base`` updated with the element's ``xml:base`` (Atom allows it)."""
    value = element.get(f"{{{XML_NS}}}base")
    return urllib.parse.urljoin(base, value.strip()) if value else base
