"""Tokens of both generations for the tests, minted with pyjwt (HS256).

Independent of ``mercure_twisted``'s own minting code (``token_cli``), so a
bug there cannot hide a bug in verification.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

AUTHORIZATION_DETAIL_TYPE = "https://mercure.rocks/authorization-detail"


def draft07_token(
    key: str,
    publish: list[str] | None = None,
    subscribe: list[str] | None = None,
    payload: Any = None,
    exp: float | None = None,
) -> str:
    claim: dict[str, Any] = {}
    if publish is not None:
        claim["publish"] = publish
    if subscribe is not None:
        claim["subscribe"] = subscribe
    if payload is not None:
        claim["payload"] = payload
    claims: dict[str, Any] = {"mercure": claim}
    if exp is not None:
        claims["exp"] = int(exp)
    return jwt.encode(claims, key, algorithm="HS256")


def draft08_token(
    key: str,
    aud: str,
    *details: dict[str, Any],
    iss: str = "https://app.test",
    exp: float | None = None,
) -> str:
    now = int(time.time())
    claims = {
        "iss": iss, "aud": aud, "sub": "test-user", "client_id": "tests", "iat": now,
        "exp": int(exp if exp is not None else now + 3600), "jti": uuid.uuid4().urn,
        "authorization_details": [{"type": AUTHORIZATION_DETAIL_TYPE, **d} for d in details],
    }
    return jwt.encode(claims, key, algorithm="HS256", headers={"typ": "at+jwt"})
