"""Trusted verification keys: static secrets and PEM keys, and JWK Sets.

Every configured :class:`~mercure_twisted.config.KeySpec` becomes one
:class:`IKeySource` bound to one role, one algorithm and (optionally) one
issuer.  The verifier asks a source for the keys to try for a token's
(unverified) header; the header can only *select* among trusted keys (by
``kid``), never bring its own (``jwk``, ``jku``, ``x5u`` and ``x5c`` are
ignored).

:func:`check_key_spec` runs at configuration time, so that a key that cannot
work with its algorithm stops the hub with one clear line.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable
from typing import Any, Protocol
from urllib.parse import urlsplit

import attrs
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from zope.interface import Attribute, Interface, implementer

from ..config import HMAC_ALGORITHMS, SUPPORTED_ALGORITHMS, ConfigError, KeySpec, Role
from ._errors import TokenError, shorten

__all__ = [
    "HTTPClient",
    "IKeySource",
    "JWKSKeySource",
    "StaticKeySource",
    "VerificationKey",
    "check_key_spec",
    "key_source_for",
    "load_static_key",
]

_MIN_RSA_BITS = 2048
_EC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ES256": ec.SECP256R1,
    "ES384": ec.SECP384R1,
    "ES512": ec.SECP521R1,
}
_JWK_KTY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


@attrs.frozen
class VerificationKey:
    """One trusted key, ready for pyjwt: ``key`` is HMAC bytes or a public key object."""

    alg: str
    key: Any = attrs.field(repr=False)
    kid: str | None = None


class IKeySource(Interface):
    """Where the trusted keys of one configured :class:`KeySpec` come from."""

    role = Attribute("'publisher' or 'subscriber'")
    alg = Attribute("the one algorithm (never 'none') the keys of this source verify")
    issuer = Attribute("the draft-08 issuer this source is bound to, or None (see KeySpec)")
    label = Attribute("a secret-free description for messages, e.g. 'JWK Set https://as/jwks'")

    def key_for(header: dict[str, Any]) -> Awaitable[list[VerificationKey]]:
        """The trusted keys to try for a token with this unverified JOSE header.

        Never returns keys built from the header.  Raises :class:`TokenError`
        when no key can be found (unknown ``kid``, JWK Set unreachable...).
        """


class HTTPClient(Protocol):
    """The part of the ``treq`` API used to fetch JWK Sets (``treq`` or ``StubTreq``)."""

    def get(self, url: str, **kwargs: Any) -> defer.Deferred[Any]: ...

    def content(self, response: Any) -> defer.Deferred[bytes]: ...


def _role_label(role: Role) -> str:
    return f"{role}s"


def _describe_key(key: Any) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"an RSA-{key.key_size} key"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC {key.curve.name} key"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "an Ed25519 key"
    if isinstance(key, ed448.Ed448PublicKey):
        return "an Ed448 key"
    return f"a {type(key).__name__}"


def key_mismatch(alg: str, key: Any) -> str | None:
    """Why the public key object cannot verify ``alg`` tokens, or None if it can."""
    family = alg[:2]
    if family in ("RS", "PS"):
        if not isinstance(key, rsa.RSAPublicKey):
            return f"{alg} needs an RSA public key, got {_describe_key(key)}"
        if key.key_size < _MIN_RSA_BITS:
            return f"{alg} needs an RSA key of at least {_MIN_RSA_BITS} bits, got {key.key_size}"
        return None
    if family == "ES":
        curve = _EC_CURVES[alg]
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, curve):
            return f"{alg} needs an EC {curve.name} public key, got {_describe_key(key)}"
        return None
    if alg == "EdDSA":
        if not isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            return f"EdDSA needs an Ed25519 or Ed448 public key, got {_describe_key(key)}"
        return None
    return f"{alg} is not an asymmetric algorithm"


def _check_alg(spec: KeySpec) -> None:
    where = f"{spec.role} key"
    if spec.alg.lower() == "none":
        raise ConfigError(f"{where}: alg 'none' (unsigned tokens) is never accepted")
    if spec.alg not in SUPPORTED_ALGORITHMS:
        raise ConfigError(
            f"{where}: unknown alg {shorten(spec.alg)}; supported: {', '.join(SUPPORTED_ALGORITHMS)}"
        )


def load_static_key(spec: KeySpec) -> VerificationKey:
    """The verification key of a static ``KeySpec`` (secret or PEM), or ConfigError."""
    _check_alg(spec)
    where = f"{spec.role} key ({spec.alg})"
    if spec.key is None:
        raise ConfigError(f"{where}: no key given")
    if spec.alg in HMAC_ALGORITHMS:
        if spec.key == "":
            raise ConfigError(f"{where}: the HMAC secret is empty")
        try:
            secret = jwt.get_algorithm_by_name(spec.alg).prepare_key(spec.key)
        except jwt.InvalidKeyError:
            raise ConfigError(
                f"{where}: the key is a PEM/SSH public key but {spec.alg} needs a shared secret;"
                " set alg to the key's algorithm (RS256, ES256, EdDSA...)"
            ) from None
        return VerificationKey(spec.alg, secret)
    text = spec.key.strip()
    if not text.startswith("-----BEGIN"):
        raise ConfigError(
            f"{where}: the key is not a PEM public key ('-----BEGIN PUBLIC KEY-----');"
            f" {spec.alg} needs one (a shared secret needs an HS* alg)"
        )
    first_line = text.splitlines()[0]
    if "PRIVATE KEY" in first_line:
        raise ConfigError(f"{where}: the key is a private key; give the hub the public key only")
    try:
        if "CERTIFICATE" in first_line:
            public_key: Any = x509.load_pem_x509_certificate(text.encode()).public_key()
        else:
            public_key = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: the PEM key cannot be loaded ({type(exc).__name__})") from None
    mismatch = key_mismatch(spec.alg, public_key)
    if mismatch is not None:
        raise ConfigError(f"{where}: {mismatch}")
    return VerificationKey(spec.alg, public_key)


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def safe_url(url: str) -> str:
    """The URL without userinfo, query and fragment: safe for messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _check_jwks_url(spec: KeySpec) -> None:
    _check_alg(spec)
    where = f"{spec.role} key ({spec.alg})"
    assert spec.jwks_url is not None
    if spec.alg in HMAC_ALGORITHMS:
        raise ConfigError(
            f"{where}: a jwks_url needs an asymmetric alg (RS256, ES256, EdDSA...), not {spec.alg}"
        )
    try:
        parts = urlsplit(spec.jwks_url)
        host = parts.hostname
    except ValueError:
        raise ConfigError(f"{where}: jwks_url is not a valid URL") from None
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and _is_loopback(host):
        return
    raise ConfigError(
        f"{where}: jwks_url {safe_url(spec.jwks_url)} must be an https:// URL"
        " (http:// is accepted for loopback hosts only)"
    )


