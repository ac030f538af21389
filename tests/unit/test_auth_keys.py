"""Key sources: config-time checks, static keys, JWK Sets over StubTreq."""

from __future__ import annotations

import json
from collections.abc import Coroutine
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request

from mercure_twisted.auth import JWKSKeySource, TokenError, TokenVerifier, check_key_spec
from mercure_twisted.config import ConfigError, HubConfig, KeySpec

from ._authkit import EC_KEY, ED_KEY, HUB, NOW, RSA_KEY, RSA_KEY2, SECRET, claims08, public_pem, token08

JWKS_URL = "https://as.example/jwks.json"


# -- check_key_spec -----------------------------------------------------------------


@pytest.mark.parametrize("spec", [
    KeySpec("publisher", key=SECRET),
    KeySpec("publisher", alg="HS512", key="x"),
    KeySpec("subscriber", alg="RS256", key=public_pem(RSA_KEY)),
    KeySpec("subscriber", alg="PS512", key=public_pem(RSA_KEY)),
    KeySpec("subscriber", alg="ES256", key=public_pem(EC_KEY)),
    KeySpec("subscriber", alg="EdDSA", key=public_pem(ED_KEY)),
    KeySpec("subscriber", alg="RS256", jwks_url=JWKS_URL),
    KeySpec("subscriber", alg="ES256", jwks_url="http://127.0.0.1:8080/jwks"),
    KeySpec("subscriber", alg="ES256", jwks_url="http://localhost/jwks"),
])
def test_valid_specs(spec: KeySpec) -> None:
    check_key_spec(spec)


