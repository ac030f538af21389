"""The update value object and its Server-Sent Events encoding.

This module is the only place where the bytes of an event are made: an
update is encoded once, when it is first needed, and the same ``bytes``
object is written to every receiver.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import uuid_utils

__all__ = ["Update", "encode_event", "encode_comment", "new_event_id"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def new_event_id() -> str:
    """A fresh hub-generated event id: a time-ordered ``urn:uuid:`` UUIDv7."""
    return "urn:uuid:" + str(uuid_utils.uuid7())


@attrs.frozen(slots=False)
class Update:
    """One published update, immutable once accepted.

    ``position`` is set by the transport that stored the update; it orders
    updates within that transport and lets a subscriber that is replaying
    history drop the live copies of events it already received.
    """

    topics: tuple[str, ...]
    id: str
    data: str = ""
    private: bool = False
    type: str | None = None
    retry: int | None = None
    position: Any = attrs.field(default=None, eq=False)

    @property
    def canonical_topic(self) -> str:
        return self.topics[0]

    def with_position(self, position: Any) -> Update:
        return attrs.evolve(self, position=position)

    @property
    def encoded(self) -> bytes:
        """The SSE frame of this update, computed once and shared."""
        try:
            return self.__dict__["_encoded"]  # type: ignore[no-any-return]
        except KeyError:
            frame = encode_event(self)
            object.__setattr__(self, "_encoded", frame)
            return frame


def encode_event(update: Update) -> bytes:
    """Serialize ``update`` as one SSE event.

    Every line of ``data`` becomes its own ``data:`` field, split on CRLF, CR
    or LF as the HTML serialization rules require, so that a line break in the
    data can never start a forged ``id:`` or ``event:`` field.  ``id``,
    ``type`` and ``retry`` have been validated free of line breaks at publish
    time; they are stripped of them here again as a second line of defence.
    """
    parts = ["id: ", _single_line(update.id), "\n"]
    if update.type:
        parts += ["event: ", _single_line(update.type), "\n"]
    if update.retry is not None:
        parts += ["retry: ", str(int(update.retry)), "\n"]
    for line in _LINE_BREAK.split(update.data):
        parts += ["data: ", line, "\n"]
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def encode_comment(text: str = "") -> bytes:
    """An SSE comment line (used for the opening comment and heartbeats)."""
    return (":" + _single_line(text) + "\n\n").encode("utf-8")


def _single_line(value: str) -> str:
    return _LINE_BREAK.sub("", value).replace("\0", "")
