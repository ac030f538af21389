"""Token verification for both Mercure generations.

:class:`TokenVerifier` turns a presented JWS into :class:`Grants`, or raises
:class:`TokenError` (401 ``invalid_token``) with a precise reason.

* The signature is checked with pyjwt against an explicit allow-list: the
  algorithms of the keys configured for the role (never ``none``, never taken
  from the token).  Every key is bound to exactly one algorithm and the key
  types are checked when the key is loaded, so an ``HS256`` token "signed"
  with an RSA public key as secret is refused (algorithm confusion).  Key
  material in the token header (``jwk``, ``jku``, ``x5u``, ``x5c``) is never
  used; ``kid`` only selects among the keys of a JWK Set.
* Generation: a header ``typ`` of ``at+jwt`` (or ``application/at+jwt``,
  case-insensitive) or an ``authorization_details`` claim makes a draft-08
  token; otherwise a draft-07 token (``mercure`` claim, possibly absent:
  such a token grants nothing).  ``HubConfig.protocol`` restricts which
  generation is accepted.
* Draft-08 issuers: a key is bound to ``KeySpec.issuer``, or when that is
  ``None`` to the global ``HubConfig.issuers``.  When neither is configured
  the key accepts any ``iss`` ("self-issued default": whoever holds the key
  is the issuer).  Only the keys bound to the token's ``iss`` are tried.
* Draft-07 tokens carry no issuer: they are verified with the keys whose
  ``KeySpec.issuer`` is ``None``, or equal to the token's ``iss`` when it
  has one.  ``aud`` is not checked for draft-07 tokens (the draft and the
  reference hub do not check it).
* ``exp``/``nbf`` are checked against the injected clock
  (``IReactorTime.seconds``) with ``leeway`` seconds of tolerance (0 by
  default).
"""

from __future__ import annotations

from collections import OrderedDict

import base64
import binascii
import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jwt
from twisted.internet.interfaces import IReactorTime

from ..config import HubConfig, Role
from ..matching import MATCHER_TYPES, Matcher, MatcherError, compile_matcher, compile_selector
from ._errors import TokenError, format_time, shorten
from ._grants import GrantRule, Grants
from ._keys import HTTPClient, IKeySource, key_source_for

__all__ = [
    "KNOWN_ACTIONS",
    "MERCURE_DETAIL_TYPE",
    "TokenVerifier",
    "detect_generation",
    "parse_authorization_details",
    "parse_mercure_claim",
]

MERCURE_DETAIL_TYPE = "https://mercure.rocks/authorization-detail"
KNOWN_ACTIONS = frozenset({"publish", "subscribe"})
Generation = Literal["07", "08"]

_ROLES: tuple[Role, ...] = ("publisher", "subscriber")


def _invalid(reason: str) -> TokenError:
    return TokenError.invalid_token(reason)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Duplicate(key)
        result[key] = value
    return result


