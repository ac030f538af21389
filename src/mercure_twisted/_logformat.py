"""twisted.logger's text formatting, the same lines at a fraction of the cost.

The hub writes one access event per publish.  Written by twisted.logger's
own ``textFileLogObserver``, that event cost about a third of a publish
(the benchmark suite's profile, RESULTS.md): its message goes through
``string.Formatter``, a pure-Python reimplementation of ``str.format``
(which it needs only for its ``{callable()}`` extension), and its timestamp
through a time-zone lookup and ``strftime`` on every event.

``format_message`` formats with the C ``str.format_map`` whenever the
format cannot use that extension, and hands every other case (flattened
events, ``()`` in the format, a format that fails) to twisted.logger, so
its output is twisted.logger's, character for character:
tests/unit/test_logformat.py checks that against twisted.logger on
generated events.  ``classic_text_line`` is ``formatEventAsClassicLogText``
with the timestamp cached for the second it names.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import LogEvent, formatEvent, formatEventAsClassicLogText, formatTime

__all__ = ["classic_text_line", "format_message"]


def format_message(event: LogEvent) -> str:
    """``twisted.logger.formatEvent(event)``, through ``str.format_map`` where it can."""
    fmt = event.get("log_format")
    if type(fmt) is not str or "()" in fmt or "log_flattened" in event:
        return formatEvent(event)
    try:
        return fmt.format_map(event)
    except Exception:
        return formatEvent(event)  # its "Unable to format event" text


class _SecondCache:
    """``formatTime`` for one whole second at a time.

    The default time format has no fraction of a second, and local-time
    offsets change only on whole seconds, so every event of the same
    second gets the same text (but for the last microsecond of a second,
    which ``datetime`` may round up into the next).
    """

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second: int | None = None
        self._text = ""

    def __call__(self, when: float | None) -> str:
        if when is None:
            return formatTime(when)
        second = int(when)
        if when - second > 0.999999:
            # datetime rounds to the microsecond: this may be the next second.
            return formatTime(when)
        if second != self._second:
            self._text = formatTime(second)
            self._second = second
        return self._text


_format_time = _SecondCache()


def classic_text_line(event: LogEvent) -> str | None:
    """``formatEventAsClassicLogText(event)``: ``"{time} [{system}] {message}\\n"``."""
    if "log_failure" in event or "log_system" in event:
        return formatEventAsClassicLogText(event, formatTime=_format_time)
    text = format_message(event)
    if not text:
        return None
    level: Any = event.get("log_level")
    system = f"{event.get('log_namespace', '-')}#{level.name if level is not None else '-'}"
    line = f"{_format_time(event.get('log_time'))} [{system}] {text}"
    return line.replace("\n", "\n\t") + "\n"
