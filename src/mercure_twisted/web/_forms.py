"""Form and query parameters as text, decoded strictly as UTF-8.

Bytes are percent-decoded first (``urlencoded.parse_pairs``) and only then
decoded as UTF-8, strictly: invalid UTF-8 is a 400, never a replacement
character silently stored.
"""

from __future__ import annotations

from ..dialects import RequestError
from ..urlencoded import parse_pairs

__all__ = ["parse_form"]


def parse_form(raw: bytes, what: str = "form") -> list[tuple[str, str]]:
    try:
        return [(name.decode("utf-8"), value.decode("utf-8")) for name, value in parse_pairs(raw)]
    except UnicodeDecodeError:
        raise RequestError(f"{what} field is not valid UTF-8") from None
