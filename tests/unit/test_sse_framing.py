"""SSE framing of updates, checked against an independent parser (sseclient-py)."""

from __future__ import annotations

import re

import sseclient
from hypothesis import given
from hypothesis import strategies as st

from mercure_twisted.update import Update, encode_comment, encode_event

_ANY_TEXT = st.characters(blacklist_categories=["Cs"])
# Data: arbitrary text, with line breaks, field-looking lines and empty lines
# made frequent.
_DATA = st.lists(
    st.one_of(
        st.text(_ANY_TEXT, max_size=10),
        st.sampled_from(
            ["\r", "\n", "\r\n", "\n\n", "\r\r", "\n\r", "data:", "data: x", "id: forged",
             "event: forged", "retry: 1", ":comment", " ", "", "\u2028", "\x85", "é😀", "\0"]
        ),
    ),
    max_size=8,
).map("".join)
_SINGLE_LINE = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
                       max_size=12)


def _normalized(data: str) -> str:
    return re.sub(r"\r\n|\r", "\n", data)


def _parse(chunks: list[bytes]) -> list[sseclient.Event]:
    return list(sseclient.SSEClient(iter(chunks)).events())


def _split(frame: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(frame) + 1) for c in cuts})
    bounds = [0, *points, len(frame)]
    return [frame[a:b] for a, b in zip(bounds, bounds[1:])]


def _check_structure(frame: bytes, update: Update) -> None:
    """No injected field: id, then event/retry if set, then only data lines."""
    assert frame.endswith(b"\n\n")
    lines = frame[:-2].decode("utf-8").split("\n")
    assert "\r" not in frame.decode("utf-8")
    assert lines[0].startswith("id: ")
    rest = lines[1:]
    if update.type:
        assert rest[0].startswith("event: ")
        rest = rest[1:]
    if update.retry is not None:
        assert rest[0] == f"retry: {update.retry}"
        rest = rest[1:]
    assert rest, "at least one data line"
    assert all(line.startswith("data: ") for line in rest)
    assert len(rest) == _normalized(update.data).count("\n") + 1


updates = st.builds(
    Update,
    topics=st.just(("https://example.com/t",)),
    id=_SINGLE_LINE,
    data=_DATA,
    type=st.one_of(st.none(), _SINGLE_LINE),
    retry=st.one_of(st.none(), st.integers(0, 10**12)),
)


def _check_event(event: sseclient.Event, update: Update) -> None:
    assert event.data == _normalized(update.data)
    assert event.id == update.id.replace("\0", "")
    # NUL is stripped from id and type (a NUL-bearing id is ignored by browsers)
    assert event.event == ((update.type or "").replace("\0", "") or "message")
    assert event.retry == (None if update.retry is None else str(update.retry))


@given(updates)
def test_frame_round_trips(update: Update) -> None:
    frame = encode_event(update)
    _check_structure(frame, update)
    events = _parse([frame])
    assert len(events) == 1
    _check_event(events[0], update)


@given(updates, st.lists(st.integers(0, 10**6), max_size=6))
def test_frame_round_trips_across_chunk_boundaries(update: Update, cuts: list[int]) -> None:
    frame = encode_event(update)
    chunks = _split(frame, cuts)
    assert b"".join(chunks) == frame
    events = _parse(chunks)
    assert len(events) == 1
    _check_event(events[0], update)


@given(st.lists(updates, min_size=1, max_size=4), st.lists(st.integers(0, 10**6), max_size=8),
       st.text(_ANY_TEXT, max_size=10))
def test_stream_of_frames_and_comments(
    batch: list[Update], cuts: list[int], comment: str
) -> None:
    stream = encode_comment(comment) + b"".join(
        encode_event(u) + encode_comment() for u in batch
    )
    events = _parse(_split(stream, cuts))
    assert len(events) == len(batch)
    for event, update in zip(events, batch):
        _check_event(event, update)


def test_empty_data_is_still_one_event() -> None:
    update = Update(topics=("t",), id="urn:uuid:1")
    assert encode_event(update) == b"id: urn:uuid:1\ndata: \n\n"
    (event,) = _parse([encode_event(update)])
    assert event.data == ""
    assert event.id == "urn:uuid:1"
    assert event.event == "message"
    assert event.retry is None


def test_line_breaks_in_data_cannot_forge_fields() -> None:
    update = Update(topics=("t",), id="1", data="x\r\nid: forged\revent: evil\nretry: 1\n\ndata:z")
    frame = encode_event(update)
    assert frame == (
        b"id: 1\ndata: x\ndata: id: forged\ndata: event: evil\ndata: retry: 1\n"
        b"data: \ndata: data:z\n\n"
    )
    (event,) = _parse([frame])
    assert event.id == "1"
    assert event.event == "message"
    assert event.retry is None
    assert event.data == "x\nid: forged\nevent: evil\nretry: 1\n\ndata:z"


def test_line_breaks_in_id_and_type_are_stripped() -> None:
    update = Update(topics=("t",), id="a\r\nb\0", data="d", type="t\ny", retry=3000)
    frame = encode_event(update)
    assert frame == b"id: ab\nevent: ty\nretry: 3000\ndata: d\n\n"


def test_encoded_is_computed_once() -> None:
    update = Update(topics=("t",), id="1", data="hello")
    assert update.encoded == encode_event(update)
    assert update.encoded is update.encoded
    moved = update.with_position(7)
    assert moved == update
    assert moved.encoded == update.encoded


def test_encode_comment() -> None:
    assert encode_comment() == b":\n\n"
    assert encode_comment("hello") == b":hello\n\n"
    assert encode_comment("a\r\nb\rc\nd\0") == b":abcd\n\n"
    assert encode_comment("é") == ":é\n\n".encode()
    assert _parse([encode_comment("x\ndata: forged")]) == []


@given(st.text(_ANY_TEXT))
def test_comment_is_one_line_and_never_an_event(text: str) -> None:
    frame = encode_comment(text)
    assert frame.startswith(b":")
    assert frame.endswith(b"\n\n")
    assert b"\n" not in frame[:-2] and b"\r" not in frame
    assert _parse([frame]) == []
