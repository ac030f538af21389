"""What a verified token allows, in engine terms, whatever its draft.

Both drafts reduce to an ordered list of rules ``(actions, matchers,
payload)``: a draft-07 ``mercure`` claim gives one ``publish`` rule and one
``subscribe`` rule (carrying ``mercure.payload``); a draft-08 token gives one
rule per Mercure authorization detail.  The engine asks only the questions
below, so who may receive what is decided here and nowhere else.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ..matching import Matcher

__all__ = ["ANONYMOUS", "GrantRule", "Grants"]

Dialect = Literal["07", "08", ""]


@attrs.frozen
class GrantRule:
    actions: frozenset[str]
    matchers: tuple[Matcher, ...]
    payload: Any = None

    def covers(self, action: str, topic: str) -> bool:
        return action in self.actions and any(m.matches(topic) for m in self.matchers)


@attrs.frozen
class Grants:
    """The rights of one token.

    ``dialect`` is the generation of the token ("07" for a ``mercure``
    claim, "08" for an ``at+jwt`` access token, "" for no token).
    ``expires_at`` is the token's ``exp`` (POSIX seconds) or ``None``.
    ``subject``/``issuer`` come from ``sub``/``iss`` when present.
    ``default_payload`` is draft-07 ``mercure.payload``, attached to every
    subscription of the token.
    """

    dialect: Dialect = ""
    rules: tuple[GrantRule, ...] = ()
    expires_at: float | None = None
    subject: str | None = None
    issuer: str | None = None
    default_payload: Any = None

    @property
    def anonymous(self) -> bool:
        return self.dialect == ""

    def may_publish(self, topic: str) -> bool:
        return any(rule.covers("publish", topic) for rule in self.rules)

    def may_read_topic(self, topic: str) -> bool:
        return any(rule.covers("subscribe", topic) for rule in self.rules)

    def may_read(self, topics: tuple[str, ...]) -> bool:
        """Whether a private update with these topics may be delivered."""
        for rule in self.rules:
            if "subscribe" in rule.actions:
                for matcher in rule.matchers:
                    for topic in topics:
                        if matcher.matches(topic):
                            return True
        return False

    def payload_for(self, subscription_pattern: str) -> Any:
        """The payload attached to a subscription with this matcher string.

        Draft-08: the payload of the first ``subscribe`` rule whose matchers
        match the subscription's own matcher string taken as a topic.
        Draft-07: ``mercure.payload``, for every subscription.
        """
        for rule in self.rules:
            if rule.payload is not None and rule.covers("subscribe", subscription_pattern):
                return rule.payload
        return self.default_payload


ANONYMOUS = Grants()
