"""Topic matchers of both drafts, compiled once and cached.

Draft-07 topic selectors are ``*``, exact strings, or RFC 6570 URI templates
(matched, not expanded: a template is compiled to an RE2 pattern, linear
time).  Draft-08 matchers are ``exact`` and ``urlpattern`` (WHATWG URL
Pattern, evaluated by the Rust ``urlpattern`` crate on the linear-time
``regex`` engine); ``*`` is the wildcard whatever the type.

Every matcher is an immutable value with ``kind``, ``pattern`` and
``matches(topic)``; the ``compile_*`` functions are cached so that thousands of
subscribers with the same selector share one compiled object.
"""

from __future__ import annotations

import functools
from typing import Any, Final, Protocol

import attrs
import re2
import urlpattern

__all__ = [
    "MATCHER_TYPES",
    "WILDCARD",
    "Matcher",
    "MatcherError",
    "compile_matcher",
    "compile_selector",
]

MATCHER_TYPES: Final = ("exact", "urlpattern")

_CACHE_SIZE: Final = 65536


class MatcherError(ValueError):
    """A draft-08 matcher that cannot be interpreted (unknown type, bad pattern)."""


class Matcher(Protocol):
    """What every compiled matcher offers (attributes are read-only)."""

    @property
    def kind(self) -> str:
        """``"wildcard"``, ``"exact"``, ``"template"`` or ``"urlpattern"``."""

    @property
    def pattern(self) -> str:
        """The selector or pattern string, exactly as given."""

    def matches(self, topic: str) -> bool:
        """Whether ``topic`` is selected.  Never raises."""


@attrs.frozen
class WildcardMatcher:
    """The reserved ``*``: matches every topic."""

    pattern: str = "*"
    kind: str = attrs.field(default="wildcard", init=False)

    def matches(self, topic: str) -> bool:
        return True


WILDCARD: Final = WildcardMatcher()


@attrs.frozen
class ExactMatcher:
    """Case-sensitive, code-point-for-code-point equality, no normalization.

    Equality of Python strings is equality of their UTF-8 bytes, so this is
    the byte-for-byte comparison draft-08 requires; nothing is resolved
    against any base URL.
    """

    pattern: str
    kind: str = attrs.field(default="exact", init=False)

    def matches(self, topic: str) -> bool:
        return topic == self.pattern


@attrs.frozen
class TemplateMatcher:
    """A draft-07 RFC 6570 URI template, compiled to an anchored RE2 regex.

    RE2 guarantees matching in time linear in the topic length.  The
    template string itself also matches (draft-07 step 2).
    """

    pattern: str
    regex: Any = attrs.field(eq=False, repr=False)
    kind: str = attrs.field(default="template", init=False)

    def matches(self, topic: str) -> bool:
        if topic == self.pattern:
            return True
        try:
            return self.regex.fullmatch(topic) is not None
        except (UnicodeError, TypeError, ValueError):  # e.g. lone surrogates
            return False


@attrs.frozen
class URLPatternMatcher:
    """A draft-08 WHATWG URL pattern.

    Evaluated by the Rust ``urlpattern`` crate (through the ``urlpattern``
    Python binding), whose regular expressions run on the Rust ``regex``
    crate: matching is linear time, so crafted patterns cannot cause
    catastrophic backtracking.  ``ignoreCase`` is never enabled.  Relative
    topics are resolved against ``base_url`` (the hub URL); a topic that
    cannot be parsed as a URL reference does not match.
    """

    pattern: str
    base_url: str
    compiled: Any = attrs.field(eq=False, repr=False)
    kind: str = attrs.field(default="urlpattern", init=False)

    def matches(self, topic: str) -> bool:
        try:
            return bool(self.compiled.test(topic, self.base_url))
        except (ValueError, TypeError, UnicodeError):
            return False


