"""The log observer that writes a reactor turn's lines together."""

from __future__ import annotations

import io
import threading
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.python import threadable
from twisted.trial.unittest import SynchronousTestCase

from mercure_twisted._logwriter import TurnFileLogObserver


class _CountingFile(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _line(event: dict[str, Any]) -> str | None:
    return event.get("text")


class _FailingFile(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")


class TurnFileLogObserverTests(SynchronousTestCase):
    def setUp(self) -> None:
        threadable.registerAsIOThread()  # as the running reactor does
        self.reactor = MemoryReactorClock()
        self.reactor.running = True
        self.out = _CountingFile()
        self.observer = TurnFileLogObserver(self.out, _line, self.reactor)

    def test_a_turn_of_lines_is_one_write_at_its_end(self) -> None:
        for i in range(5):
            self.observer({"text": f"line {i}\n"})
        self.assertEqual(self.out.getvalue(), "")
        self.reactor.advance(0)
        self.assertEqual(self.out.getvalue(), "".join(f"line {i}\n" for i in range(5)))
        self.assertEqual(self.out.writes, 1)
        self.observer({"text": "next turn\n"})
        self.reactor.advance(0)
        self.assertEqual(self.out.writes, 2)

    def test_events_with_no_text_write_nothing(self) -> None:
        self.observer({})
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_without_a_running_reactor_each_line_is_written_at_once(self) -> None:
        self.reactor.running = False
        self.observer({"text": "a\n"})
        self.assertEqual(self.out.getvalue(), "a\n")

    def test_a_line_from_another_thread_is_written_at_once_with_the_held_ones(self) -> None:
        self.observer({"text": "held\n"})
        thread = threading.Thread(target=self.observer, args=({"text": "from a thread\n"},))
        thread.start()
        thread.join()
        self.assertEqual(self.out.getvalue(), "held\nfrom a thread\n")
        self.reactor.advance(0)  # the scheduled flush finds nothing left
        self.assertEqual(self.out.writes, 1)

    def test_an_unwritable_file_loses_the_lines_without_raising_at_the_turn_end(self) -> None:
        observer = TurnFileLogObserver(_FailingFile(), _line, self.reactor)
        observer({"text": "lost\n"})
        self.reactor.advance(0)  # nothing raised, nothing rescheduled
        self.assertEqual(self.reactor.getDelayedCalls(), [])
