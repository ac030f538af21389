"""Where a request carries its token: header, then query (draft-07), then cookie.

Both drafts: an ``Authorization`` header, when present, is used and the
other mechanisms are ignored.  Draft-07 then looks at the ``authorization``
query parameter (hubs MAY support it; the caller decides with
``allow_query``), then the cookie.  Draft-08 has no query mechanism.  The
caller passes the cookie names to look for: draft-07 ``mercureAuthorization``,
draft-08 ``__Secure-mercure_access_token``, or the configured ``cookie_name``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import attrs
from twisted.web.iweb import IRequest

from ..urlencoded import parse_pairs, query_of
from ._errors import TokenError

__all__ = [
    "DRAFT07_COOKIE",
    "DRAFT08_COOKIE",
    "TokenPresentation",
    "Via",
    "read_token",
]

DRAFT07_COOKIE = "mercureAuthorization"
DRAFT08_COOKIE = "__Secure-mercure_access_token"

Via = Literal["header", "query", "cookie"]

# RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# Scheme names safe to repeat in a message (anything else might be a token).
_KNOWN_SCHEMES = {"basic", "digest", "negotiate", "ntlm", "dpop", "hoba", "mutual", "token"}


@attrs.frozen
class TokenPresentation:
    """A token as presented, and by which mechanism."""

    token: str = attrs.field(repr=False)
    via: Via


def _header_token(values: list[bytes]) -> str:
    if len(values) > 1:
        raise TokenError.invalid_request("more than one Authorization header")
    try:
        value = values[0].decode("ascii").strip()
    except UnicodeDecodeError:
        raise TokenError.invalid_request("Authorization header is not ASCII") from None
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer":
        if scheme.lower() in _KNOWN_SCHEMES:
            raise TokenError.invalid_request(
                f"Authorization header uses the {scheme} scheme; this hub accepts only Bearer"
            )
        raise TokenError.invalid_request(
            "Authorization header does not use the Bearer scheme ('Bearer <token>')"
        )
    token = credentials.strip()
    if not token:
        raise TokenError.invalid_request("Authorization header has the Bearer scheme but no token")
    if not _B64TOKEN.fullmatch(token):
        raise TokenError.invalid_request(
            "Authorization header: the Bearer token contains characters not allowed by RFC 6750"
        )
    return token


def read_token(
    request: IRequest, *, cookie_names: Sequence[str], allow_query: bool
) -> TokenPresentation | None:
    """The token of a request, or None if it presents none.

    Raises TokenError(400, "invalid_request") for a malformed
    ``Authorization`` header or ``authorization`` query parameter.
    """
    headers = request.requestHeaders.getRawHeaders(b"authorization")
    if headers:
        return TokenPresentation(_header_token(list(headers)), "header")
    if allow_query:
        # The query only, never request.args: twisted.web merges a POST
        # form body into it, and a form field is not the query parameter.
        values = [v for n, v in parse_pairs(query_of(request.uri)) if n == b"authorization"]
        if values:
            if len(values) > 1:
                raise TokenError.invalid_request("more than one authorization query parameter")
            try:
                token = values[0].decode("ascii").strip()
            except UnicodeDecodeError:
                raise TokenError.invalid_request(
                    "the authorization query parameter is not ASCII"
                ) from None
            if not token:
                raise TokenError.invalid_request("the authorization query parameter is empty")
            return TokenPresentation(token, "query")
    for name in cookie_names:
        raw = request.getCookie(name.encode("ascii"))
        if raw:
            try:
                token = raw.decode("ascii").strip().strip('"')
            except UnicodeDecodeError:
                raise TokenError.invalid_request(f"the {name} cookie is not ASCII") from None
            if token:
                return TokenPresentation(token, "cookie")
    return None
