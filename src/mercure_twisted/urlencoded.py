"""``application/x-www-form-urlencoded`` pairs as the WHATWG URL standard parses them.

Only ``&`` separates pairs (``;`` is data), ``+`` is a space, and a name
without ``=`` has an empty value.  Names and values come back as
percent-decoded bytes: deciding how strictly to decode them as text is the
caller's business (the web layer refuses invalid UTF-8 with a 400).
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

__all__ = ["parse_pairs", "query_of"]


def parse_pairs(raw: bytes) -> list[tuple[bytes, bytes]]:
    pairs = []
    for chunk in raw.split(b"&"):
        if chunk:
            name, _, value = chunk.partition(b"=")
            pairs.append((_unescape(name), _unescape(value)))
    return pairs


def query_of(uri: bytes) -> bytes:
    """The query component of a request URI (without the fragment)."""
    return uri.partition(b"?")[2].partition(b"#")[0]


def _unescape(component: bytes) -> bytes:
    return unquote_to_bytes(component.replace(b"+", b" "))
