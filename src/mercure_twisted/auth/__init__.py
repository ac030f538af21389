"""Authorization: reading, verifying and interpreting tokens of both drafts.

* :func:`read_token` finds the token of a request (header > query > cookie).
* :class:`TokenVerifier` checks it against the configured keys
  (:class:`IKeySource`: static secrets, PEM keys, JWK Sets) and returns
  :class:`Grants`, or raises :class:`TokenError` with a precise reason.
* :func:`check_key_spec` validates a configured key at start.
"""

from ._errors import ErrorCode, TokenError, forbidden_publish, forbidden_subscribe
from ._grants import ANONYMOUS, GrantRule, Grants
from ._keys import (
    HTTPClient,
    IKeySource,
    JWKSKeySource,
    StaticKeySource,
    VerificationKey,
    check_key_spec,
    key_source_for,
)
from ._presentation import (
    DRAFT07_COOKIE,
    DRAFT08_COOKIE,
    TokenPresentation,
    Via,
    read_token,
)
from ._verify import (
    KNOWN_ACTIONS,
    MERCURE_DETAIL_TYPE,
    TokenVerifier,
    detect_generation,
    parse_authorization_details,
    parse_mercure_claim,
)

__all__ = [
    "ANONYMOUS",
    "DRAFT07_COOKIE",
    "DRAFT08_COOKIE",
    "KNOWN_ACTIONS",
    "MERCURE_DETAIL_TYPE",
    "ErrorCode",
    "GrantRule",
    "Grants",
    "HTTPClient",
    "IKeySource",
    "JWKSKeySource",
    "StaticKeySource",
    "TokenError",
    "TokenPresentation",
    "TokenVerifier",
    "VerificationKey",
    "Via",
    "check_key_spec",
    "detect_generation",
    "forbidden_publish",
    "forbidden_subscribe",
    "key_source_for",
    "parse_authorization_details",
    "parse_mercure_claim",
    "read_token",
]
