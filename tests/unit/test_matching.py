"""Tests for mercure_twisted.matching (draft-07 selectors, draft-08 matchers)."""

from __future__ import annotations

from typing import Any

import pytest
import uritemplate
from hypothesis import given
from hypothesis import strategies as st

from mercure_twisted.matching import (
    MATCHER_TYPES,
    WILDCARD,
    MatcherError,
    compile_matcher,
    compile_selector,
)

HUB = "https://hub.example.com/.well-known/mercure"


# ---------------------------------------------------------------- draft-07


def test_star_is_the_shared_wildcard() -> None:
    m = compile_selector("*")
    assert m is WILDCARD
    assert m.kind == "wildcard"
    assert m.pattern == "*"
    for topic in ["", "*", "https://example.com/x", "anything at all", "é"]:
        assert m.matches(topic)


def test_plain_string_is_exact() -> None:
    m = compile_selector("https://example.com/books/1")
    assert m.kind == "exact"
    assert m.pattern == "https://example.com/books/1"
    assert m.matches("https://example.com/books/1")
    assert not m.matches("https://example.com/books/10")
    assert not m.matches("https://EXAMPLE.com/books/1")
    assert not m.matches("")


def test_empty_selector_is_exact() -> None:
    m = compile_selector("")
    assert m.kind == "exact"
    assert m.matches("")
    assert not m.matches("x")


@pytest.mark.parametrize(
    "selector",
    ["{", "}", "a{b", "a}b", "{}", "}{x}", "{x}}", "{{x}}", "{x", "{=x}", "{!x}", "{x,}",
     "{,x}", "{x:0}", "{x:10000}", "{x*:3}", "{x y}", "{a..b}", "{.a}x}", "{x:}", "{x*3}"],
)
def test_malformed_braces_or_expressions_are_exact(selector: str) -> None:
    m = compile_selector(selector)
    assert m.kind == "exact"
    assert m.matches(selector)
    assert not m.matches(selector + "x")


def test_simple_expansion() -> None:
    m = compile_selector("https://example.com/books/{id}")
    assert m.kind == "template"
    assert m.pattern == "https://example.com/books/{id}"
    assert m.matches("https://example.com/books/1")
    assert m.matches("https://example.com/books/caf%C3%A9")
    assert m.matches("https://example.com/books/café")  # IRI
    assert m.matches("https://example.com/books/")  # undefined / empty
    assert m.matches("https://example.com/books/a,b")  # list value
    assert not m.matches("https://example.com/books/1/2")
    assert not m.matches("https://example.com/books/1?x")
    assert not m.matches("https://example.com/books/1#x")
    assert not m.matches("https://example.com/books/%zz")
    assert not m.matches("https://example.com/book/1")
    assert not m.matches("xhttps://example.com/books/1")  # anchored


def test_template_matches_its_own_literal_string() -> None:
    m = compile_selector("https://example.com/books/{id}")
    assert m.matches("https://example.com/books/{id}")


def test_reserved_and_fragment_expansion() -> None:
    m = compile_selector("https://example.com/{+path}")
    assert m.matches("https://example.com/a/b/c")
    assert m.matches("https://example.com/a/b?c=d&e=f")
    assert m.matches("https://example.com/caf%C3%A9/é")
    assert not m.matches("https://example.com/a b")
    f = compile_selector("https://example.com/x{#frag}")
    assert f.matches("https://example.com/x")
    assert f.matches("https://example.com/x#a/b,c")
    assert not f.matches("https://example.com/xa")


def test_path_segment_expansion() -> None:
    m = compile_selector("/users{/id}")
    assert m.matches("/users")
    assert m.matches("/users/42")
    assert m.matches("/users/")  # empty value
    assert not m.matches("/users42")
    assert not m.matches("/users/4/2")
    exploded = compile_selector("/files{/path*}")
    assert exploded.matches("/files/a/b/c")
    multi = compile_selector("/a{/x,y}")
    assert multi.matches("/a/1/2")
    assert multi.matches("/a/1")
    assert not multi.matches("/a/1/2/3")