def check_key_spec(spec: KeySpec) -> None:
    """Raise ConfigError (one line) if this key cannot work with its algorithm."""
    if spec.key is not None and spec.jwks_url is not None:
        raise ConfigError(f"{spec.role} key: give either a key or a jwks_url, not both")
    if spec.key is None and spec.jwks_url is None:
        raise ConfigError(f"{spec.role} key: needs a key (secret or PEM) or a jwks_url")
    if spec.jwks_url is not None:
        _check_jwks_url(spec)
    else:
        load_static_key(spec)


@implementer(IKeySource)
class StaticKeySource:
    """One configured HMAC secret or PEM public key."""

    def __init__(self, spec: KeySpec) -> None:
        self.role: Role = spec.role
        self.alg: str = spec.alg
        self.issuer: str | None = spec.issuer
        self._key = load_static_key(spec)
        kind = "secret" if spec.alg in HMAC_ALGORITHMS else "public key"
        self.label: str = f"the configured {spec.alg} {kind} for {_role_label(spec.role)}"

    def __repr__(self) -> str:
        return f"<StaticKeySource {self.role} {self.alg} issuer={self.issuer!r}>"

    async def key_for(self, header: dict[str, Any]) -> list[VerificationKey]:
        return [self._key]


@implementer(IKeySource)
class JWKSKeySource:
    """The keys of a JWK Set fetched with treq, cached, refreshed on unknown ``kid``.

    The set is fetched on first use and again when it is older than
    ``max_age`` seconds or a token names a ``kid`` it lacks, but never more
    than once per ``min_refresh_interval`` seconds (a flood of tokens with
    random ``kid`` values cannot turn the hub against the authorization
    server).  When a refresh fails the keys already known stay in use.
    Only keys usable with the configured ``alg`` are kept (``use``,
    ``key_ops``, ``alg``, ``kty`` and curve are checked; private JWKs are
    skipped).
    """

    def __init__(
        self,
        spec: KeySpec,
        *,
        http_client: HTTPClient,
        clock: IReactorTime,
        min_refresh_interval: float = 30.0,
        max_age: float = 3600.0,
        fetch_timeout: float = 10.0,
    ) -> None:
        if spec.jwks_url is None:
            raise ConfigError(f"{spec.role} key: no jwks_url")
        _check_jwks_url(spec)
        self.role: Role = spec.role
        self.alg: str = spec.alg
        self.issuer: str | None = spec.issuer
        self.url: str = spec.jwks_url
        self.label: str = f"the JWK Set {safe_url(spec.jwks_url)}"
        self.min_refresh_interval = min_refresh_interval
        self.max_age = max_age
        self.fetch_timeout = fetch_timeout
        self._http = http_client
        self._clock = clock
        self._keys: list[VerificationKey] | None = None
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._last_error: str | None = None
        self._waiters: list[defer.Deferred[None]] | None = None
        self._fetches = 0

    def __repr__(self) -> str:
        return f"<JWKSKeySource {self.role} {self.alg} {safe_url(self.url)} issuer={self.issuer!r}>"

    @property
    def fetch_count(self) -> int:
        """How many fetches of the set were attempted (for tests and metrics)."""
        return self._fetches

    def _may_fetch(self) -> bool:
        if self._last_attempt is None:
            return True
        return self._clock.seconds() - self._last_attempt >= self.min_refresh_interval

    async def key_for(self, header: dict[str, Any]) -> list[VerificationKey]:
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenError.invalid_token("kid header must be a string")
        now = self._clock.seconds()
        stale = self._fetched_at is None or now - self._fetched_at >= self.max_age
        if (self._keys is None or stale) and self._may_fetch():
            await self._refresh()
        if self._keys is None:
            raise TokenError.invalid_token(
                f"{self.label} could not be fetched: {self._last_error or 'not fetched yet'}"
            )
        found = self._select(kid)
        if not found and kid is not None and self._may_fetch():
            await self._refresh()
            found = self._select(kid)
        if found:
            return found
        if kid is None:
            raise TokenError.invalid_token(f"{self.label} has no usable {self.alg} key")
        detail = ""
        if self._last_error is not None:
            detail = f" (last refresh failed: {self._last_error})"
        raise TokenError.invalid_token(
            f"token kid {shorten(kid)} is not in {self.label} for {self.alg}{detail}"
        )

    def _select(self, kid: str | None) -> list[VerificationKey]:
        keys = self._keys or []
        if kid is None:
            return list(keys)
        return [k for k in keys if k.kid == kid]

    async def _refresh(self) -> None:
        """Fetch once; concurrent callers wait for the fetch in progress."""
        if self._waiters is not None:
            waiter: defer.Deferred[None] = defer.Deferred()
            self._waiters.append(waiter)
            await waiter
            return
        self._waiters = []
        try:
            await self._fetch()
        finally:
            waiters, self._waiters = self._waiters, None
            for w in waiters:
                w.callback(None)

    async def _fetch(self) -> None:
        self._last_attempt = self._clock.seconds()
        self._fetches += 1
        try:
            keys = await self._download()
        except _FetchError as exc:
            self._last_error = str(exc)
            return
        self._keys = keys
        self._fetched_at = self._clock.seconds()
        self._last_error = None

    async def _download(self) -> list[VerificationKey]:
        try:
            d = self._http.get(
                self.url, headers={b"Accept": [b"application/jwk-set+json, application/json"]}
            )
            d.addTimeout(self.fetch_timeout, self._clock)
            response = await d
            code = getattr(response, "code", None)
            if code != 200:
                drain = self._http.content(response)
                drain.addErrback(lambda _f: b"")
                raise _FetchError(f"HTTP {code}")
            d2 = self._http.content(response)
            d2.addTimeout(self.fetch_timeout, self._clock)
            body = await d2
        except _FetchError:
            raise
        except defer.TimeoutError:
            raise _FetchError(f"no response within {self.fetch_timeout:g} s") from None
        except Exception as exc:  # connection refused, DNS, TLS...
            text = f"{type(exc).__name__}: {exc}"
            raise _FetchError(text if len(text) <= 160 else text[:157] + "...") from None
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _FetchError("the response is not JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise _FetchError("the response has no 'keys' array")
        keys = [k for k in (self._parse_jwk(j) for j in document["keys"]) if k is not None]
        if not keys:
            raise _FetchError(f"no usable {self.alg} key in the set")
        return keys

    def _parse_jwk(self, jwk: Any) -> VerificationKey | None:
        if not isinstance(jwk, dict):
            return None
        if jwk.get("use", "sig") != "sig":
            return None
        ops = jwk.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
            return None
        if "alg" in jwk and jwk["alg"] != self.alg:
            return None
        if jwk.get("kty") != _JWK_KTY.get(self.alg[:2]):
            return None
        if "d" in jwk or "p" in jwk:  # private key material: never published
            return None
        try:
            public_key = jwt.PyJWK(jwk, algorithm=self.alg).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            return None
        if key_mismatch(self.alg, public_key) is not None:
            return None
        kid = jwk.get("kid")
        return VerificationKey(self.alg, public_key, kid if isinstance(kid, str) else None)


class _FetchError(Exception):
    pass


def key_source_for(
    spec: KeySpec,
    *,
    http_client: HTTPClient | None = None,
    clock: IReactorTime | None = None,
) -> IKeySource:
    """The key source of one ``KeySpec`` (raises ConfigError if it cannot work)."""
    check_key_spec(spec)
    if spec.jwks_url is None:
        return StaticKeySource(spec)
    if http_client is None:
        import treq

        http_client = treq  # type: ignore[assignment]
    if clock is None:
        from twisted.internet import reactor

        clock = reactor  # type: ignore[assignment]
    assert http_client is not None and clock is not None
    return JWKSKeySource(spec, http_client=http_client, clock=clock)
