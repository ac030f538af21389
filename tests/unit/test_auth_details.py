"""Property tests of the draft-08 authorization_details parser."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mercure_twisted.auth import MERCURE_DETAIL_TYPE, TokenError, parse_authorization_details

from ._authkit import HUB

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
topic = st.fixed_dictionaries(
    {"match": st.sampled_from(["*", "https://example.com/a", "https://example.com/b/:id"])},
    optional={"match_type": st.sampled_from(["exact", "urlpattern"])},
)
valid_detail = st.fixed_dictionaries(
    {"type": st.just(MERCURE_DETAIL_TYPE),
     "actions": st.lists(st.sampled_from(["publish", "subscribe", "future"]), min_size=1, max_size=3),
     "topics": st.lists(topic, min_size=1, max_size=4)},
    optional={"payload": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)},
)
foreign_detail = st.fixed_dictionaries({"type": st.text(max_size=10).filter(lambda t: t != MERCURE_DETAIL_TYPE)},
                                       optional={"x": json_values})


@given(st.lists(valid_detail | foreign_detail, max_size=6))
def test_valid_details_parse(details: list[dict[str, Any]]) -> None:
    rules = parse_authorization_details(details, base_url=HUB)
    expected = [d for d in details if d["type"] == MERCURE_DETAIL_TYPE
                and set(d["actions"]) & {"publish", "subscribe"}]
    assert len(rules) == len(expected)
    for rule, detail in zip(rules, expected):
        assert rule.actions == frozenset(detail["actions"]) & {"publish", "subscribe"}
        assert len(rule.matchers) == len(detail["topics"])
        assert rule.payload == detail.get("payload")


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json_never_crashes(value: Any) -> None:
    for candidate in (value, [value], [{"type": MERCURE_DETAIL_TYPE, "actions": ["publish"], "topics": value}],
                      [{"type": MERCURE_DETAIL_TYPE, "actions": value, "topics": [{"match": "*"}]}],
                      [{"type": MERCURE_DETAIL_TYPE, "actions": ["subscribe"], "topics": [value]}]):
        try:
            parse_authorization_details(candidate, base_url=HUB)
        except TokenError as err:
            assert err.status == 401 and err.error == "invalid_token"
            assert err.reason.startswith("authorization_details")


@given(st.lists(valid_detail, min_size=1, max_size=4), st.data())
def test_one_bad_entry_rejects_everything(details: list[dict[str, Any]], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(details) - 1))
    bad = dict(details[index])
    bad["topics"] = [*bad["topics"], {"match": "x", "match_type": "regex"}]
    details = [*details[:index], bad, *details[index + 1:]]
    try:
        parse_authorization_details(details, base_url=HUB)
    except TokenError as err:
        assert err.reason == (f"authorization_details[{index}].topics[{len(bad['topics']) - 1}]:"
                              " unsupported match_type 'regex'")
    else:
        raise AssertionError("accepted")
