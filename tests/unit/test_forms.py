"""Form parsing: the WHATWG urlencoded rules, strict UTF-8, as a property."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import given, strategies as st

from mercure_twisted.dialects import RequestError
from mercure_twisted.web._forms import parse_form

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@given(st.lists(st.tuples(text.filter(bool), text), max_size=8))
def test_round_trips_any_pairs_in_order(pairs: list[tuple[str, str]]) -> None:
    encoded = urlencode(pairs).encode("ascii")
    assert parse_form(encoded) == pairs


@given(st.binary(max_size=60))
def test_never_crashes_on_arbitrary_bytes(raw: bytes) -> None:
    try:
        parse_form(raw)
    except RequestError as e:
        assert "UTF-8" in str(e)


def test_rules() -> None:
    assert parse_form(b"private&topic=a+b&topic=c%2Bd") == [("private", ""), ("topic", "a b"), ("topic", "c+d")]
    assert parse_form(b"a=1;b=2") == [("a", "1;b=2")]
    assert parse_form(b"&&x=%E2%9C%93") == [("x", "\u2713")]
    try:
        parse_form(b"x=%C3%28")
    except RequestError:
        pass
    else:
        raise AssertionError("invalid UTF-8 accepted")
