"""Character and namespace rules shared by both drafts.

Draft-08 forbids C0/C1 controls, DEL and Unicode format characters (``Cf``)
in topics, matchers, ids and types, and reserves the hub's own path subtree
for the events the hub generates.  The hub applies these rules whatever the
generation of the request: they are what keep SSE framing uninjectable and
subscription events unforgeable, which draft-07 hubs want just as much.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urljoin, urlsplit

__all__ = ["forbidden_character", "addresses_reserved_namespace", "RETRY_DIGITS"]

RETRY_DIGITS = re.compile(r"[0-9]+\Z")
_UNRESERVED_ESCAPE = re.compile(r"%(2[dDeE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])")


def forbidden_character(value: str) -> str | None:
    """A description of the first forbidden character in ``value``, or None."""
    if value.isascii() and value.isprintable():
        return None
    for position, char in enumerate(value):
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F or unicodedata.category(char) == "Cf":
            return f"U+{code:04X} at position {position}"
        if 0xD800 <= code <= 0xDFFF:
            return f"an unpaired surrogate at position {position}"
    return None


def addresses_reserved_namespace(topic: str, hub_url: str) -> bool:
    """Whether ``topic``, resolved against the hub URL, names a hub path.

    The path is normalized first (unreserved percent-escapes decoded, dot
    segments removed, backslashes read as slashes as the URL parser does for
    http(s)), so that ``/.well-known/%6Dercure/..`` tricks cannot forge
    subscription events.  A topic that is not a URL reference never matches.
    """
    hub_path = urlsplit(hub_url).path.rstrip("/") or "/"
    try:
        parts = urlsplit(topic.replace("\\", "/"))
        if parts.scheme and parts.scheme not in ("http", "https", "ws", "wss"):
            # Non-special schemes have opaque or unrelated paths.
            path = parts.path
        else:
            path = _UNRESERVED_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), parts.path)
            rebuilt = parts._replace(path=path).geturl() if parts.scheme else path
            if not parts.scheme and not parts.netloc:
                rebuilt = path or "/"
            path = urlsplit(urljoin(hub_url, rebuilt)).path
    except ValueError:
        return False
    path = _remove_dot_segments(path)
    return path == hub_path or path.startswith(hub_path.rstrip("/") + "/")


def _remove_dot_segments(path: str) -> str:
    output: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if len(output) > 1:
                output.pop()
        elif segment != ".":
            output.append(segment)
    result = "/".join(output)
    if path.endswith(("/.", "/..")):
        result += "/"
    return result