class _Duplicate(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _decode_segment(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)
        value = json.loads(
            raw, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except _Duplicate as dup:
        raise _invalid(f"malformed token: duplicate member {shorten(str(dup))} in the {what}") from None
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise _invalid(f"malformed token: the {what} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise _invalid(f"malformed token: the {what} is not a JSON object")
    return value


def split_token(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The unverified header and claims of a compact JWS, or TokenError."""
    parts = token.split(".")
    if len(parts) == 5:
        raise _invalid("malformed token: a JWE (encrypted token), but this hub accepts only signed JWS")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise _invalid("malformed token: not a JWS compact serialization")
    return _decode_segment(parts[0], "header"), _decode_segment(parts[1], "claims")


def _is_at_jwt(typ: Any) -> bool:
    if not isinstance(typ, str):
        return False
    lowered = typ.lower()
    return lowered.removeprefix("application/") == "at+jwt"


def detect_generation(header: Mapping[str, Any], claims: Mapping[str, Any]) -> Generation | None:
    """"08" for an at+jwt token or authorization_details, "07" for a mercure claim."""
    if _is_at_jwt(header.get("typ")) or "authorization_details" in claims:
        return "08"
    if "mercure" in claims:
        return "07"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if not _is_number(value):
        raise _invalid(f"{name} claim must be a number (seconds since the epoch), got {shorten(value)}")
    return float(value)


def parse_mercure_claim(claim: Any) -> tuple[tuple[GrantRule, ...], Any]:
    """Draft-07: the rules and ``payload`` of a ``mercure`` claim."""
    if claim is None:
        return (), None
    if not isinstance(claim, dict):
        raise _invalid(f"mercure claim must be a JSON object, got {type(claim).__name__}")
    rules: list[GrantRule] = []
    for action in ("publish", "subscribe"):
        selectors = claim.get(action)
        if selectors is None:
            continue
        if not isinstance(selectors, list):
            raise _invalid(
                f"mercure.{action} must be an array of topic selectors, got {type(selectors).__name__}"
            )
        matchers: list[Matcher] = []
        for index, selector in enumerate(selectors):
            if not isinstance(selector, str) or not selector:
                raise _invalid(
                    f"mercure.{action}[{index}] must be a non-empty string, got {shorten(selector)}"
                )
            matchers.append(compile_selector(selector))
        if matchers:
            rules.append(GrantRule(actions=frozenset({action}), matchers=tuple(matchers)))
    return tuple(rules), claim.get("payload")


def parse_authorization_details(
    details: Any,
    *,
    base_url: str,
    max_details: int = 100,
    max_topics: int = 100,
    max_pattern_length: int = 2048,
) -> tuple[GrantRule, ...]:
    """Draft-08: one rule per Mercure authorization detail, strictly.

    Details of other types are skipped; any malformed Mercure detail rejects
    the whole token (TokenError naming the exact path).  Unknown actions are
    ignored; a detail left with no known action grants nothing.
    """
    if details is None:
        return ()
    if not isinstance(details, list):
        raise _invalid(f"authorization_details must be an array, got {type(details).__name__}")
    if len(details) > max_details:
        raise _invalid(
            f"authorization_details has {len(details)} entries; this hub accepts at most {max_details}"
        )
    rules: list[GrantRule] = []
    for index, detail in enumerate(details):
        path = f"authorization_details[{index}]"
        if not isinstance(detail, dict):
            raise _invalid(f"{path} must be a JSON object, got {type(detail).__name__}")
        kind = detail.get("type")
        if not isinstance(kind, str):
            raise _invalid(f"{path}.type must be a string, got {shorten(kind)}")
        if kind != MERCURE_DETAIL_TYPE:
            continue
        actions = detail.get("actions")
        if not isinstance(actions, list) or not actions:
            raise _invalid(f"{path}.actions must be a non-empty array of strings")
        for a_index, action in enumerate(actions):
            if not isinstance(action, str):
                raise _invalid(f"{path}.actions[{a_index}] must be a string, got {shorten(action)}")
        topics = detail.get("topics")
        if not isinstance(topics, list) or not topics:
            raise _invalid(f"{path}.topics must be a non-empty array of topic matcher objects")
        if len(topics) > max_topics:
            raise _invalid(
                f"{path}.topics has {len(topics)} entries; this hub accepts at most {max_topics}"
            )
        matchers: list[Matcher] = []
        for t_index, entry in enumerate(topics):
            t_path = f"{path}.topics[{t_index}]"
            if not isinstance(entry, dict):
                raise _invalid(f"{t_path} must be a JSON object with a 'match' member")
            match = entry.get("match")
            if not isinstance(match, str) or not match:
                raise _invalid(f"{t_path}.match must be a non-empty string, got {shorten(match)}")
            if len(match) > max_pattern_length:
                raise _invalid(
                    f"{t_path}.match is {len(match)} characters long;"
                    f" this hub accepts at most {max_pattern_length}"
                )
            match_type = entry.get("match_type", "exact")
            if not isinstance(match_type, str):
                raise _invalid(f"{t_path}.match_type must be a string, got {shorten(match_type)}")
            if match_type not in MATCHER_TYPES:
                raise _invalid(f"{t_path}: unsupported match_type {shorten(match_type)}")
            try:
                matchers.append(compile_matcher(match_type, match, base_url))
            except MatcherError as exc:
                message = str(exc) if len(str(exc)) <= 200 else str(exc)[:197] + "..."
                raise _invalid(f"{t_path}: {message}") from None
        payload = detail.get("payload")
        if "payload" in detail and not isinstance(payload, dict):
            raise _invalid(f"{path}.payload must be a JSON object, got {type(payload).__name__}")
        known = frozenset(a for a in actions if a in KNOWN_ACTIONS)
        if known:
            rules.append(GrantRule(actions=known, matchers=tuple(matchers), payload=payload))
    return tuple(rules)


class TokenVerifier:
    """Verifies presented tokens against the keys of a :class:`HubConfig`.

    ``http_client`` (treq-like: ``get`` and ``content``) fetches JWK Sets;
    ``clock`` (or its alias ``reactor``) gives the time for ``exp``/``nbf``
    and rate-limits JWK Set refreshes.  ``sources`` replaces the key sources built from
    ``config.keys`` (tests, custom key stores).  The limits and ``leeway``
    are plain attributes.
    """

    leeway: float
    max_details: int = 100
    max_topics_per_detail: int = 100
    max_pattern_length: int = 2048
    max_token_length: int = 64 * 1024

    def __init__(
        self,
        config: HubConfig,
        *,
        http_client: HTTPClient | None = None,
        clock: IReactorTime | None = None,
        reactor: IReactorTime | None = None,
        leeway: float = 0.0,
        sources: Mapping[Role, Sequence[IKeySource]] | None = None,
    ) -> None:
        if clock is None:
            clock = reactor
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        assert clock is not None
        self.config = config
        self.leeway = leeway
        self._clock = clock
        if sources is None:
            self._sources: dict[Role, tuple[IKeySource, ...]] = {
                role: tuple(
                    key_source_for(spec, http_client=http_client, clock=clock)
                    for spec in config.keys_for(role)
                )
                for role in _ROLES
            }
        else:
            self._sources = {role: tuple(sources.get(role, ())) for role in _ROLES}
        self._verified: OrderedDict[tuple[str, str, str], tuple[Grants, float]] = OrderedDict()

    def sources(self, role: Role) -> tuple[IKeySource, ...]:
        return self._sources[role]

    def _bound_issuers(self, source: IKeySource) -> tuple[str, ...] | None:
        """The issuers a source is trusted for; None means any (self-issued default)."""
        if source.issuer is not None:
            return (source.issuer,)
        if self.config.issuers:
            return tuple(self.config.issuers)
        return None

    #: How many verified tokens are remembered, and for how long at most.
    #: A backend publishing with the same token pays for its signature check
    #: once a minute instead of on every publish (~60% of a publish's CPU).
    #: Only successes are remembered, never past the token's ``exp``; a key
    #: removed from a JWKS stops being honoured within ``verified_ttl``.
    verified_cache_size: int = 4096
    verified_ttl: float = 60.0

    async def verify(self, token: str, role: Role, resource: str) -> Grants:
        """The grants of a valid token, or TokenError(401, "invalid_token", reason)."""
        key = (token, role, resource)
        now = self._clock.seconds()
        cached = self._verified.get(key)
        if cached is not None:
            grants, valid_until = cached
            if now < valid_until:
                self._verified.move_to_end(key)
                return grants
            del self._verified[key]
        grants = await self._verify(token, role, resource)
        valid_until = now + self.verified_ttl
        if grants.expires_at is not None:
            valid_until = min(valid_until, grants.expires_at + self.leeway)
        if self.verified_cache_size > 0 and valid_until > now:
            self._verified[key] = (grants, valid_until)
            if len(self._verified) > self.verified_cache_size:
                self._verified.popitem(last=False)
        return grants

    async def _verify(self, token: str, role: Role, resource: str) -> Grants:
        if len(token) > self.max_token_length:
            raise _invalid(
                f"token is {len(token)} characters long; this hub accepts at most {self.max_token_length}"
            )
        header, claims = split_token(token)
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise _invalid("token header has no alg")
        if alg.lower() == "none":
            raise _invalid("token is unsigned (alg none), which is never accepted")
        sources = self._sources[role]
        if not sources:
            raise _invalid(f"this hub has no key configured for {role}s")
        accepted = _unique(s.alg for s in sources)
        if alg not in accepted:
            raise _invalid(
                f"token signed with {shorten(alg)[1:-1]} but this hub accepts only"
                f" {' or '.join(accepted)} for {role}s"
            )
        if "crit" in header:
            raise _invalid(
                f"token header lists critical extensions {shorten(header['crit'])}"
                " this hub does not understand"
            )
        if "b64" in header:
            raise _invalid("token header b64 (unencoded payload) is not supported")

        generation = detect_generation(header, claims)
        if generation is None:
            generation = "07" if self.config.accepts_draft07 else "08"
        if generation == "08" and not self.config.accepts_draft08:
            raise _invalid(
                "draft-08 token (typ at+jwt or authorization_details) but this hub"
                " accepts only draft-07 tokens (protocol 0)"
            )
        if generation == "07" and not self.config.accepts_draft07:
            raise _invalid(
                "draft-07 token (mercure claim) but this hub accepts only draft-08"
                " at+jwt tokens (protocol 1)"
            )

        if generation == "08":
            typ = header.get("typ")
            if not _is_at_jwt(typ):
                got = "the token has none" if typ is None else f"got {shorten(typ)}"
                raise _invalid(f"typ must be at+jwt, {got}")
            iss = claims.get("iss")
            if iss is None:
                raise _invalid("token has no iss claim")
            if not isinstance(iss, str):
                raise _invalid(f"iss claim must be a string, got {shorten(iss)}")
            bound = [s for s in sources if _trusts(self._bound_issuers(s), iss)]
            if not bound:
                raise _invalid(f"token issuer {shorten(iss)} is not trusted for {role}s")
            candidates = [s for s in bound if s.alg == alg]
            if not candidates:
                raise _invalid(
                    f"token signed with {alg} but issuer {shorten(iss)} is trusted only with"
                    f" {' or '.join(_unique(s.alg for s in bound))} for {role}s"
                )
        else:
            raw_iss = claims.get("iss")
            iss07 = raw_iss if isinstance(raw_iss, str) else None
            candidates = [
                s for s in sources if s.alg == alg and (s.issuer is None or s.issuer == iss07)
            ]
            if not candidates:
                raise _invalid(
                    f"token signed with {alg} but the {alg} keys for {role}s are bound to"
                    " other issuers than the token's"
                )

        await self._check_signature(token, alg, header, candidates)
        return self._grants(generation, header, claims, resource)

    async def _check_signature(
        self, token: str, alg: str, header: dict[str, Any], candidates: Sequence[IKeySource]
    ) -> None:
        failures: list[str] = []
        tried = 0
        jws = jwt.PyJWS(algorithms=[alg])
        for source in candidates:
            try:
                keys = await source.key_for(header)
            except TokenError as exc:
                failures.append(exc.reason)
                continue
            for key in keys:
                if key.alg != alg:
                    continue
                tried += 1
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                        jws.decode_complete(token, key=key.key, algorithms=[alg])
                except jwt.InvalidSignatureError:
                    continue
                except jwt.InvalidAlgorithmError:
                    raise _invalid(f"token alg {alg} is not allowed") from None
                except jwt.InvalidKeyError:
                    continue
                except jwt.DecodeError:
                    raise _invalid("malformed token: the signature is not base64url") from None
                return
        if tried == 0 and failures:
            raise _invalid("; ".join(failures))
        if tried > 1:
            raise _invalid(f"signature does not verify with any of the {tried} trusted {alg} keys")
        raise _invalid("signature does not verify")

    def _grants(
        self, generation: Generation, header: dict[str, Any], claims: dict[str, Any], resource: str
    ) -> Grants:
        now = self._clock.seconds()
        exp = _numeric_claim(claims, "exp")
        nbf = _numeric_claim(claims, "nbf")
        _numeric_claim(claims, "iat")
        if exp is None and generation == "08":
            raise _invalid("token has no exp claim")
        if exp is not None and now >= exp + self.leeway:
            raise _invalid(f"token expired at {format_time(exp)}")
        if nbf is not None and now + self.leeway < nbf:
            raise _invalid(f"token is not valid before {format_time(nbf)}")
        sub = claims.get("sub")
        iss = claims.get("iss")

        if generation == "07":
            rules, payload = parse_mercure_claim(claims.get("mercure"))
            return Grants(
                dialect="07",
                rules=rules,
                expires_at=exp,
                subject=sub if isinstance(sub, str) else None,
                issuer=iss if isinstance(iss, str) else None,
                default_payload=payload,
            )

        aud = claims.get("aud")
        if aud is None:
            raise _invalid(f"token has no aud claim (it must include this hub, {resource})")
        if isinstance(aud, str):
            audiences = [aud]
        elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
            audiences = aud
        else:
            raise _invalid("aud claim must be a string or an array of strings")
        if resource not in audiences:
            raise _invalid(
                f"token audience {shorten(audiences, 200)} does not include this hub ({resource})"
            )
        if sub is not None and not isinstance(sub, str):
            raise _invalid(f"sub claim must be a string, got {shorten(sub)}")
        rules = parse_authorization_details(
            claims.get("authorization_details"),
            base_url=resource,
            max_details=self.max_details,
            max_topics=self.max_topics_per_detail,
            max_pattern_length=self.max_pattern_length,
        )
        return Grants(
            dialect="08",
            rules=rules,
            expires_at=exp,
            subject=sub,
            issuer=iss if isinstance(iss, str) else None,
        )


def _trusts(issuers: tuple[str, ...] | None, iss: str) -> bool:
    return issuers is None or iss in issuers


def _unique(values: Any) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen
