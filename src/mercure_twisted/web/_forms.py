"""``application/x-www-form-urlencoded`` parsing with strict UTF-8.

Bytes are percent-decoded first and only then decoded as UTF-8, strictly:
invalid UTF-8 is a 400, never a replacement character silently stored.
Only ``&`` separates pairs (``;`` is data), as in the WHATWG URL standard.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from ..dialects import RequestError

__all__ = ["parse_form"]


def parse_form(raw: bytes, what: str = "form") -> list[tuple[str, str]]:
    decoded = []
    for chunk in raw.split(b"&"):
        if not chunk:
            continue
        name, _, value = chunk.partition(b"=")
        try:
            decoded.append((_decode(name), _decode(value)))
        except UnicodeDecodeError:
            raise RequestError(f"{what} field is not valid UTF-8") from None
    return decoded


def _decode(component: bytes) -> str:
    return unquote_to_bytes(component.replace(b"+", b" ")).decode("utf-8")
