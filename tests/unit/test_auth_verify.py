"""TokenVerifier: both generations, keys, algorithm confusion, time, reasons."""

from __future__ import annotations

import hmac
import json
import base64
import hashlib
from typing import Any

import jwt
import pytest
from twisted.internet.task import Clock

from mercure_twisted.auth import ANONYMOUS, TokenError, TokenVerifier
from mercure_twisted.config import HubConfig, KeySpec, Protocol

from ._authkit import (
    DETAIL, EC384_KEY, EC_KEY, ED_KEY, HUB, NOW, RSA_KEY, RSA_KEY2, SECRET,
    claims08, public_pem, raw_token, run, token07, token08,
)


def clock(at: float = NOW) -> Clock:
    c = Clock()
    c.advance(at)
    return c


def verifier(*keys: KeySpec, at: float = NOW, protocol: Protocol = "both",
             issuers: tuple[str, ...] = (), **kw: Any) -> TokenVerifier:
    keys = keys or (KeySpec("publisher", key=SECRET), KeySpec("subscriber", key=SECRET))
    return TokenVerifier(HubConfig(keys=keys, protocol=protocol, issuers=issuers),
                         clock=clock(at), **kw)


def refused(v: TokenVerifier, token: str, role: Any = "publisher", resource: str = HUB) -> TokenError:
    with pytest.raises(TokenError) as info:
        run(v.verify(token, role, resource))
    err = info.value
    assert err.status == 401 and err.error == "invalid_token"
    assert token not in err.reason
    parts = token.split(".")
    if len(parts) == 3 and len(parts[2]) >= 8:
        assert parts[2] not in err.reason
    assert SECRET not in err.reason
    return err


# -- draft-07 -------------------------------------------------------------------


def test_draft07_publish_subscribe_payload() -> None:
    v = verifier()
    tok = token07({"mercure": {"publish": ["https://example.com/books/{id}"],
                               "subscribe": ["*"], "payload": {"user": 1}},
                   "sub": "me", "exp": NOW + 10})
    g = run(v.verify(tok, "publisher", HUB))
    assert g.dialect == "07" and g.expires_at == NOW + 10 and g.subject == "me"
    assert g.may_publish("https://example.com/books/1")
    assert not g.may_publish("https://example.com/authors/1")
    assert g.may_read(("https://anything",))
    assert g.default_payload == {"user": 1}
    assert g.payload_for("x") == {"user": 1}
    assert not g.anonymous and ANONYMOUS.anonymous


@pytest.mark.parametrize("mercure", [{}, {"publish": []}, {"subscribe": ["*"]}])
def test_draft07_no_publish_right(mercure: dict[str, Any]) -> None:
    g = run(verifier().verify(token07({"mercure": mercure}), "publisher", HUB))
    assert not g.may_publish("https://example.com/a")


def test_draft07_without_mercure_claim_grants_nothing_and_exp_optional() -> None:
    g = run(verifier().verify(token07({"sub": "x"}), "subscriber", HUB))
    assert g.dialect == "07" and g.rules == () and g.expires_at is None


@pytest.mark.parametrize(("mercure", "reason"), [
    ("all", "mercure claim must be a JSON object, got str"),
    ({"publish": "*"}, "mercure.publish must be an array of topic selectors, got str"),
    ({"subscribe": {"a": 1}}, "mercure.subscribe must be an array of topic selectors, got dict"),
    ({"publish": ["*", 3]}, "mercure.publish[1] must be a non-empty string, got 3"),
    ({"publish": [""]}, "mercure.publish[0] must be a non-empty string, got ''"),
])
def test_draft07_malformed_claims(mercure: Any, reason: str) -> None:
    assert refused(verifier(), token07({"mercure": mercure})).reason == reason


