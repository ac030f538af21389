"""mercure-token: mint then verify with TokenVerifier, decode, errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from twisted.internet.task import Clock

from mercure_twisted import token_cli
from mercure_twisted.auth import TokenVerifier
from mercure_twisted.config import HubConfig, KeySpec

from ._authkit import EC_KEY, ED_KEY, HUB, RSA_KEY, SECRET, private_pem, public_pem, run


def mint(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert token_cli.main(list(argv)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    token = out.strip()
    assert out == token + "\n" and token.count(".") == 2
    return token


def fail(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert token_cli.main(list(argv)) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("mercure-token: error: ")
    return err


def verifier(*keys: KeySpec) -> TokenVerifier:
    clock = Clock()
    clock.advance(time.time())
    return TokenVerifier(HubConfig(keys=keys), clock=clock)


def test_draft07_round_trip(capsys: pytest.CaptureFixture[str]) -> None:
    tok = mint(capsys, "--key", SECRET, "--publish", "https://example.com/books/{id}",
               "--subscribe", "*", "--payload", '{"u": 1}')
    g = run(verifier(KeySpec("publisher", key=SECRET)).verify(tok, "publisher", HUB))
    assert g.dialect == "07" and g.may_publish("https://example.com/books/1")
    assert g.default_payload == {"u": 1} and g.expires_at is not None
    never = mint(capsys, "--key", SECRET, "--publish", "*", "--expires", "never")
    assert "exp" not in jwt.decode(never, options={"verify_signature": False})


@pytest.mark.parametrize(("private", "alg"), [(RSA_KEY, "RS256"), (EC_KEY, "ES256"), (ED_KEY, "EdDSA")])
def test_draft08_round_trip_pem(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                private: Any, alg: str) -> None:
    key_file = tmp_path / "key.pem"
    key_file.write_text(private_pem(private))
    tok = mint(capsys, "--draft", "08", "--key", str(key_file), "--issuer", "https://example.com",
               "--audience", HUB, "--subscribe", "https://example.com/books/:id",
               "--match-type", "urlpattern", "--payload", '{"p": 2}', "--subject", "alice")
    header = jwt.get_unverified_header(tok)
    assert header["typ"] == "at+jwt" and header["alg"] == alg
    claims = jwt.decode(tok, options={"verify_signature": False})
    assert set(claims) >= {"iss", "exp", "aud", "sub", "client_id", "iat", "jti", "authorization_details"}
    assert claims["client_id"] == "https://example.com"
    v = verifier(KeySpec("subscriber", alg=alg, key=public_pem(private), issuer="https://example.com"))
    g = run(v.verify(tok, "subscriber", HUB))
    assert g.dialect == "08" and g.subject == "alice" and g.issuer == "https://example.com"
    assert g.may_read(("https://example.com/books/7",))
    assert g.payload_for("https://example.com/books/:id") == {"p": 2}


def test_key_from_environment(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERCURE_PUBLISHER_JWT_KEY", SECRET)
    tok = mint(capsys, "--draft", "08", "--issuer", "i", "--audience", HUB, "--publish", "*")
    g = run(verifier(KeySpec("publisher", key=SECRET)).verify(tok, "publisher", HUB))
    assert g.may_publish("anything")


@pytest.mark.parametrize(("argv", "message"), [
    (["--draft", "08", "--key", SECRET, "--audience", HUB], "need --issuer"),
    (["--draft", "08", "--key", SECRET, "--issuer", "i"], "need --audience"),
    (["--draft", "08", "--key", SECRET, "--issuer", "i", "--audience", HUB, "--expires", "never"], "must expire"),
    (["--draft", "08", "--key", SECRET, "--issuer", "i", "--audience", HUB, "--payload", "[1]"], "JSON object"),
    (["--key", SECRET, "--payload", "{"], "--payload is not valid JSON"),
    (["--key", SECRET, "--alg", "RS256"], "RS256 needs a PEM private key file"),
    (["--key", SECRET, "--alg", "none"], "invalid choice"),
    (["--key", SECRET, "--expires", "soon"], "--expires must be a number"),
    (["--bogus"], "unrecognized arguments"),
])
def test_errors(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                argv: list[str], message: str) -> None:
    assert message in fail(capsys, *argv)


def test_no_key(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MERCURE_PUBLISHER_JWT_KEY", raising=False)
    monkeypatch.delenv("MERCURE_SUBSCRIBER_JWT_KEY", raising=False)
    assert "no key" in fail(capsys, "--publish", "*")


def test_hmac_alg_with_pem_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    key_file = tmp_path / "key.pem"
    key_file.write_text(private_pem(RSA_KEY))
    assert "needs a shared secret" in fail(capsys, "--key", str(key_file), "--alg", "HS256")


def test_decode(capsys: pytest.CaptureFixture[str]) -> None:
    tok = mint(capsys, "--key", SECRET, "--publish", "*")
    assert token_cli.main(["decode", tok]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["header"]["alg"] == "HS256" and doc["claims"]["mercure"] == {"publish": ["*"]}
    assert "exp" in doc["times_utc"] and "NOT verified" in err
    assert "not a decodable JWS" in fail(capsys, "decode", "garbage")


def test_help_documents_env(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        token_cli.main(["--help"])
    assert info.value.code == 0
    assert "MERCURE_PUBLISHER_JWT_KEY" in capsys.readouterr().out
