"""X-Hub-Signature (WebSub 7.1): sign, verify, secrets."""

from __future__ import annotations

import hashlib
import hmac
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from websub_bridge.signature import ALGORITHMS, SignatureCheck, random_secret, sign, verify

SECRET = b"s3cret"
BODY = b'<?xml version="1.0"?><feed/>'


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_matches_an_independent_hmac(algorithm: str) -> None:
    expected = hmac.new(SECRET, BODY, getattr(hashlib, algorithm)).hexdigest()
    assert sign(algorithm, SECRET, BODY) == f"{algorithm}={expected}"
    assert verify(f"{algorithm}={expected}", SECRET, BODY) is SignatureCheck.VALID


def test_a_known_vector() -> None:
    # RFC 4231 test case 2 (HMAC-SHA-256, key "Jefe").
    header = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert verify(header, b"Jefe", b"what do ya want for nothing?") is SignatureCheck.VALID


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_upper_case_hex_and_method_are_accepted(algorithm: str) -> None:
    method, _, digest = sign(algorithm, SECRET, BODY).partition("=")
    assert verify(f"{method.upper()}={digest.upper()}", SECRET, BODY) is SignatureCheck.VALID
    assert verify(f" {method}={digest} ", SECRET, BODY) is SignatureCheck.VALID


def test_mismatches() -> None:
    good = sign("sha256", SECRET, BODY)
    assert verify(good, b"other", BODY) is SignatureCheck.INVALID
    assert verify(good, SECRET, BODY + b" ") is SignatureCheck.INVALID
    # The right digest under another algorithm's name.
    assert verify("sha512" + good[6:], SECRET, BODY) is SignatureCheck.INVALID
    assert verify(good[:-1], SECRET, BODY) is SignatureCheck.INVALID  # truncated
    assert verify(good[:-1] + "g", SECRET, BODY) is SignatureCheck.INVALID  # not hex
    assert verify("sha256=", SECRET, BODY) is SignatureCheck.INVALID


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing(header: str | None) -> None:
    assert verify(header, SECRET, BODY) is SignatureCheck.MISSING


@pytest.mark.parametrize("header", ["md5=" + "0" * 32, "sha3_256=" + "0" * 64, "nonsense", "=abc"])
def test_unsupported(header: str) -> None:
    assert verify(header, SECRET, BODY) is SignatureCheck.UNSUPPORTED


def test_sign_refuses_unknown_algorithms() -> None:
    with pytest.raises(ValueError):
        sign("md5", SECRET, BODY)


@given(
    algorithm=st.sampled_from(ALGORITHMS),
    secret=st.binary(max_size=200),
    body=st.binary(max_size=2048),
    upper=st.booleans(),
)
def test_round_trip(algorithm: str, secret: bytes, body: bytes, upper: bool) -> None:
    header = sign(algorithm, secret, body)
    method, _, digest = header.partition("=")
    assert method == algorithm and digest == digest.lower()
    assert verify(f"{method}={digest.upper() if upper else digest}", secret, body) is SignatureCheck.VALID


@given(
    algorithm=st.sampled_from(ALGORITHMS),
    secret=st.binary(max_size=64),
    body=st.binary(max_size=256),
    other=st.binary(max_size=256),
)
def test_another_body_never_verifies(algorithm: str, secret: bytes, body: bytes, other: bytes) -> None:
    if other != body:
        assert verify(sign(algorithm, secret, body), secret, other) is SignatureCheck.INVALID


@given(st.text(max_size=300))
def test_verify_never_raises(header: str) -> None:
    assert isinstance(verify(header, SECRET, BODY), SignatureCheck)


def test_random_secrets_are_url_safe_short_and_fresh() -> None:
    secrets = {random_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert set(secret) <= set(string.ascii_letters + string.digits + "-_")
        assert 40 <= len(secret.encode()) < 200
    assert len(random_secret(144).encode()) < 200
    with pytest.raises(ValueError):
        random_secret(8)
    with pytest.raises(ValueError):
        random_secret(150)