def test_draft07_expiry_and_nbf_with_clock() -> None:
    tok = token07({"mercure": {"publish": ["*"]}, "exp": 1796212800})  # 2026-12-02T12:00:00Z
    assert run(verifier(at=1796212799).verify(tok, "publisher", HUB)).expires_at == 1796212800
    err = refused(verifier(at=1796212800), tok)
    assert err.reason == "token expired at 2026-12-02T12:00:00Z"
    # leeway
    v = verifier(at=1796212805, leeway=10)
    assert run(v.verify(tok, "publisher", HUB)).dialect == "07"
    nbf = token07({"mercure": {}, "nbf": 1796212800})
    assert refused(verifier(at=1796212799), nbf).reason == \
        "token is not valid before 2026-12-02T12:00:00Z"
    assert run(verifier(at=1796212800).verify(nbf, "publisher", HUB)).dialect == "07"


def test_non_numeric_exp() -> None:
    err = refused(verifier(), token07({"mercure": {}, "exp": "tomorrow"}))
    assert err.reason.startswith("exp claim must be a number")
    err = refused(verifier(), token07({"mercure": {}, "exp": True}))
    assert err.reason.startswith("exp claim must be a number")


def test_draft07_aud_not_checked() -> None:
    tok = token07({"mercure": {"publish": ["*"]}, "aud": "https://other"})
    assert run(verifier().verify(tok, "publisher", HUB)).may_publish("x")


# -- draft-08 -------------------------------------------------------------------


def test_draft08_grants() -> None:
    claims = claims08(authorization_details=[
        {"type": "https://other.example/type", "anything": True},
        {"type": DETAIL, "actions": ["subscribe", "teleport"],
         "topics": [{"match": "https://example.com/foo"}], "payload": {"c": 1}},
        {"type": DETAIL, "actions": ["subscribe"],
         "topics": [{"match": "https://example.com/bar/:id", "match_type": "urlpattern"}],
         "payload": {"c": 2}},
        {"type": DETAIL, "actions": ["subscribe"], "topics": [{"match": "*"}], "payload": {"c": 3}},
        {"type": DETAIL, "actions": ["publish"], "topics": [{"match": "/books/:id",
                                                              "match_type": "urlpattern"}]},
        {"type": DETAIL, "actions": ["future-only"], "topics": [{"match": "*"}]},
    ])
    g = run(verifier().verify(token08(claims), "subscriber", HUB))
    assert g.dialect == "08" and g.issuer == "https://issuer.example" and g.subject == "urn:uuid:1"
    assert g.expires_at == NOW + 600
    assert g.payload_for("https://example.com/foo") == {"c": 1}
    assert g.payload_for("https://example.com/bar/:id") == {"c": 2}
    assert g.payload_for("https://example.com/other") == {"c": 3}
    assert g.may_read(("https://x",))
    assert g.may_publish("https://hub.example.com/books/1")  # relative to the resource
    assert not g.may_publish("https://example.com/foo")
    assert all("teleport" not in r.actions for r in g.rules)


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"])
def test_draft08_typ_variants(typ: str) -> None:
    g = run(verifier().verify(token08(typ=typ), "publisher", HUB))
    assert g.dialect == "08" and g.may_publish("https://example.com/books/1")


def test_draft08_detected_by_details_but_wrong_typ() -> None:
    assert refused(verifier(), token08(typ="JWT")).reason == "typ must be at+jwt, got 'JWT'"
    assert refused(verifier(), token08(typ=None)).reason.startswith("typ must be at+jwt")


def test_draft08_without_details_grants_nothing() -> None:
    claims = claims08()
    del claims["authorization_details"]
    g = run(verifier().verify(token08(claims), "publisher", HUB))
    assert g.dialect == "08" and g.rules == ()