# --------------------------------------------------------------------------
# Draft-07: topic selectors
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_selector(selector: str) -> Matcher:
    """Compile a draft-07 topic selector; never raises.

    ``*`` is the wildcard; a string holding at least one well-formed RFC 6570
    expression (and no stray brace) is a URI template; anything else,
    including a string with malformed braces, is an exact matcher.
    """
    if selector == "*":
        return WILDCARD
    if "{" not in selector and "}" not in selector:
        return ExactMatcher(selector)
    try:
        regex = _compile_template(selector)
    except Exception:  # any failure to compile: fall back to exact
        regex = None
    if regex is None:
        return ExactMatcher(selector)
    return TemplateMatcher(selector, regex)


_HEX: Final = "[0-9A-Fa-f]"
_PCT: Final = f"%{_HEX}{_HEX}"
_UNRESERVED_CHARS: Final = "A-Za-z0-9\\-._~"
_RESERVED_CHARS: Final = ":/?#\\[\\]@!$&'()*+,;="
_NON_ASCII: Final = "\\x{80}-\\x{10FFFF}"
# One "unit" of a value: an allowed character, or a pct-encoded triplet
# (optionally followed by UTF-8 continuation-byte triplets, so that one
# non-ASCII character counts as one unit for prefix modifiers).
_U_UNIT: Final = f"(?:[{_UNRESERVED_CHARS}{_NON_ASCII}]|{_PCT}(?:%[89ABab]{_HEX}){{0,3}})"
_R_UNIT: Final = (
    f"(?:[{_UNRESERVED_CHARS}{_RESERVED_CHARS}{_NON_ASCII}]|{_PCT}(?:%[89ABab]{_HEX}){{0,3}})"
)
# RE2 refuses counted repetitions above 1000.
_MAX_REPEAT: Final = 1000

# operator -> (first, separator, named, ifemp, allow reserved)
_OPERATORS: Final[dict[str, tuple[str, str, bool, str, bool]]] = {
    "": ("", ",", False, "", False),
    "+": ("", ",", False, "", True),
    "#": ("#", ",", False, "", True),
    ".": (".", ".", False, "", False),
    "/": ("/", "/", False, "", False),
    ";": (";", ";", True, "", False),
    "?": ("?", "&", True, "=", False),
    "&": ("&", "&", True, "=", False),
}

_VARSPEC: Final = re2.compile(
    r"((?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})(?:\.?(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2}))*)"
    r"(?::([1-9][0-9]{0,3})|(\*))?"
)

_URI_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    ":/?#[]@!$&'()*+,;="
)


class _TemplateSyntaxError(Exception):
    pass


def _compile_template(template: str) -> Any:
    """RE2 regex matching every expansion of ``template``, or None."""
    parts = _parse_template(template)
    if not any(isinstance(p, tuple) for p in parts):
        return None
    for bounded in (True, False):
        source = "".join(
            _literal_regex(p) if isinstance(p, str) else _expression_regex(*p, bounded=bounded)
            for p in parts
        )
        try:
            return re2.compile(source)
        except Exception:  # e.g. program too large: retry without prefix bounds
            continue
    return None


_Expression = tuple[str, list[tuple[str, int | None, bool]]]


def _parse_template(template: str) -> list[str | _Expression]:
    """Split into literals and ``(operator, [(name, prefix, explode)])``."""
    parts: list[str | _Expression] = []
    pos = 0
    while pos < len(template):
        open_ = template.find("{", pos)
        close = template.find("}", pos)
        if open_ == -1:
            if close != -1:
                raise _TemplateSyntaxError("stray '}'")
            parts.append(template[pos:])
            break
        if close != -1 and close < open_:
            raise _TemplateSyntaxError("stray '}'")
        if open_ > pos:
            parts.append(template[pos:open_])
        close = template.find("}", open_)
        if close == -1:
            raise _TemplateSyntaxError("unclosed '{'")
        body = template[open_ + 1 : close]
        if "{" in body:
            raise _TemplateSyntaxError("nested '{'")
        parts.append(_parse_expression(body))
        pos = close + 1
    return parts


