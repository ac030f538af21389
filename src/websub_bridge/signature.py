"""``X-Hub-Signature``: HMAC over the raw body (WebSub section 7.1).

Both roles of the bridge use this module: the subscriber checks deliveries
(:func:`verify`), the hub of part 2 signs them (:func:`sign`), and both make
secrets with :func:`random_secret`. The header is ``method=hex`` with
``method`` one of :data:`ALGORITHMS`; hex is accepted in either case, and
the comparison is constant-time so a forger learns nothing from timing.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets

__all__ = ["ALGORITHMS", "SignatureCheck", "random_secret", "sign", "verify"]

ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")
_DIGEST_SIZES = {name: hashlib.new(name).digest_size for name in ALGORITHMS}
_HEX = frozenset("0123456789abcdefABCDEF")


class SignatureCheck(enum.Enum):
    """What :func:`verify` found: only ``VALID`` lets a delivery through."""

    VALID = "valid"
    INVALID = "invalid"  # wrong signature, or not hexadecimal of the right length
    MISSING = "missing"  # no header (or an empty one)
    UNSUPPORTED = "unsupported"  # an algorithm outside ALGORITHMS, or no ``=``


def sign(algorithm: str, secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature`` value for ``body``: ``sha256=<lowercase hex>``."""
    if algorithm not in _DIGEST_SIZES:
        raise ValueError(f"unsupported signature algorithm {algorithm!r}")
    return f"{algorithm}={hmac.new(secret, body, algorithm).hexdigest()}"


def verify(header: str | None, secret: bytes, body: bytes) -> SignatureCheck:
    """Check an ``X-Hub-Signature`` header against ``body`` and ``secret``."""
    if header is None or not header.strip():
        return SignatureCheck.MISSING
    method, sep, given = header.strip().partition("=")
    algorithm = method.strip().lower()
    if not sep or algorithm not in _DIGEST_SIZES:
        return SignatureCheck.UNSUPPORTED
    given = given.strip()
    if len(given) != 2 * _DIGEST_SIZES[algorithm] or not _HEX.issuperset(given):
        return SignatureCheck.INVALID
    expected = hmac.new(secret, body, algorithm).digest()
    if hmac.compare_digest(expected, bytes.fromhex(given)):
        return SignatureCheck.VALID
    return SignatureCheck.INVALID


def random_secret(nbytes: int = 32) -> str:
    """A fresh ``hub.secret``: URL-safe, from ``secrets``, under 200 bytes.

    Section 5.1 caps ``hub.secret`` at 200 bytes; 32 random bytes (43
    characters) is the default, 16 the least accepted.
    """
    if not 16 <= nbytes <= 144:
        raise ValueError("a hub.secret needs 16 to 144 random bytes")
    secret = secrets.token_urlsafe(nbytes)
    assert len(secret.encode("ascii")) < 200
    return secret