@pytest.mark.parametrize(("change", "reason"), [
    ({"exp": None}, "token has no exp claim"),
    ({"iss": None}, "token has no iss claim"),
    ({"iss": 5}, "iss claim must be a string, got 5"),
    ({"aud": None}, f"token has no aud claim (it must include this hub, {HUB})"),
    ({"aud": ["x"]}, f"token audience ['x'] does not include this hub ({HUB})"),
    ({"aud": "x"}, f"token audience ['x'] does not include this hub ({HUB})"),
    ({"aud": [1]}, "aud claim must be a string or an array of strings"),
    ({"sub": 12}, "sub claim must be a string, got 12"),
    ({"exp": int(NOW)}, "token expired at 2027-01-15T08:00:00Z"),
    ({"nbf": int(NOW) + 1}, "token is not valid before 2027-01-15T08:00:01Z"),
])
def test_draft08_claims(change: dict[str, Any], reason: str) -> None:
    assert refused(verifier(), token08(claims08(**change))).reason == reason


def test_draft08_aud_list_accepted() -> None:
    g = run(verifier().verify(token08(claims08(aud=["https://a", HUB])), "publisher", HUB))
    assert g.dialect == "08"


@pytest.mark.parametrize(("details", "reason"), [
    ("x", "authorization_details must be an array, got str"),
    ([1], "authorization_details[0] must be a JSON object, got int"),
    ([{"actions": ["publish"]}], "authorization_details[0].type must be a string, got None"),
    ([{"type": DETAIL, "topics": [{"match": "*"}]}],
     "authorization_details[0].actions must be a non-empty array of strings"),
    ([{"type": DETAIL, "actions": [], "topics": [{"match": "*"}]}],
     "authorization_details[0].actions must be a non-empty array of strings"),
    ([{"type": DETAIL, "actions": ["publish", 7], "topics": [{"match": "*"}]}],
     "authorization_details[0].actions[1] must be a string, got 7"),
    ([{"type": DETAIL, "actions": ["publish"]}],
     "authorization_details[0].topics must be a non-empty array of topic matcher objects"),
    ([{"type": DETAIL, "actions": ["publish"], "topics": []}],
     "authorization_details[0].topics must be a non-empty array of topic matcher objects"),
    ([{"type": DETAIL, "actions": ["publish"], "topics": ["*"]}],
     "authorization_details[0].topics[0] must be a JSON object with a 'match' member"),
    ([{"type": DETAIL, "actions": ["publish"], "topics": [{"match": ""}]}],
     "authorization_details[0].topics[0].match must be a non-empty string, got ''"),
    ([{"type": DETAIL, "actions": ["publish"], "topics": [{"match_type": "exact"}]}],
     "authorization_details[0].topics[0].match must be a non-empty string, got None"),
    ([{"type": "other"}, {"type": DETAIL, "actions": ["publish"],
                          "topics": [{"match": "*"}, {"match": "a", "match_type": "regex"}]}],
     "authorization_details[1].topics[1]: unsupported match_type 'regex'"),
    ([{"type": DETAIL, "actions": ["publish"], "topics": [{"match": "*", "match_type": "regex"}]}],
     "authorization_details[0].topics[0]: unsupported match_type 'regex'"),
    ([{"type": DETAIL, "actions": ["publish"], "topics": [{"match": "a", "match_type": 1}]}],
     "authorization_details[0].topics[0].match_type must be a string, got 1"),
    ([{"type": DETAIL, "actions": ["subscribe"], "topics": [{"match": "*"}], "payload": [1]}],
     "authorization_details[0].payload must be a JSON object, got list"),
])
def test_draft08_malformed_details_reject_whole_token(details: Any, reason: str) -> None:
    assert refused(verifier(), token08(claims08(authorization_details=details))).reason == reason


def test_draft08_bad_urlpattern() -> None:
    details = [{"type": DETAIL, "actions": ["publish"],
                "topics": [{"match": "https://example.com/(", "match_type": "urlpattern"}]}]
    reason = refused(verifier(), token08(claims08(authorization_details=details))).reason
    assert reason.startswith("authorization_details[0].topics[0]: ")