def _parse_expression(body: str) -> _Expression:
    operator = ""
    if body[:1] in _OPERATORS and body[:1] != "":
        operator, body = body[0], body[1:]
    if not body:
        raise _TemplateSyntaxError("empty expression")
    varspecs: list[tuple[str, int | None, bool]] = []
    for spec in body.split(","):
        m = _VARSPEC.fullmatch(spec)
        if m is None:
            raise _TemplateSyntaxError(f"invalid varspec {spec!r}")
        prefix = int(m.group(2)) if m.group(2) else None
        varspecs.append((m.group(1), prefix, m.group(3) is not None))
    return operator, varspecs


def _literal_regex(literal: str) -> str:
    """Literal text: copied as is, or pct-encoded when not a URI character."""
    out: list[str] = []
    for char in literal:
        if char in _URI_CHARS or char == "%":
            out.append(re2.escape(char))
        else:
            encoded = "".join(
                f"%[{b >> 4:X}{b >> 4:x}][{b & 15:X}{b & 15:x}]" for b in char.encode("utf-8")
            )
            out.append(f"(?:{re2.escape(char)}|{encoded})")
    return "".join(out)


def _expression_regex(
    operator: str, varspecs: list[tuple[str, int | None, bool]], *, bounded: bool
) -> str:
    first, sep, named, ifemp, reserved = _OPERATORS[operator]
    unit = _R_UNIT if reserved else _U_UNIT
    esep = re2.escape(sep)
    value = f"{unit}*"
    composite = f"(?:{unit}|,)*"  # string, or list/map joined with ","
    alternatives: list[str] = []
    for name, prefix, explode in varspecs:
        ename = re2.escape(name)
        if prefix is not None:
            # Prefix modifiers apply to string values only (RFC 6570 2.4.1).
            if bounded and prefix <= _MAX_REPEAT:
                limited = f"{unit}{{0,{prefix}}}"
            else:
                limited = value
            if named:
                alt = f"{ename}(?:={limited})?" if ifemp == "" else f"{ename}={limited}"
            else:
                alt = limited
        elif explode:
            # A string, or list/map members joined by the separator; members
            # are ``value``, ``key=value`` or, when named, ``name=value``,
            # ``name`` + ifemp (any key may stand where the name does).
            member = value if reserved else f"{value}(?:={value})?"
            alt = f"{member}(?:{esep}{member})*"
        elif named:
            alt = f"{ename}(?:={composite})?" if ifemp == "" else f"{ename}={composite}"
        else:
            alt = composite
        alternatives.append(f"(?:{alt})")
    # Any in-order subset of the variables may be defined; the defined ones
    # are joined by the separator and the whole preceded by ``first``.
    choices = [
        alternatives[i] + "".join(f"(?:{esep}{a})?" for a in alternatives[i + 1 :])
        for i in range(len(alternatives))
    ]
    return f"(?:{re2.escape(first)}(?:{'|'.join(choices)}))?"


# --------------------------------------------------------------------------
# Draft-08: typed matchers
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_matcher(match_type: str, pattern: str, base_url: str) -> Matcher:
    """Compile a draft-08 matcher of type ``match_type``.

    The type is checked first (an unsupported type fails loudly even with
    the ``*`` pattern), then ``*`` is the wildcard whatever the type.
    ``exact`` compares byte for byte; ``urlpattern`` patterns may be
    absolute or relative to ``base_url`` (the hub URL), which also resolves
    relative topics.  Raises :class:`MatcherError`.
    """
    if match_type not in MATCHER_TYPES:
        raise MatcherError(f"unsupported matcher type {match_type!r}")
    if pattern == "*":
        return WILDCARD
    if match_type == "exact":
        return ExactMatcher(pattern)
    try:
        compiled = urlpattern.URLPattern(pattern)
    except (ValueError, TypeError):
        try:
            compiled = urlpattern.URLPattern(pattern, base_url)
        except (ValueError, TypeError) as exc:
            raise MatcherError(f"invalid URL pattern {pattern!r}: {exc}") from None
    return URLPatternMatcher(pattern, base_url, compiled)
