"""The topic index: which subscribers may want an update, without a scan.

Exact matchers live in a dict keyed by topic; the wildcard in a set;
templates and URL patterns are grouped by compiled matcher (matchers are
cached, so a thousand subscribers on one template share one entry and one
evaluation per update).  The cost of an update is one dict lookup per topic
plus one evaluation per *distinct* pattern.
"""

from __future__ import annotations

from typing import Generic, Hashable, Iterable, TypeVar

from .matching import Matcher

__all__ = ["TopicIndex"]

S = TypeVar("S", bound=Hashable)


class TopicIndex(Generic[S]):
    def __init__(self) -> None:
        self._exact: dict[str, set[S]] = {}
        self._wildcard: set[S] = set()
        self._patterns: dict[Matcher, set[S]] = {}

    def add(self, subscriber: S, matchers: Iterable[Matcher]) -> None:
        for matcher in matchers:
            self._bucket(matcher, create=True).add(subscriber)  # type: ignore[union-attr]

    def remove(self, subscriber: S, matchers: Iterable[Matcher]) -> None:
        for matcher in matchers:
            bucket = self._bucket(matcher, create=False)
            if bucket is None:
                continue
            bucket.discard(subscriber)
            if not bucket and bucket is not self._wildcard:
                if matcher.kind == "exact":
                    del self._exact[matcher.pattern]
                else:
                    del self._patterns[matcher]

    def _bucket(self, matcher: Matcher, *, create: bool) -> set[S] | None:
        if matcher.kind == "wildcard":
            return self._wildcard
        if matcher.kind == "exact":
            table: dict[object, set[S]] = self._exact  # type: ignore[assignment]
            key: object = matcher.pattern
        else:
            table = self._patterns  # type: ignore[assignment]
            key = matcher
        bucket = table.get(key)
        if bucket is None and create:
            bucket = table[key] = set()
        return bucket

    def candidates(self, topics: tuple[str, ...]) -> Iterable[S]:
        """Every subscriber with a matcher matching one of ``topics``, once.

        Returns a snapshot: delivering to a subscriber may disconnect it and
        change the index.
        """
        found: list[set[S]] = []
        if self._wildcard:
            found.append(self._wildcard)
        for topic in topics:
            bucket = self._exact.get(topic)
            if bucket:
                found.append(bucket)
        for matcher, bucket in self._patterns.items():
            for topic in topics:
                if matcher.matches(topic):
                    found.append(bucket)
                    break
        if not found:
            return ()
        if len(found) == 1:
            return tuple(found[0])
        return set().union(*found)

    def __len__(self) -> int:
        seen: set[S] = set(self._wildcard)
        for bucket in self._exact.values():
            seen |= bucket
        for bucket in self._patterns.values():
            seen |= bucket
        return len(seen)