@pytest.mark.parametrize(("spec", "message"), [
    (KeySpec("publisher", alg="none", key="x"), "publisher key: alg 'none' (unsigned tokens) is never accepted"),
    (KeySpec("publisher", alg="HS1", key="x"), "publisher key: unknown alg 'HS1'"),
    (KeySpec("publisher", key=""), "publisher key (HS256): the HMAC secret is empty"),
    (KeySpec("publisher"), "publisher key: needs a key (secret or PEM) or a jwks_url"),
    (KeySpec("publisher", key="x", jwks_url=JWKS_URL), "publisher key: give either a key or a jwks_url, not both"),
    (KeySpec("publisher", key=public_pem(RSA_KEY)), "publisher key (HS256): the key is a PEM/SSH public key but HS256 needs a shared secret"),
    (KeySpec("publisher", alg="RS256", key=SECRET), "publisher key (RS256): the key is not a PEM public key"),
    (KeySpec("publisher", alg="RS256", key=public_pem(EC_KEY)), "publisher key (RS256): RS256 needs an RSA public key, got an EC secp256r1 key"),
    (KeySpec("publisher", alg="ES384", key=public_pem(EC_KEY)), "publisher key (ES384): ES384 needs an EC secp384r1 public key, got an EC secp256r1 key"),
    (KeySpec("publisher", alg="EdDSA", key=public_pem(RSA_KEY)), "publisher key (EdDSA): EdDSA needs an Ed25519 or Ed448 public key, got an RSA-2048 key"),
    (KeySpec("publisher", alg="RS256", key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"), "publisher key (RS256): the PEM key cannot be loaded"),
    (KeySpec("publisher", alg="HS256", jwks_url=JWKS_URL), "publisher key (HS256): a jwks_url needs an asymmetric alg"),
    (KeySpec("publisher", alg="RS256", jwks_url="http://as.example/jwks"), "must be an https:// URL"),
])
def test_invalid_specs(spec: KeySpec, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_key_spec(spec)
    text = str(info.value)
    assert message in text and "\n" not in text
    if spec.key and len(spec.key) > 3:
        assert spec.key not in text


def test_private_key_and_small_rsa_refused() -> None:
    from ._authkit import private_pem
    with pytest.raises(ConfigError, match="is a private key; give the hub the public key only"):
        check_key_spec(KeySpec("publisher", alg="RS256", key=private_pem(RSA_KEY)))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError, match="at least 2048 bits, got 1024"):
        check_key_spec(KeySpec("publisher", alg="RS256", key=public_pem(small)))


def test_verifier_construction_checks_keys() -> None:
    with pytest.raises(ConfigError):
        TokenVerifier(HubConfig(keys=(KeySpec("publisher", alg="RS256", key=SECRET),)), clock=Clock())


# -- JWKS ---------------------------------------------------------------------------


def jwk(private: Any, kid: str, **extra: Any) -> dict[str, Any]:
    pub = private.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        data = jwt.algorithms.RSAAlgorithm.to_jwk(pub, as_dict=True)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        data = jwt.algorithms.ECAlgorithm.to_jwk(pub, as_dict=True)
    else:
        data = jwt.algorithms.OKPAlgorithm.to_jwk(pub, as_dict=True)
    data.update(kid=kid, **extra)
    return data


class JWKSResource(Resource):
    isLeaf = True

    def __init__(self, keys: list[dict[str, Any]], code: int = 200) -> None:
        super().__init__()
        self.keys = keys
        self.code = code
        self.hits = 0
        self.body: bytes | None = None

    def render_GET(self, request: Request) -> bytes:
        self.hits += 1
        request.setResponseCode(self.code)
        if self.body is not None:
            return self.body
        return json.dumps({"keys": self.keys}).encode()


class Env:
    def __init__(self, keys: list[dict[str, Any]], alg: str = "RS256", **kw: Any) -> None:
        self.resource = JWKSResource(keys)
        self.stub = StubTreq(self.resource)
        self.clock = Clock()
        self.clock.advance(NOW)
        spec = KeySpec("subscriber", alg=alg, jwks_url=JWKS_URL, issuer="https://issuer.example")
        self.verifier = TokenVerifier(HubConfig(keys=(spec,)), http_client=self.stub,
                                      clock=self.clock, **kw)
        source = self.verifier.sources("subscriber")[0]
        assert isinstance(source, JWKSKeySource)
        self.source = source

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        d = defer.Deferred.fromCoroutine(coro)
        results: list[Any] = []
        d.addBoth(results.append)
        for _ in range(5):
            self.stub.flush()
        assert results, "did not complete"
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return results[0]

    def verify(self, token: str) -> Any:
        return self.run(self.verifier.verify(token, "subscriber", HUB))

    def refused(self, token: str) -> str:
        with pytest.raises(TokenError) as info:
            self.verify(token)
        assert info.value.status == 401 and info.value.error == "invalid_token"
        return info.value.reason


def test_jwks_verify_and_cache() -> None:
    env = Env([jwk(RSA_KEY, "k1")])
    tok = token08(key=RSA_KEY, alg="RS256", kid="k1")
    assert env.verify(tok).dialect == "08"
    assert env.verify(tok).dialect == "08"
    assert env.resource.hits == 1  # cached


def test_jwks_token_without_kid_tries_all_keys() -> None:
    env = Env([jwk(RSA_KEY2, "k2"), jwk(RSA_KEY, "k1")])
    assert env.verify(token08(key=RSA_KEY, alg="RS256")).dialect == "08"


def test_jwks_unknown_kid_refreshes_rate_limited() -> None:
    env = Env([jwk(RSA_KEY, "k1")], )
    assert env.verify(token08(key=RSA_KEY, alg="RS256", kid="k1"))
    assert env.resource.hits == 1
    # rotation: k2 appears at the AS; a k2 token arrives within the rate limit window
    env.resource.keys = [jwk(RSA_KEY, "k1"), jwk(RSA_KEY2, "k2")]
    tok2 = token08(key=RSA_KEY2, alg="RS256", kid="k2")
    assert env.refused(tok2) == \
        "token kid 'k2' is not in the JWK Set https://as.example/jwks.json for RS256"
    assert env.resource.hits == 1
    env.clock.advance(30)
    assert env.verify(tok2).dialect == "08"
    assert env.resource.hits == 2
    # random kids cannot force refreshes
    for i in range(5):
        env.refused(token08(key=RSA_KEY2, alg="RS256", kid=f"random{i}"))
    assert env.resource.hits == 2
    assert env.source.fetch_count == 2
    env.clock.advance(30)
    env.refused(token08(key=RSA_KEY2, alg="RS256", kid="random-again"))
    assert env.resource.hits == 3


def test_jwks_wrong_alg_and_kty_keys_skipped() -> None:
    env = Env([jwk(RSA_KEY, "k1", alg="RS512"), jwk(EC_KEY, "k1"), jwk(RSA_KEY, "enc", use="enc")])
    assert env.refused(token08(key=RSA_KEY, alg="RS256", kid="k1")) == \
        "the JWK Set https://as.example/jwks.json could not be fetched: no usable RS256 key in the set"


def test_jwks_http_error() -> None:
    env = Env([jwk(RSA_KEY, "k1")])
    env.resource.code = 500
    reason = env.refused(token08(key=RSA_KEY, alg="RS256", kid="k1"))
    assert reason == "the JWK Set https://as.example/jwks.json could not be fetched: HTTP 500"


def test_jwks_not_json_then_recovers_and_keeps_keys_on_failure() -> None:
    env = Env([jwk(RSA_KEY, "k1")])
    env.resource.body = b"<html>"
    tok = token08(key=RSA_KEY, alg="RS256", kid="k1")
    assert env.refused(tok).endswith("could not be fetched: the response is not JSON")
    env.refused(tok)
    assert env.resource.hits == 1  # failures are rate-limited too
    env.resource.body = None
    env.clock.advance(31)
    assert env.verify(tok).dialect == "08"
    # a failing refresh keeps the known keys in use
    env.resource.code = 503
    env.clock.advance(31)
    assert env.refused(token08(key=RSA_KEY2, alg="RS256", kid="k2")) == (
        "token kid 'k2' is not in the JWK Set https://as.example/jwks.json for RS256"
        " (last refresh failed: HTTP 503)")
    assert env.verify(tok).dialect == "08"


def test_jwks_connection_failure_is_a_token_error() -> None:
    class Failing:
        def get(self, url: str, **kw: Any) -> defer.Deferred[Any]:
            return defer.fail(ConnectionRefusedError("refused"))

        def content(self, response: Any) -> defer.Deferred[bytes]:
            raise AssertionError

    clock = Clock()
    clock.advance(NOW)
    spec = KeySpec("subscriber", alg="RS256", jwks_url="https://user:pw@as.example/jwks?x=secret")
    v = TokenVerifier(HubConfig(keys=(spec,)), http_client=Failing(), clock=clock)
    d = defer.Deferred.fromCoroutine(v.verify(token08(key=RSA_KEY, alg="RS256"), "subscriber", HUB))
    failure: list[Failure] = []
    d.addErrback(failure.append)
    err = failure[0].value
    assert isinstance(err, TokenError)
    assert err.reason.startswith("the JWK Set https://as.example/jwks could not be fetched: ConnectionRefusedError")
    assert "pw" not in err.reason and "secret" not in err.reason


def test_jwks_timeout() -> None:
    class Hanging:
        def get(self, url: str, **kw: Any) -> defer.Deferred[Any]:
            return defer.Deferred()

        def content(self, response: Any) -> defer.Deferred[bytes]:
            raise AssertionError

    clock = Clock()
    clock.advance(NOW)
    spec = KeySpec("subscriber", alg="RS256", jwks_url=JWKS_URL)
    v = TokenVerifier(HubConfig(keys=(spec,)), http_client=Hanging(), clock=clock)
    d = defer.Deferred.fromCoroutine(v.verify(token08(key=RSA_KEY, alg="RS256"), "subscriber", HUB))
    failure: list[Failure] = []
    d.addErrback(failure.append)
    assert not failure
    clock.advance(10)
    assert isinstance(failure[0].value, TokenError)
    assert failure[0].value.reason.endswith("could not be fetched: no response within 10 s")


def test_jwks_concurrent_requests_share_one_fetch() -> None:
    env = Env([jwk(RSA_KEY, "k1")])
    tok = token08(key=RSA_KEY, alg="RS256", kid="k1")
    ds = [defer.Deferred.fromCoroutine(env.verifier.verify(tok, "subscriber", HUB)) for _ in range(3)]
    results: list[Any] = []
    for d in ds:
        d.addBoth(results.append)
    for _ in range(5):
        env.stub.flush()
    assert len(results) == 3 and all(r.dialect == "08" for r in results)
    assert env.resource.hits == 1


def test_jwks_issuer_binding() -> None:
    env = Env([jwk(RSA_KEY, "k1")])
    assert env.refused(token08(claims08(iss="https://evil"), key=RSA_KEY, alg="RS256")) == \
        "token issuer 'https://evil' is not trusted for subscribers"
    assert env.resource.hits == 0