def test_draft08_limits() -> None:
    one = {"type": DETAIL, "actions": ["publish"], "topics": [{"match": "*"}]}
    v = verifier()
    assert run(v.verify(token08(claims08(authorization_details=[one] * 100)), "publisher", HUB))
    assert refused(v, token08(claims08(authorization_details=[one] * 101))).reason == \
        "authorization_details has 101 entries; this hub accepts at most 100"
    many = {"type": DETAIL, "actions": ["publish"], "topics": [{"match": f"t{i}"} for i in range(101)]}
    assert refused(v, token08(claims08(authorization_details=[many]))).reason == \
        "authorization_details[0].topics has 101 entries; this hub accepts at most 100"
    long = {"type": DETAIL, "actions": ["publish"], "topics": [{"match": "x" * 2049}]}
    assert refused(v, token08(claims08(authorization_details=[long]))).reason == \
        "authorization_details[0].topics[0].match is 2049 characters long; this hub accepts at most 2048"
    ok = {"type": DETAIL, "actions": ["publish"], "topics": [{"match": "x" * 2048}]}
    assert run(v.verify(token08(claims08(authorization_details=[ok])), "publisher", HUB))


# -- protocol selection ------------------------------------------------------------


def test_protocol_restrictions() -> None:
    t07 = token07({"mercure": {"publish": ["*"]}})
    t08 = token08()
    assert "accepts only draft-08" in refused(verifier(protocol="1"), t07).reason
    assert "accepts only draft-07" in refused(verifier(protocol="0"), t08).reason
    assert run(verifier(protocol="0").verify(t07, "publisher", HUB)).dialect == "07"
    assert run(verifier(protocol="1").verify(t08, "publisher", HUB)).dialect == "08"
    # a plain JWT without either claim under protocol 1 is held to draft-08 rules
    assert refused(verifier(protocol="1"), token07({"sub": "x"})).reason.startswith("typ must be at+jwt")


# -- issuers ------------------------------------------------------------------------


def test_issuer_binding_per_key() -> None:
    a_secret, b_secret = "a" * 40, "b" * 40
    v = verifier(KeySpec("publisher", key=a_secret, issuer="https://a"),
                 KeySpec("publisher", key=b_secret, issuer="https://b"))
    ok = token08(claims08(iss="https://a"), key=a_secret)
    assert run(v.verify(ok, "publisher", HUB)).issuer == "https://a"
    # signed by b's key but claiming to be a: only a's key is tried
    forged = token08(claims08(iss="https://a"), key=b_secret)
    assert refused(v, forged).reason == "signature does not verify"
    assert refused(v, token08(claims08(iss="https://c"), key=a_secret)).reason == \
        "token issuer 'https://c' is not trusted for publishers"


def test_global_issuers_and_self_issued_default() -> None:
    v = verifier(issuers=("https://issuer.example",))
    assert run(v.verify(token08(), "publisher", HUB)).issuer == "https://issuer.example"
    assert "is not trusted" in refused(v, token08(claims08(iss="https://evil"))).reason
    # no issuer configured at all: any iss for keys with issuer None
    assert run(verifier().verify(token08(claims08(iss="https://any")), "publisher", HUB))


def test_issuer_alg_mismatch_reason() -> None:
    v = verifier(KeySpec("publisher", key=SECRET, issuer="https://a"),
                 KeySpec("publisher", alg="RS256", key=public_pem(RSA_KEY), issuer="https://b"))
    tok = token08(claims08(iss="https://a"), key=RSA_KEY, alg="RS256")
    assert refused(v, tok).reason == \
        "token signed with RS256 but issuer 'https://a' is trusted only with HS256 for publishers"


def test_draft07_ignores_keys_bound_to_other_issuers() -> None:
    v = verifier(KeySpec("publisher", key=SECRET, issuer="https://a"))
    tok = token07({"mercure": {"publish": ["*"]}})
    assert "bound to other issuers" in refused(v, tok).reason
    tok = token07({"mercure": {"publish": ["*"]}, "iss": "https://a"})
    assert run(v.verify(tok, "publisher", HUB)).may_publish("x")


# -- keys and algorithms ---------------------------------------------------------


