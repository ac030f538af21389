"""Backoff, give-up and per-host limits: bounds that hold for any input."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings, strategies as st
from twisted.internet import task

from websub_bridge.hub._schedule import HostLimits, retry_delay, should_give_up


@given(
    attempts=st.integers(min_value=0, max_value=10_000),
    base=st.floats(min_value=0, max_value=1e6),
    cap=st.floats(min_value=0, max_value=1e7),
    seed=st.integers(),
)
def test_delays_stay_within_zero_and_cap(attempts: int, base: float, cap: float, seed: int) -> None:
    delay = retry_delay(attempts, base=base, cap=cap, rng=random.Random(seed))
    assert 0.0 <= delay <= cap


def test_delays_grow_on_average_until_the_cap() -> None:
    rng = random.Random(7)
    means = [
        statistics.fmean(retry_delay(n, base=5, cap=3600, rng=rng) for _ in range(2000))
        for n in range(1, 12)
    ]
    assert all(a < b for a, b in zip(means[:8], means[1:9]))
    # Full jitter: the mean is half the ceiling (5 * 2**(n-1), then the cap).
    assert means[0] == pytest.approx(2.5, rel=0.1)
    assert means[-1] == pytest.approx(1800, rel=0.1)


def test_delays_are_reproducible_with_the_same_rng() -> None:
    a = [retry_delay(n, rng=random.Random(1)) for n in range(10)]
    b = [retry_delay(n, rng=random.Random(1)) for n in range(10)]
    assert a == b


def test_negative_base_or_cap_is_an_error() -> None:
    with pytest.raises(ValueError):
        retry_delay(1, base=-1, rng=random.Random())


def test_give_up_on_attempts_or_age() -> None:
    assert not should_give_up(4, 1000.0, 1000.0 + 3599, max_attempts=5, max_age=3600.0)
    assert should_give_up(5, 1000.0, 1000.0, max_attempts=5, max_age=3600.0)
    assert should_give_up(0, 1000.0, 1000.0 + 3600, max_attempts=5, max_age=3600.0)


events = st.lists(
    st.tuples(
        st.sampled_from(["acquire", "release", "advance"]),
        st.sampled_from(["a.example", "b.example"]),
        st.floats(min_value=0, max_value=5),
    ),
    max_size=200,
)


@settings(max_examples=200)
@given(
    rate=st.floats(min_value=0.1, max_value=20),
    burst=st.integers(min_value=1, max_value=10),
    concurrency=st.integers(min_value=1, max_value=5),
    steps=events,
)
def test_the_bucket_and_the_cap_hold(
    rate: float, burst: int, concurrency: int, steps: list[tuple[str, str, float]]
) -> None:
    clock = task.Clock()
    limits = HostLimits(clock, rate=rate, burst=burst, concurrency=concurrency)
    admitted: dict[str, list[float]] = {"a.example": [], "b.example": []}
    held = {"a.example": 0, "b.example": 0}
    for action, host, seconds in steps:
        if action == "advance":
            clock.advance(seconds)
        elif action == "acquire":
            if limits.try_acquire(host):
                admitted[host].append(clock.seconds())
                held[host] += 1
            else:
                assert held[host] >= concurrency or limits.delay_until_available(host) > 0
        elif held[host]:
            limits.release(host)
            held[host] -= 1
        assert limits.in_flight(host) == held[host] <= concurrency
    for times in admitted.values():
        # Over any window [t0, t1], at most burst + rate * (t1 - t0) admissions.
        for i, start in enumerate(times):
            for j in range(i, len(times)):
                assert j - i + 1 <= burst + rate * (times[j] - start) + 1e-9


def test_the_delay_says_when_a_token_comes_back() -> None:
    clock = task.Clock()
    limits = HostLimits(clock, rate=2, burst=1, concurrency=10)
    assert limits.try_acquire("h")
    assert not limits.try_acquire("h")
    assert limits.delay_until_available("h") == pytest.approx(0.5)
    clock.advance(0.4)
    assert not limits.try_acquire("h")
    assert limits.delay_until_available("h") == pytest.approx(0.1)
    clock.advance(0.1)
    assert limits.delay_until_available("h") == 0.0
    assert limits.try_acquire("h")


def test_the_concurrency_cap_waits_for_a_release() -> None:
    clock = task.Clock()
    limits = HostLimits(clock, rate=100, burst=100, concurrency=2)
    assert limits.try_acquire("h") and limits.try_acquire("h")
    assert not limits.try_acquire("h")
    assert limits.try_acquire("other")
    limits.release("h")
    assert limits.try_acquire("h")


def test_idle_hosts_are_forgotten() -> None:
    clock = task.Clock()
    limits = HostLimits(clock, rate=1, burst=2, concurrency=2)
    for n in range(1000):
        host = f"h{n}.example"
        assert limits.try_acquire(host)
        limits.release(host)
        clock.advance(1)
    # Each host still missed a token right after its release; once refilled
    # (here: the next request, to another host, is a second later) it goes.
    assert limits.tracked_hosts() <= 2
    clock.advance(10)
    limits.delay_until_available("h999.example")
    assert limits.tracked_hosts() <= 1


def test_a_full_bucket_with_nothing_in_flight_leaves_no_state() -> None:
    clock = task.Clock()
    limits = HostLimits(clock, rate=1, burst=1, concurrency=1)
    assert limits.try_acquire("h")
    clock.advance(5)
    limits.release("h")
    assert limits.tracked_hosts() == 0
    assert limits.delay_until_available("h") == 0.0 and limits.tracked_hosts() == 0


def test_release_without_acquire_is_an_error() -> None:
    limits = HostLimits(task.Clock(), rate=1, burst=1, concurrency=1)
    with pytest.raises(ValueError):
        limits.release("h")
