"""When to try a delivery again, when to give up, and how hard to push a host.

Pure functions and one small in-memory structure, no network: the delivery
worker asks them, the store keeps the durable part (``attempts``, ``due``).

Backoff is **full jitter** (``uniform(0, min(cap, base * 2**n))``): when a
subscriber's host comes back after an outage, every delivery queued for it
was retried on the same schedule; full jitter spreads those retries over the
whole window instead of bunching them at its end (equal jitter keeps half
the delay fixed, so half the herd still arrives together), and a hub with
many subscriptions on one host is exactly that herd.  The expected delay
still doubles with each attempt until the cap.
"""

from __future__ import annotations

import random

import attrs
from twisted.internet.interfaces import IReactorTime

__all__ = ["HostLimits", "retry_delay", "should_give_up"]


def retry_delay(
    attempts: int, *, base: float = 5.0, cap: float = 3600.0, rng: random.Random
) -> float:
    """Seconds to wait before the next try after ``attempts`` failed ones.

    Full jitter, within ``[0, cap]``: see the module docstring for why.
    ``rng`` is explicit so tests (and hypothesis) can reproduce a schedule.
    """
    if base < 0 or cap < 0:
        raise ValueError("base and cap must not be negative")
    exponent = max(attempts - 1, 0)
    # 2**exponent overflows float for large attempts; past 64 doublings any
    # sane base is beyond any sane cap anyway.
    ceiling = cap if exponent >= 64 else min(cap, base * 2.0**exponent)
    return rng.uniform(0.0, ceiling)


def should_give_up(
    attempts: int, created_at: float, now: float, *, max_attempts: int, max_age: float
) -> bool:
    """Whether a delivery has been tried too often or has waited too long.

    Both bounds matter: ``max_attempts`` stops a callback that answers fast
    and wrongly, ``max_age`` stops one that hangs (few attempts, but an
    update that old is no longer worth sending).
    """
    return attempts >= max_attempts or now - created_at >= max_age


@attrs.define
class _Host:
    tokens: float
    updated: float
    in_flight: int = 0


class HostLimits:
    """Per-callback-host token bucket and in-flight cap, for one process.

    A hub with many subscriptions on one host must not flood it: each host
    gets ``rate`` requests per second with bursts of ``burst``, and at most
    ``concurrency`` requests at a time.  State of a host whose bucket is full
    and that has nothing in flight is dropped (it is indistinguishable from
    a fresh one): at once when it is seen full, and for hosts never asked
    about again by a sweep run at most once per refill time (``burst /
    rate``), so the table holds only hosts used within about two refill
    times, at an amortised cost of O(1) per call.
    """

    def __init__(
        self, clock: IReactorTime, *, rate: float, burst: int, concurrency: int
    ) -> None:
        if rate <= 0 or burst < 1 or concurrency < 1:
            raise ValueError("rate must be positive, burst and concurrency at least 1")
        self._clock = clock
        self._rate = rate
        self._burst = float(burst)
        self._concurrency = concurrency
        self._hosts: dict[str, _Host] = {}
        self._refill_time = self._burst / rate
        self._last_sweep = clock.seconds()

    def _sweep(self, now: float) -> None:
        """Drop idle hosts whose bucket has refilled since they were seen."""
        if now - self._last_sweep < self._refill_time:
            return
        self._last_sweep = now
        for host, state in list(self._hosts.items()):
            refilled = state.tokens + max(now - state.updated, 0.0) * self._rate
            if state.in_flight == 0 and refilled >= self._burst:
                del self._hosts[host]

    def _refill(self, host: str) -> _Host:
        now = self._clock.seconds()
        self._sweep(now)
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host(tokens=self._burst, updated=now)
            return state
        elapsed = max(now - state.updated, 0.0)
        state.tokens = min(self._burst, state.tokens + elapsed * self._rate)
        state.updated = now
        return state

    def _forget_if_idle(self, host: str, state: _Host) -> None:
        if state.in_flight == 0 and state.tokens >= self._burst:
            del self._hosts[host]

    def try_acquire(self, host: str) -> bool:
        """Take a token and an in-flight slot for ``host`` if both are free.

        On True the caller must :meth:`release` when its request ends.
        """
        state = self._refill(host)
        if state.in_flight >= self._concurrency or state.tokens < 1.0:
            self._forget_if_idle(host, state)
            return False
        state.tokens -= 1.0
        state.in_flight += 1
        return True

    def release(self, host: str) -> None:
        """The request to ``host`` ended (whatever its outcome)."""
        state = self._hosts.get(host)
        if state is None or state.in_flight == 0:
            raise ValueError(f"release without acquire for {host!r}")
        state.in_flight -= 1
        # _refill may sweep the entry away and hand back a fresh one.
        self._forget_if_idle(host, self._refill(host))

    def delay_until_available(self, host: str) -> float:
        """Seconds until a token is free for ``host`` (0 when one is now).

        A full in-flight cap is not a delay (no clock tells when a request
        ends): :meth:`try_acquire` still refuses, and the caller tries again
        when one of its requests releases.
        """
        state = self._hosts.get(host)
        if state is None:
            return 0.0
        state = self._refill(host)
        missing = 1.0 - state.tokens
        delay = max(missing / self._rate, 0.0)
        self._forget_if_idle(host, state)
        return delay

    def tracked_hosts(self) -> int:
        """How many hosts have state (for tests and metrics)."""
        return len(self._hosts)

    def in_flight(self, host: str) -> int:
        """Requests to ``host`` acquired and not yet released."""
        state = self._hosts.get(host)
        return 0 if state is None else state.in_flight
