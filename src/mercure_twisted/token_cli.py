"""``mercure-token``: mint (or decode) tokens for a Mercure hub.

Mint a draft-07 token (``mercure`` claim) or a draft-08 JWT access token
(``typ: at+jwt`` with ``authorization_details``)::

    mercure-token --key "$SECRET" --publish 'https://example.com/books/{id}'
    mercure-token --draft 08 --key ec-private.pem --issuer https://example.com \\
        --audience https://hub.example.com/.well-known/mercure \\
        --subscribe https://example.com/books/:id --match-type urlpattern

Decode a token without verifying it (to understand a 401)::

    mercure-token decode "$TOKEN"

The token goes to stdout, nothing else; errors are one line on stderr and
exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from .auth import MERCURE_DETAIL_TYPE
from .config import HMAC_ALGORITHMS, SUPPORTED_ALGORITHMS

__all__ = ["TokenCLIError", "build_claims", "main", "mint"]

_PROG = "mercure-token"


class TokenCLIError(Exception):
    """A usage error, printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise TokenCLIError(message)


_EPILOG = """\
key: --key is a shared secret (HS256/384/512), or the path of a PEM private
key file (RSA: RS*/PS*, EC: ES256/384/512, Ed25519/Ed448: EdDSA); an existing
file path is read, anything else is used as the secret itself.  Without
--key, the key is read from $MERCURE_PUBLISHER_JWT_KEY when the token has
--publish topics, else from $MERCURE_SUBSCRIBER_JWT_KEY (falling back to
$MERCURE_PUBLISHER_JWT_KEY): this keeps secrets out of shell history.
--alg defaults to HS256 for a secret and to the key's algorithm for a PEM key.

draft 08 tokens need --issuer (the issuer the hub trusts the key for) and
--audience (the hub's URL, e.g. https://hub.example.com/.well-known/mercure);
they carry typ at+jwt, iss, exp, aud, sub (default: a random urn:uuid),
client_id (default: the issuer), iat and jti.

decode: `mercure-token decode TOKEN` (or `-` to read stdin) prints the header
and claims WITHOUT verifying the signature.
"""


def _mint_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=_PROG,
        description="Mint a Mercure token (draft-07 mercure claim or draft-08 at+jwt).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--key", help="HMAC secret or PEM private key file (see below)")
    p.add_argument("--alg", choices=SUPPORTED_ALGORITHMS, help="signature algorithm")
    p.add_argument("--draft", choices=("07", "08"), default="07", help="token generation (default 07)")
    p.add_argument("--publish", nargs="+", action="extend", default=[], metavar="TOPIC",
                   help="topics (selectors/matchers) the token may publish to")
    p.add_argument("--subscribe", nargs="+", action="extend", default=[], metavar="TOPIC",
                   help="topics the token may receive private updates for")
    p.add_argument("--match-type", choices=("exact", "urlpattern"), default="exact",
                   help="draft 08: match_type of every topic (default exact; '*' is the wildcard)")
    p.add_argument("--payload", metavar="JSON",
                   help="subscription payload (draft 08: a JSON object)")
    p.add_argument("--expires", default="3600", metavar="SECONDS|never",
                   help="lifetime in seconds (default 3600); 'never' omits exp (draft 07 only)")
    p.add_argument("--issuer", metavar="ISS", help="iss claim (required for draft 08)")
    p.add_argument("--audience", metavar="URL", action="append", default=[],
                   help="aud claim, repeatable (required for draft 08)")
    p.add_argument("--subject", metavar="SUB", help="sub claim")
    p.add_argument("--client-id", metavar="ID", help="draft 08 client_id (default: the issuer)")
    return p


def _decode_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=f"{_PROG} decode",
                description="Print a token's header and claims WITHOUT verifying it.")
    p.add_argument("token", help="the token, or - to read it from stdin")
    return p


def _read_key(value: str | None, publishing: bool) -> str:
    if value is None:
        names = ["MERCURE_PUBLISHER_JWT_KEY"] if publishing else [
            "MERCURE_SUBSCRIBER_JWT_KEY", "MERCURE_PUBLISHER_JWT_KEY"]
        for name in names:
            if os.environ.get(name):
                value = os.environ[name]
                break
        else:
            raise TokenCLIError(f"no key: give --key or set ${names[0]}")
    assert value is not None
    if os.path.isfile(value):
        try:
            with open(value, encoding="utf-8") as f:
                return f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenCLIError(f"cannot read key file {value}: {exc.__class__.__name__}") from None
    if value == "":
        raise TokenCLIError("the key is empty")
    return value


