"""Shared helpers of the auth tests: keys, tokens, running coroutines."""

from __future__ import annotations

import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

T = TypeVar("T")

SECRET = "s3cret-s3cret-s3cret-s3cret-s3cret!"
HUB = "https://hub.example.com/.well-known/mercure"
NOW = 1_800_000_000.0
DETAIL = "https://mercure.rocks/authorization-detail"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC384_KEY = ec.generate_private_key(ec.SECP384R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def public_pem(private: Any) -> str:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def private_pem(private: Any) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that completes synchronously (no real I/O)."""
    d = Deferred.fromCoroutine(coro)
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "coroutine did not complete synchronously"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]  # type: ignore[no-any-return]


def _sign(claims: dict[str, Any], key: Any, alg: str, headers: dict[str, Any] | None) -> str:
    # PyJWS: no claim validation, so that tests can sign invalid claims.
    return jwt.api_jws.encode(json.dumps(claims).encode(), key, algorithm=alg, headers=headers)


def token07(claims: dict[str, Any], key: Any = SECRET, alg: str = "HS256", **headers: Any) -> str:
    return _sign(claims, key, alg, headers or None)


def claims08(**extra: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": "https://issuer.example",
        "aud": HUB,
        "sub": "urn:uuid:1",
        "client_id": "https://issuer.example",
        "iat": int(NOW),
        "exp": int(NOW) + 600,
        "jti": "urn:uuid:2",
        "authorization_details": [
            {"type": DETAIL, "actions": ["publish", "subscribe"],
             "topics": [{"match": "https://example.com/books/:id", "match_type": "urlpattern"}]}
        ],
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def token08(claims: dict[str, Any] | None = None, key: Any = SECRET, alg: str = "HS256",
            typ: str | None = "at+jwt", **headers: Any) -> str:
    hdr: dict[str, Any] = dict(headers)
    hdr["typ"] = typ
    return _sign(claims if claims is not None else claims08(), key, alg, hdr)


def raw_token(header: dict[str, Any], claims: dict[str, Any], signature: str = "c2ln") -> str:
    def seg(value: Any) -> str:
        import base64
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{seg(header)}.{seg(claims)}.{signature}"
