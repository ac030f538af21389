"""The topic index: which subscribers may want an update, without a scan.

Exact matchers live in a dict keyed by topic; the wildcard in a set;
templates and URL patterns are grouped by compiled matcher (matchers are
cached, so a thousand subscribers on one template share one entry and one
evaluation per update).

A URI template can only match a topic that starts with its literal text
before the first expression (``https://example.com/books/`` for
``https://example.com/books/{id}``), so templates are also filed under that
prefix, by prefix length: an update evaluates only the templates whose
prefix it starts with, one dict lookup per distinct prefix length, instead
of every distinct template.  URL patterns are evaluated one by one.
"""

from __future__ import annotations

import re
from typing import Generic, Hashable, Iterable, TypeVar

from .matching import Matcher

__all__ = ["TopicIndex", "literal_prefix"]

S = TypeVar("S", bound=Hashable)

# Characters a compiled template's literal text matches only as themselves
# (see matching._literal_regex: other characters also match pct-encoded).
_PLAIN_LITERAL = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")


def literal_prefix(template: str) -> str:
    """The text every topic a URI template matches starts with."""
    head = template.split("{", 1)[0]
    m = _PLAIN_LITERAL.match(head)
    return m.group(0) if m else ""


class TopicIndex(Generic[S]):
    def __init__(self) -> None:
        self._exact: dict[str, set[S]] = {}
        self._wildcard: set[S] = set()
        self._patterns: dict[Matcher, set[S]] = {}
        # Templates by prefix length, then prefix: {matcher: its bucket}.
        self._prefixed: dict[int, dict[str, dict[Matcher, set[S]]]] = {}
        # Every other pattern (URL patterns), evaluated for each update.
        self._scanned: dict[Matcher, set[S]] = {}

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
                    self._unfile(matcher)

    def _bucket(self, matcher: Matcher, *, create: bool) -> set[S] | None:
        if matcher.kind == "wildcard":
            return self._wildcard
        if matcher.kind == "exact":
            bucket = self._exact.get(matcher.pattern)
            if bucket is None and create:
                bucket = self._exact[matcher.pattern] = set()
            return bucket
        bucket = self._patterns.get(matcher)
        if bucket is None and create:
            bucket = self._patterns[matcher] = set()
            self._file(matcher, bucket)
        return bucket

    def _file(self, matcher: Matcher, bucket: set[S]) -> None:
        if matcher.kind == "template":
            prefix = literal_prefix(matcher.pattern)
            by_prefix = self._prefixed.setdefault(len(prefix), {})
            by_prefix.setdefault(prefix, {})[matcher] = bucket
        else:
            self._scanned[matcher] = bucket

    def _unfile(self, matcher: Matcher) -> None:
        if matcher.kind != "template":
            self._scanned.pop(matcher, None)
            return
        prefix = literal_prefix(matcher.pattern)
        by_prefix = self._prefixed[len(prefix)]
        group = by_prefix[prefix]
        del group[matcher]
        if not group:
            del by_prefix[prefix]
            if not by_prefix:
                del self._prefixed[len(prefix)]

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
        if self._prefixed:
            seen: set[Matcher] = set()
            for topic in topics:
                for length, by_prefix in self._prefixed.items():
                    group = by_prefix.get(topic[:length])
                    if group is None:
                        continue
                    for matcher, bucket in group.items():
                        if matcher not in seen and matcher.matches(topic):
                            seen.add(matcher)
                            found.append(bucket)
        for matcher, bucket in self._scanned.items():
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
