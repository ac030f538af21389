"""Reading a body by its ``Content-Type``: one place for the charset rule.

The bridge turns bodies into Mercure ``data`` (a follow's delivery, a
pinged topic) and reads documents for discovery; all take the declared
``charset`` parameter, UTF-8 when none is given.
"""

from __future__ import annotations

__all__ = ["charset_of", "decode_text"]


def charset_of(content_type: str | None) -> str:
    """The ``charset`` parameter of a ``Content-Type`` value, else ``utf-8``."""
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"'):
            return value.strip().strip('"')
    return "utf-8"


def decode_text(body: bytes, content_type: str | None) -> str | None:
    """``body`` as text in its declared charset, or None when it is not
    text in it (or the charset is unknown)."""
    try:
        return body.decode(charset_of(content_type))
    except (LookupError, UnicodeDecodeError):
        return None
