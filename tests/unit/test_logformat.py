"""The hub's fast log formatting writes exactly what twisted.logger would."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import LogLevel, formatEvent, formatEventAsClassicLogText
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from mercure_twisted._logformat import _SecondCache, classic_text_line, format_message

_NAMES = ["a", "b", "uri", "log_namespace", "missing"]
_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.text(max_size=20), st.binary(max_size=8), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.sampled_from(["k", "0"]), st.integers(), max_size=2),
)
_field = st.builds(
    lambda name, attr, index, conversion, spec: "{" + name + attr + index + conversion + spec + "}",
    st.sampled_from(_NAMES + ["", "0", "a()", "b.real()"]),
    st.sampled_from(["", ".real", ".upper", ".nope"]),
    st.sampled_from(["", "[0]", "[k]"]),
    st.sampled_from(["", "!r", "!s", "!a", "!x"]),
    st.sampled_from(["", ":>6", ":.2f", ":d", ":{b}", ":x"]),
)
_literal = st.lists(st.sampled_from(list("ab \n\t{}é:") + ["{{", "}}"]), max_size=6).map("".join)
_formats = st.lists(st.one_of(_field, _literal), max_size=5).map("".join)


def _event(fmt: Any, fields: dict[str, Any], when: float | None, level: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"log_format": fmt, "log_namespace": "mercure.test", **fields}
    if when is not None:
        event["log_time"] = when
    if level is not None:
        event["log_level"] = level
    return event


_events = st.builds(
    _event,
    st.one_of(_formats, st.none(), st.binary(max_size=4), st.integers()),
    st.dictionaries(st.sampled_from(_NAMES[:3]), _values, max_size=3),
    st.one_of(st.none(), st.floats(min_value=0, max_value=4e9)),
    st.one_of(st.none(), st.sampled_from(list(LogLevel.iterconstants()))),
)


class SameAsTwistedTests(SynchronousTestCase):
    @settings(max_examples=600, deadline=None)
    @given(_events)
    def test_message_and_line_match_twisted_logger(self, event: dict[str, Any]) -> None:
        self.assertEqual(format_message(dict(event)), formatEvent(dict(event)))
        self.assertEqual(classic_text_line(dict(event)), formatEventAsClassicLogText(dict(event)))

    def test_system_and_failure_events_match(self) -> None:
        try:
            1 / 0
        except ZeroDivisionError:
            failure = Failure()
        for event in (
            {"log_format": "oops {x}", "x": 1, "log_failure": failure, "log_time": 1.5},
            {"log_format": "legacy", "log_system": "HTTPChannel,3,127.0.0.1", "log_time": 2.0},
            {"log_format": "", "log_time": 2.0},
            {"log_flattened": {"x!:": "1"}, "log_format": "{x}", "x": 2},
        ):
            self.assertEqual(classic_text_line(dict(event)), formatEventAsClassicLogText(dict(event)))

    def test_access_event_uses_the_c_formatter(self) -> None:
        """The hot case must not fall back (that would be the slow path)."""
        import mercure_twisted._logformat as module

        calls: list[Any] = []
        real = module.formatEvent
        module.formatEvent = lambda e: calls.append(e) or real(e)  # type: ignore[assignment]
        try:
            text = format_message({"log_format": '{remote} "{method}" {duration}s',
                                   "remote": "::1", "method": "POST", "duration": 0.25})
        finally:
            module.formatEvent = real
        self.assertEqual(text, '::1 "POST" 0.25s')
        self.assertEqual(calls, [])


class SecondCacheTests(SynchronousTestCase):
    def test_each_second_formatted_as_twisted_does(self) -> None:
        from twisted.logger import formatTime

        cache = _SecondCache()
        now = time.time()
        for when in (now, now + 0.2, now + 0.999, now + 1.0, now - 3600.5, 0.0, 1.9999995, 1.9999994, None):
            self.assertEqual(cache(when), formatTime(when))


class AtLeastLevelTests(SynchronousTestCase):
    def test_same_verdicts_as_twisted_predicate(self) -> None:
        from twisted.logger import LogLevelFilterPredicate

        from mercure_twisted.logs import AtLeastLevel

        for minimum in LogLevel.iterconstants():
            ours, theirs = AtLeastLevel(minimum), LogLevelFilterPredicate(defaultLogLevel=minimum)
            for level in [None, *LogLevel.iterconstants()]:
                for namespace in (None, "", "mercure.access"):
                    event: dict[str, Any] = {"log_format": "x"}
                    if level is not None:
                        event["log_level"] = level
                    if namespace is not None:
                        event["log_namespace"] = namespace
                    self.assertIs(ours(event), theirs(event), (minimum, level, namespace))