@pytest.mark.parametrize(("alg", "private"), [
    ("RS256", RSA_KEY), ("PS384", RSA_KEY), ("ES256", EC_KEY), ("ES384", EC384_KEY),
    ("EdDSA", ED_KEY),
])
def test_asymmetric_keys_both_generations(alg: str, private: Any) -> None:
    v = verifier(KeySpec("subscriber", alg=alg, key=public_pem(private)))
    g = run(v.verify(token07({"mercure": {"subscribe": ["*"]}}, key=private, alg=alg), "subscriber", HUB))
    assert g.may_read(("a",))
    assert run(v.verify(token08(key=private, alg=alg), "subscriber", HUB)).dialect == "08"


def test_wrong_key_signature_does_not_verify() -> None:
    v = verifier(KeySpec("subscriber", alg="RS256", key=public_pem(RSA_KEY)))
    tok = token07({"mercure": {}}, key=RSA_KEY2, alg="RS256")
    assert refused(v, tok, "subscriber").reason == "signature does not verify"
    v2 = verifier(KeySpec("subscriber", alg="RS256", key=public_pem(RSA_KEY)),
                  KeySpec("subscriber", alg="RS256", key=public_pem(RSA_KEY2)))
    assert run(v2.verify(tok, "subscriber", HUB)).dialect == "07"
    from cryptography.hazmat.primitives.asymmetric import ec
    other = ec.generate_private_key(ec.SECP256R1())
    v3 = verifier(KeySpec("subscriber", alg="ES256", key=public_pem(EC_KEY)),
                  KeySpec("subscriber", alg="ES256", key=public_pem(EC_KEY)))
    forged = token07({"mercure": {}}, key=other, alg="ES256")
    assert refused(v3, forged, "subscriber").reason == \
        "signature does not verify with any of the 2 trusted ES256 keys"


def test_alg_not_allowed_reason() -> None:
    v = verifier(KeySpec("subscriber", key=SECRET))
    tok = token07({"mercure": {}}, key=RSA_KEY, alg="RS256")
    assert refused(v, tok, "subscriber").reason == \
        "token signed with RS256 but this hub accepts only HS256 for subscribers"
    assert refused(v, tok, "publisher").reason == "this hub has no key configured for publishers"