def test_label_and_path_parameter_expansion() -> None:
    m = compile_selector("https://example.com/file{.ext}")
    assert m.matches("https://example.com/file.json")
    assert m.matches("https://example.com/file")
    assert not m.matches("https://example.com/file.a/b")
    p = compile_selector("https://example.com/m{;x,y}")
    assert p.matches("https://example.com/m;x=1;y=2")
    assert p.matches("https://example.com/m;y=2")
    assert p.matches("https://example.com/m;x")  # empty value
    assert not p.matches("https://example.com/m;z=1")
    assert not p.matches("https://example.com/m;y=2;x=1")  # order is fixed


def test_query_expansion() -> None:
    m = compile_selector("https://hub/{?topic}")
    assert m.matches("https://hub/?topic=https%3A%2F%2Fx")
    assert m.matches("https://hub/")
    assert m.matches("https://hub/?topic=")
    assert not m.matches("https://hub/?topic=a/b")  # "/" must be encoded
    assert not m.matches("https://hub/?other=1")
    q = compile_selector("/s{?a,b}{&c}")
    assert q.matches("/s?a=1&b=2&c=3")
    assert q.matches("/s?b=2")
    assert q.matches("/s&c=3")
    exploded = compile_selector("/s{?params*}")
    assert exploded.matches("/s?x=1&y=2&z=")


def test_prefix_modifier() -> None:
    m = compile_selector("/p/{x:3}")
    assert m.matches("/p/abc")
    assert m.matches("/p/ab")
    assert m.matches("/p/é%C3%A9a")  # three characters
    assert not m.matches("/p/abcd")
    q = compile_selector("/p{?x:2}")
    assert q.matches("/p?x=ab")
    assert not q.matches("/p?x=abc")


def test_several_expressions_and_non_ascii_literal() -> None:
    m = compile_selector("https://example.com/café/{a}/{b}")
    assert m.matches("https://example.com/café/1/2")
    assert m.matches("https://example.com/caf%C3%A9/1/2")
    assert m.matches("https://example.com/caf%c3%a9/1/2")
    assert not m.matches("https://example.com/cafe/1/2")


def test_literal_parts_are_escaped() -> None:
    m = compile_selector("https://example.com/a.b+c(d)*[e]?{x}")
    assert m.matches("https://example.com/a.b+c(d)*[e]?1")
    assert not m.matches("https://example.com/aXb+c(d)*[e]?1")
    assert not m.matches("https://example.com/a.bbc(d)*[e]?1")


def test_template_matches_never_raise() -> None:
    m = compile_selector("/x/{id}")
    assert not m.matches("/x/\ud800")  # lone surrogate: cannot be UTF-8


def test_selector_cache_identity() -> None:
    assert compile_selector("/books/{id}") is compile_selector("/books/{id}")
    assert compile_selector("/books/1") is compile_selector("/books/1")


# ---------------------------------------------------------------- draft-08


def test_matcher_types() -> None:
    assert MATCHER_TYPES == ("exact", "urlpattern")


@pytest.mark.parametrize("match_type", MATCHER_TYPES)
def test_star_is_wildcard_for_every_type(match_type: str) -> None:
    m = compile_matcher(match_type, "*", HUB)
    assert m is WILDCARD
    assert m.matches("urn:x") and m.matches("/relative") and m.matches("")


@pytest.mark.parametrize("match_type", ["", "Exact", "URLPATTERN", "template", "x"])
def test_unknown_type_raises(match_type: str) -> None:
    with pytest.raises(MatcherError, match="unsupported matcher type"):
        compile_matcher(match_type, "/x", HUB)
    with pytest.raises(MatcherError, match=f"unsupported matcher type {match_type!r}"):
        compile_matcher(match_type, "*", HUB)


def test_matcher_error_is_value_error() -> None:
    assert issubclass(MatcherError, ValueError)


