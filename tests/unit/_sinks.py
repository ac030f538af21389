"""An in-memory stream sink for engine tests (records bytes, honours finish)."""

from __future__ import annotations

from twisted.internet.interfaces import IPushProducer


class ListSink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.finished = False
        self.aborted = False
        self.producer: IPushProducer | None = None

    def write(self, data: bytes) -> None:
        assert not self.finished, "write after finish"
        self.chunks.append(data)

    def finish(self) -> None:
        self.finished = True

    def abort(self) -> None:
        self.aborted = True
        self.finished = True

    def release(self) -> None:
        self.producer = None

    def register_producer(self, producer: IPushProducer) -> None:
        self.producer = producer

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    def ids(self) -> list[str]:
        return [
            line[4:].decode()
            for line in self.data.split(b"\n")
            if line.startswith(b"id: ")
        ]