def _alg_for_private_key(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(
            key.curve.name, "ES256")
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return "EdDSA"
    raise TokenCLIError(f"unsupported private key type {type(key).__name__}")


def _signing_key(key_text: str, alg: str | None) -> tuple[Any, str]:
    stripped = key_text.strip()
    if stripped.startswith("-----BEGIN"):
        if "PRIVATE KEY" not in stripped.splitlines()[0]:
            raise TokenCLIError("the PEM key is not a private key: signing needs the private key")
        try:
            private = serialization.load_pem_private_key(stripped.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise TokenCLIError(f"cannot load the PEM private key ({exc.__class__.__name__})") from None
        chosen = alg or _alg_for_private_key(private)
        if chosen in HMAC_ALGORITHMS:
            raise TokenCLIError(f"{chosen} needs a shared secret, not a PEM key")
        return private, chosen
    chosen = alg or "HS256"
    if chosen not in HMAC_ALGORITHMS:
        raise TokenCLIError(f"{chosen} needs a PEM private key file, not a secret")
    return key_text, chosen


def build_claims(args: argparse.Namespace, now: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (extra header, claims) of the token described by the options."""
    payload: Any = None
    if args.payload is not None:
        try:
            payload = json.loads(args.payload)
        except ValueError:
            raise TokenCLIError("--payload is not valid JSON") from None
    if args.expires == "never":
        exp = None
    else:
        try:
            lifetime = int(args.expires)
        except ValueError:
            raise TokenCLIError("--expires must be a number of seconds or 'never'") from None
        if lifetime <= 0:
            raise TokenCLIError("--expires must be positive")
        exp = int(now) + lifetime
    claims: dict[str, Any] = {}
    if args.draft == "07":
        mercure: dict[str, Any] = {}
        if args.publish:
            mercure["publish"] = list(args.publish)
        if args.subscribe:
            mercure["subscribe"] = list(args.subscribe)
        if payload is not None:
            mercure["payload"] = payload
        claims["mercure"] = mercure
        if exp is not None:
            claims["exp"] = exp
        if args.issuer:
            claims["iss"] = args.issuer
        if args.audience:
            claims["aud"] = args.audience[0] if len(args.audience) == 1 else list(args.audience)
        if args.subject:
            claims["sub"] = args.subject
        return {}, claims

    if not args.issuer:
        raise TokenCLIError("draft 08 tokens need --issuer (the iss the hub trusts the key for)")
    if not args.audience:
        raise TokenCLIError(
            "draft 08 tokens need --audience (the hub's URL, e.g."
            " https://hub.example.com/.well-known/mercure)")
    if exp is None:
        raise TokenCLIError("draft 08 tokens must expire: --expires never is for draft 07 only")
    if payload is not None and not isinstance(payload, dict):
        raise TokenCLIError("--payload must be a JSON object for draft 08")

    def matchers(topics: Sequence[str]) -> list[dict[str, str]]:
        out = []
        for topic in topics:
            entry = {"match": topic}
            if topic != "*" and args.match_type != "exact":
                entry["match_type"] = args.match_type
            out.append(entry)
        return out

    details: list[dict[str, Any]] = []
    if args.publish:
        details.append({"type": MERCURE_DETAIL_TYPE, "actions": ["publish"],
                        "topics": matchers(args.publish)})
    if args.subscribe:
        detail: dict[str, Any] = {"type": MERCURE_DETAIL_TYPE, "actions": ["subscribe"],
                                  "topics": matchers(args.subscribe)}
        if payload is not None:
            detail["payload"] = payload
        details.append(detail)
    claims = {
        "iss": args.issuer,
        "aud": args.audience[0] if len(args.audience) == 1 else list(args.audience),
        "sub": args.subject or f"urn:uuid:{uuid.uuid4()}",
        "client_id": args.client_id or args.issuer,
        "iat": int(now),
        "exp": exp,
        "jti": f"urn:uuid:{uuid.uuid4()}",
        "authorization_details": details,
    }
    return {"typ": "at+jwt"}, claims


def mint(argv: Sequence[str], now: float | None = None) -> str:
    """The token described by command-line ``argv`` (raises TokenCLIError)."""
    args = _mint_parser().parse_args(list(argv))
    key_text = _read_key(args.key, publishing=bool(args.publish))
    key, alg = _signing_key(key_text, args.alg)
    header, claims = build_claims(args, time.time() if now is None else now)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            return jwt.encode(claims, key, algorithm=alg, headers=header or None)
    except (jwt.InvalidKeyError, ValueError, TypeError) as exc:
        raise TokenCLIError(f"cannot sign with {alg}: {exc.__class__.__name__}") from None


def decode(argv: Sequence[str]) -> str:
    """Header and claims of a token, unverified, as indented JSON."""
    args = _decode_parser().parse_args(list(argv))
    token = sys.stdin.read().strip() if args.token == "-" else args.token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenCLIError(f"not a decodable JWS: {exc}") from None
    notes: dict[str, str] = {}
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            notes[name] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))
    document: dict[str, Any] = {"header": header, "claims": claims, "times_utc": notes}
    return json.dumps(document, indent=2, sort_keys=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "decode":
            print(decode(args[1:]))
            print("(signature NOT verified)", file=sys.stderr)
        else:
            print(mint(args))
    except TokenCLIError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