def test_exact_is_byte_for_byte() -> None:
    m = compile_matcher("exact", "/books/1", HUB)
    assert m.kind == "exact"
    assert m.pattern == "/books/1"
    assert m.matches("/books/1")
    # no resolution against the hub URL
    assert not m.matches("https://hub.example.com/books/1")
    # no Unicode normalization: NFC vs NFD
    nfc = compile_matcher("exact", "https://example.com/caf\u00e9", HUB)
    assert nfc.matches("https://example.com/caf\u00e9")
    assert not nfc.matches("https://example.com/cafe\u0301")
    assert not nfc.matches("https://example.com/caf%C3%A9")
    # no case folding, even in the host
    assert not compile_matcher("exact", "https://example.com/", HUB).matches(
        "https://EXAMPLE.com/"
    )
    # templates are not templates here
    assert not compile_matcher("exact", "/books/{id}", HUB).matches("/books/1")


def test_absolute_url_pattern() -> None:
    m = compile_matcher("urlpattern", "https://example.com/books/:id", HUB)
    assert m.kind == "urlpattern"
    assert m.pattern == "https://example.com/books/:id"
    assert m.matches("https://example.com/books/1")
    assert m.matches("https://EXAMPLE.com/books/1")  # hosts are case-insensitive
    assert not m.matches("https://example.com/BOOKS/1")  # no ignoreCase
    assert not m.matches("https://example.com/books/1/2")
    assert not m.matches("https://other.example/books/1")
    assert not m.matches("/books/1")  # resolves against the hub host


def test_relative_url_pattern_and_relative_topics() -> None:
    m = compile_matcher(
        "urlpattern", "/.well-known/mercure/subscriptions/:topic/:subscriber", HUB
    )
    assert m.matches("/.well-known/mercure/subscriptions/a/b")
    assert m.matches("https://hub.example.com/.well-known/mercure/subscriptions/a/b")
    # resolved per RFC 3986 against ".../.well-known/mercure" (no trailing "/")
    assert m.matches("mercure/subscriptions/a/b")
    assert not m.matches("subscriptions/a/b")
    assert not m.matches("https://other.example/.well-known/mercure/subscriptions/a/b")
    assert not m.matches("/.well-known/mercure/subscriptions/a")
    rel = compile_matcher("urlpattern", "/books/:id", HUB)
    assert rel.matches("https://hub.example.com/books/1")
    assert rel.matches("/books/1")
    assert not rel.matches("http://hub.example.com/books/1")


def test_non_url_pattern_schemes() -> None:
    m = compile_matcher("urlpattern", "urn\\:uuid\\:*", HUB)
    assert m.matches("urn:uuid:1234")
    # unescaped, ":uuid" is a named group of the protocol component
    m2 = compile_matcher("urlpattern", "urn:uuid:*", HUB)
    assert not m2.matches("urn:uuid:1234")


@pytest.mark.parametrize(
    "topic", ["http://[::1", "https://exa mple.com/books/1", "http://", "\ud800", "http://a:99999/"]
)
def test_unparsable_topic_does_not_match(topic: str) -> None:
    for pattern in ["https://*/*", "/books/:id", "*://*"]:
        m = compile_matcher("urlpattern", pattern, HUB)
        assert m.matches(topic) is False


@pytest.mark.parametrize(
    "pattern", ["https://example.com/(a", "/(a", "{", "/books/:id(", "https://ex.com/:a/:a"]
)
def test_malformed_url_pattern_raises(pattern: str) -> None:
    with pytest.raises(MatcherError, match="invalid URL pattern"):
        compile_matcher("urlpattern", pattern, HUB)


def test_matcher_cache_identity() -> None:
    a = compile_matcher("urlpattern", "/books/:id", HUB)
    assert compile_matcher("urlpattern", "/books/:id", HUB) is a
    assert compile_matcher("exact", "/books/1", HUB) is compile_matcher("exact", "/books/1", HUB)
    other = compile_matcher("urlpattern", "/books/:id", "https://other.example/")
    assert other is not a
    assert other.matches("/books/1")
    assert not other.matches("https://hub.example.com/books/1")


