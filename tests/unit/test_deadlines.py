"""One timer for every stream deadline (deadlines.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from mercure_twisted import deadlines
from mercure_twisted.deadlines import Deadlines


def make() -> tuple[Clock, Deadlines, list[tuple[float, str, str]], set[str]]:
    clock = Clock()
    live: set[str] = set()
    expired: list[tuple[float, str, str]] = []

    def expire(key: str, reason: str) -> None:
        expired.append((clock.seconds(), key, reason))
        live.discard(key)
        table.discard(key)  # as Hub.unsubscribe does when the stream closes

    table = Deadlines(clock, expire, live.__contains__)
    return clock, table, expired, live


def test_each_key_expires_at_its_exact_deadline_with_one_timer() -> None:
    clock, table, expired, live = make()
    for key, when in (("a", 30.0), ("b", 10.0), ("c", 20.0)):
        live.add(key)
        table.add(key, when, f"{key} due")
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(9.99)
    assert expired == []
    clock.advance(0.01)
    assert expired == [(10.0, "b", "b due")]
    clock.advance(10)
    clock.advance(10)
    assert expired == [(10.0, "b", "b due"), (20.0, "c", "c due"), (30.0, "a", "a due")]
    assert clock.getDelayedCalls() == []


def test_an_earlier_deadline_rearms_the_timer() -> None:
    clock, table, expired, live = make()
    live.update(("late", "early"))
    table.add("late", 100.0, "late")
    table.add("early", 5.0, "early")
    clock.advance(5)
    assert [k for _, k, _ in expired] == ["early"]


def test_ended_keys_are_skipped_and_compacted_away() -> None:
    clock, table, expired, live = make()
    for i in range(3000):
        live.add(str(i))
        table.add(str(i), 1000.0 + i, "due")
    for i in range(2500):  # short-lived streams end before their deadline
        live.discard(str(i))
        table.discard(str(i))
    assert len(table) <= 3000 - deadlines._COMPACT_ABOVE
    clock.advance(5000)
    assert sorted(int(k) for _, k, _ in expired) == list(range(2500, 3000))
    assert len(table) == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.booleans()), max_size=60))
def test_live_keys_expire_in_deadline_order_ended_ones_never(
    entries: list[tuple[float, bool]]
) -> None:
    clock, table, expired, live = make()
    for i, (when, _) in enumerate(entries):
        live.add(str(i))
        table.add(str(i), when, "due")
    for i, (_, ends_early) in enumerate(entries):
        if ends_early:
            live.discard(str(i))
            table.discard(str(i))
    clock.pump([0.25] * 404)
    expected = sorted((when, str(i)) for i, (when, early) in enumerate(entries) if not early)
    assert [key for _, key, _ in expired] == [key for _, key in expected]
    # Never early, and late by less than one pump step.
    assert all(when <= at <= when + 0.25 for (at, _, _), (when, _) in zip(expired, expected))