def _hs256_with(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    def seg(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    signing_input = f"{seg(json.dumps(header).encode())}.{seg(json.dumps(claims).encode())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{seg(sig)}"


def test_algorithm_confusion_refused() -> None:
    pem = public_pem(RSA_KEY)
    tok = _hs256_with(pem.encode(), {"alg": "HS256", "typ": "JWT"}, {"mercure": {"publish": ["*"]}})
    v = verifier(KeySpec("publisher", alg="RS256", key=pem))
    assert refused(v, tok).reason == \
        "token signed with HS256 but this hub accepts only RS256 for publishers"
    # even with an HMAC key configured next to the RSA key, the PEM is never a secret
    v2 = verifier(KeySpec("publisher", alg="RS256", key=pem), KeySpec("publisher", key=SECRET))
    assert refused(v2, tok).reason == "signature does not verify"


def test_alg_none_refused() -> None:
    tok = raw_token({"alg": "none", "typ": "JWT"}, {"mercure": {"publish": ["*"]}}, "")
    assert refused(verifier(), tok).reason == "token is unsigned (alg none), which is never accepted"
    tok = raw_token({"alg": "NoNe"}, {"mercure": {"publish": ["*"]}}, "")
    assert "unsigned" in refused(verifier(), tok).reason


def test_header_key_material_is_ignored() -> None:
    # A token carrying its own jwk / jku is verified with the configured key only.
    attacker = jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY2.public_key(), as_dict=True)
    tok = token07({"mercure": {"publish": ["*"]}}, key=RSA_KEY2, alg="RS256",
                  jwk=attacker, jku="https://evil/jwks", x5u="https://evil/x5u")
    v = verifier(KeySpec("publisher", alg="RS256", key=public_pem(RSA_KEY)))
    assert refused(v, tok).reason == "signature does not verify"


def test_crit_header_refused() -> None:
    tok = token07({"mercure": {}}, crit=["exp"])
    assert "critical extensions ['exp']" in refused(verifier(), tok).reason


@pytest.mark.parametrize(("token", "reason"), [
    ("abc", "malformed token: not a JWS compact serialization"),
    ("a.b", "malformed token: not a JWS compact serialization"),
    ("a.b.c.d.e", "malformed token: a JWE (encrypted token), but this hub accepts only signed JWS"),
    ("!!!.e30.c2ln", "malformed token: the header is not base64url-encoded JSON"),
    ("W10.e30.c2ln", "malformed token: the header is not a JSON object"),
    ("eyJhbGciOiJIUzI1NiJ9.bm9wZQ.c2ln", "malformed token: the claims is not base64url-encoded JSON"),
    ("e30.e30.c2ln", "token header has no alg"),
])
def test_malformed(token: str, reason: str) -> None:
    assert refused(verifier(), token).reason == reason


def test_duplicate_claims_refused() -> None:
    import base64 as b64
    header = b64.urlsafe_b64encode(b'{"alg":"HS256"}').rstrip(b"=").decode()
    payload = b64.urlsafe_b64encode(b'{"exp":1,"exp":9999999999}').rstrip(b"=").decode()
    assert refused(verifier(), f"{header}.{payload}.c2ln").reason == \
        "malformed token: duplicate member 'exp' in the claims"


def test_token_too_long() -> None:
    v = verifier()
    v.max_token_length = 10
    assert refused(v, token07({})).reason.endswith("this hub accepts at most 10")


def test_reactor_alias_and_real_reactor_default() -> None:
    v = TokenVerifier(HubConfig(keys=(KeySpec("publisher", key=SECRET),)), reactor=clock())
    tok = token07({"mercure": {"publish": ["*"]}, "exp": NOW + 1})
    assert run(v.verify(tok, "publisher", HUB)).dialect == "07"


# -- remembered verifications ----------------------------------------------------


def count_signature_checks(v: TokenVerifier) -> list[str]:
    """A list that gets one entry per signature the verifier really checks."""
    checks: list[str] = []
    real = v._check_signature

    async def counted(*args: Any) -> None:
        checks.append("checked")
        await real(*args)

    v._check_signature = counted  # type: ignore[method-assign]
    return checks


def test_a_verified_token_is_remembered_never_past_its_exp() -> None:
    tok = token07({"mercure": {"publish": ["*"]}, "exp": NOW + 30})
    v = verifier()
    checks = count_signature_checks(v)
    first = run(v.verify(tok, "publisher", HUB))
    assert run(v.verify(tok, "publisher", HUB)) is first
    assert checks == ["checked"]
    # Another role or resource is verified on its own.
    run(v.verify(tok, "subscriber", HUB))
    assert checks == ["checked", "checked"]
    # At exp the remembered grants are gone and the token is refused again.
    v._clock.advance(30)  # type: ignore[attr-defined]
    assert refused(v, tok).reason.startswith("token expired at ")


def test_remembered_for_at_most_verified_ttl_and_failures_never() -> None:
    tok = token07({"mercure": {"publish": ["*"]}})
    v = verifier()
    checks = count_signature_checks(v)
    run(v.verify(tok, "publisher", HUB))
    v._clock.advance(v.verified_ttl)  # type: ignore[attr-defined]
    run(v.verify(tok, "publisher", HUB))
    assert checks == ["checked", "checked"]
    forged = tok[: tok.rindex(".") + 1] + "A" * 43
    refused(v, forged)
    refused(v, forged)
    assert checks == ["checked"] * 4


def test_remembered_tokens_are_bounded() -> None:
    v = verifier()
    v.verified_cache_size = 3
    tokens = [token07({"mercure": {"publish": [f"t{i}"]}}) for i in range(5)]
    for tok in tokens:
        run(v.verify(tok, "publisher", HUB))
    assert len(v._verified) == 3