def test_matchers_are_frozen() -> None:
    import attrs

    m = compile_selector("/x/{id}")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        m.pattern = "y"  # type: ignore[misc]


# ---------------------------------------------------------------- properties

_OPS = ["", "+", "#", ".", "/", ";", "?", "&"]
_LITERAL = st.text(
    alphabet="abcXYZ019-._~:/?#[]@!$&'()*+,;=é中", min_size=1, max_size=8
)
_NAME_STEMS = st.sampled_from(["v", "id", "x.y", "p_q", "Z9"])
_VALUE_CHARS = st.characters(blacklist_categories=["Cs"])
# uritemplate passes "%" through unencoded in reserved expansion (RFC 6570
# would encode a "%" that does not start a triplet); keep it out of +/# values.
_RESERVED_VALUE_CHARS = st.characters(blacklist_categories=["Cs"], blacklist_characters="%")


@st.composite
def templates_and_values(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    parts: list[str] = []
    values: dict[str, Any] = {}
    used: set[str] = set()
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            parts.append(draw(_LITERAL))
        op = draw(st.sampled_from(_OPS))
        chars = _RESERVED_VALUE_CHARS if op in ("+", "#") else _VALUE_CHARS
        text = st.text(alphabet=chars, max_size=6)
        specs = []
        for _ in range(draw(st.integers(1, 3))):
            name = draw(_NAME_STEMS) + str(len(used))  # unique in the template
            used.add(name)
            modifier = draw(st.sampled_from(["", "*", "prefix"]))
            if modifier == "prefix":
                n = draw(st.one_of(st.integers(1, 12), st.just(1500)))
                specs.append(f"{name}:{n}")
                value: Any = draw(st.one_of(st.none(), text))
            else:
                specs.append(name + modifier)
                value = draw(
                    st.one_of(
                        st.none(),
                        text,
                        st.lists(text, max_size=3),
                        st.dictionaries(text, text, max_size=3),
                    )
                )
            if value is not None:
                values[name] = value
        parts.append("{" + op + ",".join(specs) + "}")
    if draw(st.booleans()):
        parts.append(draw(_LITERAL))
    return "".join(parts), values


@given(templates_and_values())
def test_uritemplate_expansions_are_matched(case: tuple[str, dict[str, Any]]) -> None:
    template, values = case
    m = compile_selector(template)
    assert m.kind == "template", template
    expansion = uritemplate.URITemplate(template).expand(values)
    assert m.matches(expansion), (template, values, expansion)


@given(templates_and_values())
def test_template_matches_own_literal(case: tuple[str, dict[str, Any]]) -> None:
    template, _ = case
    assert compile_selector(template).matches(template)


@given(st.text(), st.text())
def test_exact_matches_only_equal_strings(pattern: str, topic: str) -> None:
    if pattern == "*":
        return
    m = compile_matcher("exact", pattern, HUB)
    assert m.kind == "exact"
    assert m.matches(pattern)
    assert m.matches(topic) == (topic == pattern)
    if "{" not in pattern and "}" not in pattern:
        s = compile_selector(pattern)
        assert s.kind == "exact"
        assert s.matches(topic) == (topic == pattern)


@given(
    st.one_of(st.text(), st.text(alphabet="{}:*,+#./;?&=!ab%1é", max_size=20)),
    st.text(),
)
def test_compile_selector_never_raises(selector: str, topic: str) -> None:
    m = compile_selector(selector)
    assert m.kind in ("wildcard", "exact", "template")
    assert m.pattern == selector
    assert m.matches(selector)
    assert isinstance(m.matches(topic), bool)


@given(st.text(max_size=30), st.text(max_size=30))
def test_url_pattern_never_raises_on_match(pattern: str, topic: str) -> None:
    try:
        m = compile_matcher("urlpattern", pattern, HUB)
    except MatcherError:
        return
    assert isinstance(m.matches(topic), bool)
