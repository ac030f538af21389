"""An incremental parser of ``text/event-stream`` (Server-Sent Events).

It follows the WHATWG "event stream interpretation" rules exactly
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):

* the bytes are decoded as UTF-8 (invalid sequences become U+FFFD) and one
  leading BOM is dropped;
* lines end with CRLF, LF or CR; a CR that ends one chunk and an LF that
  starts the next are one line end;
* ``field: value`` (one space after the colon removed), a line without a
  colon is a field with an empty value, a line starting with a colon is a
  comment;
* ``data`` lines are joined with LF, ``event`` sets the type, ``id`` sets the
  last event id (ignored when it contains NUL; it persists across events,
  and an empty ``id:`` resets it), ``retry`` is taken only when it is ASCII
  digits; unknown fields are ignored;
* a blank line dispatches the event, but only if some ``data`` line came
  (otherwise it only updates `SSEParser.last_event_id` and clears the type);
* an event not ended by a blank line when the stream ends is discarded (the
  parser simply never dispatches it).

Memory is bounded: a line, or the data of one event, longer than
``max_size`` characters raises `SSELimitExceeded`; the parser is then
unusable and the caller drops the connection (and reconnects).
"""

from __future__ import annotations

import codecs
import re

import attrs

__all__ = ["DEFAULT_MAX_SIZE", "SSEEvent", "SSELimitExceeded", "SSEParser"]

#: 16 MiB: the default bound of one line, and of one event's data.
DEFAULT_MAX_SIZE = 16 * 1024 * 1024

_LINE_END = re.compile(r"\r\n|\r|\n")
_DIGITS = re.compile(r"[0-9]+")


@attrs.frozen
class SSEEvent:
    """One dispatched event.

    ``id`` is the last event id at dispatch (possibly set by an earlier
    event), ``event`` the type as sent (``""`` when none was: the type
    ``message`` of the spec), ``data`` the data lines joined with LF.
    """

    id: str
    event: str
    data: str


class SSELimitExceeded(ValueError):
    """A line or an event is larger than the parser's ``max_size``."""


class SSEParser:
    """Feed bytes in any chunks with `feed`; it returns the events completed.

    ``last_event_id`` starts as ``last_event_id`` (the cursor a reconnection
    resumes from, so events without an ``id`` field carry it, as in an
    ``EventSource``).
    """

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE, last_event_id: str = "") -> None:
        if max_size <= 0:
            raise ValueError("max_size must be positive")
        self.max_size = max_size
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False  # a first character was decoded (the BOM is behind)
        self._after_cr = False  # the last line ended with a CR: skip one LF
        self._partial: list[str] = []  # the current, incomplete line
        self._partial_size = 0
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        self._id_buffer = last_event_id
        self._last_event_id = last_event_id
        self._retry: int | None = None
        self._broken: SSELimitExceeded | None = None

    @property
    def last_event_id(self) -> str:
        """The event source's last event id: the id buffer as of the last
        dispatch (blank line), whether or not that dispatched an event."""
        return self._last_event_id

    @property
    def retry(self) -> int | None:
        """The last valid ``retry`` value (milliseconds), or None."""
        return self._retry

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse ``chunk``; the events it completed, in order.

        Raises `SSELimitExceeded` (then on every later call too).
        """
        if self._broken is not None:
            raise self._broken
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return []
        if self._after_cr:
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        events: list[SSEEvent] = []
        start = 0
        for match in _LINE_END.finditer(text):
            line = text[start : match.start()]
            if self._partial:
                self._partial.append(line)
                line = "".join(self._partial)
                self._partial.clear()
                self._partial_size = 0
            self._check(len(line), "a line")
            event = self._line(line)
            if event is not None:
                events.append(event)
            start = match.end()
        if start < len(text):
            rest = text[start:]
            self._partial.append(rest)
            self._partial_size += len(rest)
            self._check(self._partial_size, "a line")
        else:
            self._after_cr = text[-1] == "\r"
        return events

    def _check(self, size: int, what: str) -> None:
        if size > self.max_size:
            self._broken = SSELimitExceeded(
                f"{what} of the event stream is longer than {self.max_size} characters"
            )
            self._partial.clear()
            self._data.clear()
            raise self._broken

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        field, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._data_size += len(value) + 1
            self._check(self._data_size, "the data of an event")
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif field == "retry":
            if _DIGITS.fullmatch(value):
                self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        self._last_event_id = self._id_buffer
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(id=self._id_buffer, event=self._event, data="\n".join(self._data))
        self._data = []
        self._data_size = 0
        self._event = ""
        return event
