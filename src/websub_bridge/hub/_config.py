"""``[websub.hub]``: which Mercure topics the WebSub hub role offers, and how.

Nothing is offered unless configured: a Mercure hub carries updates meant
for its browsers, and making them reachable by any server on the Internet
that asks is the operator's decision, topic selector by topic selector.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from mercure_twisted.config import ConfigError
from mercure_twisted.matching import Matcher, compile_selector

__all__ = ["HubRoleConfig", "OfferedTopic", "hub_role_config"]

DAY = 86_400
SIGNATURE_ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")


@attrs.frozen
class OfferedTopic:
    """One selector of ``topics``: the Mercure topics it matches are offered,
    delivered with ``content_type``."""

    selector: str
    content_type: str = "application/json"
    matcher: Matcher = attrs.field(init=False, eq=False, repr=False)

    @matcher.default
    def _compile(self) -> Matcher:  # compiled once, at configuration
        return compile_selector(self.selector)


@attrs.frozen
class HubRoleConfig:
    """The hub role's settings, with their defaults."""

    topics: tuple[OfferedTopic, ...]
    #: Selectors of the topics a ``hub.mode=publish`` ping may name (fetched,
    #: then published to Mercure); none by default.
    publish_topics: tuple[OfferedTopic, ...] = ()
    lease_seconds: int = 10 * DAY
    min_lease_seconds: int = 3600
    max_lease_seconds: int = 30 * DAY
    signature_algorithm: str = "sha256"
    #: Subscriptions one callback host may hold (an amplifier's fan-out).
    max_subscriptions_per_host: int = 1000
    #: Requests per second (and burst) sent to one callback host.
    rate_per_host: float = 20.0
    burst_per_host: int = 50
    #: Requests in flight at once to one callback host.
    concurrency_per_host: int = 4
    delivery_timeout: float = 10.0
    #: A notification is dropped after this many attempts or this age.
    max_attempts: int = 12
    max_delivery_age: float = DAY

    def offered(self, topic: str) -> OfferedTopic | None:
        """The first selector offering ``topic``, or None."""
        return next((t for t in self.topics if t.matcher.matches(topic)), None)

    def may_be_pinged(self, topic: str) -> bool:
        return any(t.matcher.matches(topic) for t in self.publish_topics)


_KEYS = frozenset(
    {
        "topics", "publish_topics", "lease_seconds", "min_lease_seconds", "max_lease_seconds",
        "signature_algorithm", "max_subscriptions_per_host", "rate_per_host", "burst_per_host",
        "concurrency_per_host", "delivery_timeout", "max_attempts", "max_delivery_age",
    }
)


def _selectors(table: Mapping[str, Any], key: str) -> tuple[OfferedTopic, ...]:
    raw = table.get(key, [])
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(
            f"'websub.hub.{key}' must be an array of topic selectors "
            "(strings, or tables with 'selector' and 'content_type')"
        )
    offered: list[OfferedTopic] = []
    for i, item in enumerate(raw):
        where = f"websub.hub.{key}[{i}]"
        selector: Any
        content_type: Any
        if isinstance(item, str):
            selector, content_type = item, "application/json"
        elif isinstance(item, Mapping):
            unknown = set(item) - {"selector", "content_type"}
            if unknown:
                raise ConfigError(f"unknown key {sorted(unknown)[0]!r} in {where}")
            selector = item.get("selector")
            content_type = item.get("content_type", "application/json")
        else:
            raise ConfigError(f"{where} must be a selector string or a table")
        if not isinstance(selector, str) or not selector:
            raise ConfigError(f"{where} needs a non-empty 'selector'")
        if (
            not isinstance(content_type, str)
            or "/" not in content_type
            or any(c in content_type for c in "\r\n")
        ):
            raise ConfigError(f"'content_type' in {where} must be a media type such as application/json")
        offered.append(OfferedTopic(selector, content_type))
    return tuple(offered)


def _int(table: Mapping[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"'websub.hub.{key}' must be a positive integer, not {value!r}")
    return value


def _seconds(table: Mapping[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"'websub.hub.{key}' must be a positive number, not {value!r}")
    return float(value)


def hub_role_config(table: Any) -> HubRoleConfig | None:
    """The validated ``[websub.hub]`` table; None when it is absent.
    Raises `ConfigError` with one line for any setting that cannot work."""
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigError("'websub.hub' must be a table ([websub.hub])")
    for key in table:
        if key not in _KEYS:
            raise ConfigError(f"unknown key 'websub.hub.{key}'")
    topics = _selectors(table, "topics")
    if not topics:
        raise ConfigError(
            "[websub.hub] offers no topic: list the Mercure topic selectors it offers in 'topics'"
        )
    algorithm = table.get("signature_algorithm", "sha256")
    if algorithm not in SIGNATURE_ALGORITHMS:
        raise ConfigError(
            f"'websub.hub.signature_algorithm' must be one of {', '.join(SIGNATURE_ALGORITHMS)}, "
            f"not {algorithm!r}"
        )
    minimum = _int(table, "min_lease_seconds", 3600)
    maximum = _int(table, "max_lease_seconds", 30 * DAY)
    default = _int(table, "lease_seconds", 10 * DAY)
    if not minimum <= default <= maximum:
        raise ConfigError(
            "websub.hub lease settings must satisfy min_lease_seconds <= lease_seconds "
            f"<= max_lease_seconds (here {minimum} <= {default} <= {maximum})"
        )
    return HubRoleConfig(
        topics=topics,
        publish_topics=_selectors(table, "publish_topics"),
        lease_seconds=default,
        min_lease_seconds=minimum,
        max_lease_seconds=maximum,
        signature_algorithm=algorithm,
        max_subscriptions_per_host=_int(table, "max_subscriptions_per_host", 1000),
        rate_per_host=_seconds(table, "rate_per_host", 20.0),
        burst_per_host=_int(table, "burst_per_host", 50),
        concurrency_per_host=_int(table, "concurrency_per_host", 4),
        delivery_timeout=_seconds(table, "delivery_timeout", 10.0),
        max_attempts=_int(table, "max_attempts", 12),
        max_delivery_age=_seconds(table, "max_delivery_age", DAY),
    )
