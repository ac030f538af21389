"""The JSON log writer and the redaction behind it."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from mercure_twisted._logwriter import flush_all
from mercure_twisted.logs import event_as_json, json_observer, log_observer_for, redact
from tests import tokens

TOKEN = tokens.draft07_token("a-secret-that-is-long-enough-for-hs256!!", ["*"], None)


class RedactTests(SynchronousTestCase):
    def test_tokens_anywhere(self) -> None:
        for text in (
            f"GET /?topic=a&authorization={TOKEN}&b=1",
            f"Authorization: Bearer {TOKEN}",
            f"Cookie: mercureAuthorization={TOKEN}",
            f"bad token {TOKEN!r} refused",
            "access_token=opaque-secret-value",
            "Bearer opaque-secret-value",
        ):
            out = redact(text)
            self.assertNotIn(TOKEN.rsplit(".", 1)[1], out)
            self.assertNotIn("opaque-secret-value", out)
            self.assertIn("REDACTED", out)

    def test_other_text_unchanged(self) -> None:
        text = "subscription urn:uuid:1 closed after 2.5 s: client disconnected"
        self.assertEqual(redact(text), text)


class JSONTests(SynchronousTestCase):
    def emit(self, f) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
        out = io.StringIO()
        observer = json_observer(out)
        f(Logger(namespace="test", observer=LogPublisher(observer)))
        flush_all()  # the reactor may be running: lines wait for the turn's end
        return [json.loads(line) for line in out.getvalue().splitlines()]

    def test_one_object_per_line_with_fields(self) -> None:
        (event,) = self.emit(lambda log: log.info(
            "published {id} to {topics}", id="urn:1", topics=("a", "b"), size=3
        ))
        self.assertEqual(event["level"], "info")
        self.assertEqual(event["namespace"], "test")
        self.assertEqual(event["message"], "published urn:1 to ('a', 'b')")
        self.assertEqual((event["id"], event["topics"], event["size"]), ("urn:1", ["a", "b"], 3))
        self.assertTrue(event["time"].endswith("+00:00"))

    def test_fields_messages_and_tracebacks_are_redacted(self) -> None:
        def log(logger: Logger) -> None:
            logger.warn("refused {token}", token=TOKEN, nested={"uri": f"/?authorization={TOKEN}"})
            try:
                raise ValueError(f"cannot decode {TOKEN}")
            except ValueError:
                logger.failure("oops", Failure(), level=LogLevel.error)

        events = self.emit(log)
        text = json.dumps(events)
        self.assertNotIn(TOKEN.rsplit(".", 1)[1], text)
        self.assertIn("ValueError", events[1]["error"])

    def test_unserializable_values_become_text(self) -> None:
        line = event_as_json({"log_format": "x {o}", "o": object(), "log_time": 0.0,
                              "log_level": LogLevel.info, "log_namespace": "n"})
        self.assertIn('"o":"<object object at', line)

    def test_only_text_to_syslog_keeps_twistd_observer(self) -> None:
        self.assertIsNone(log_observer_for("text", {"syslog": True}, "info"))
        self.assertIsNotNone(log_observer_for("text", {"nodaemon": True}, "debug"))
        self.assertIsNotNone(log_observer_for("json", {"nodaemon": True, "logfile": None}))

    def test_text_at_debug_writes_every_level_as_twistd_would(self) -> None:
        from twisted.logger import Logger, formatEventAsClassicLogText

        observer, out = _stdout_observer("text", "debug")
        seen: list[dict] = []
        log = Logger(namespace="mercure.test", observer=lambda e: (seen.append(e), observer(e)))
        log.debug("hidden {x}", x=1)
        log.info("two\nlines {x!r}", x="y")
        flush_all()
        self.assertEqual(out.getvalue(), "".join(formatEventAsClassicLogText(e) or "" for e in seen))
        self.assertIn("[mercure.test#debug] hidden 1\n", out.getvalue())
        self.assertIn("two\n\tlines 'y'\n", out.getvalue())

    def test_levels_below_log_level_are_dropped_before_formatting(self) -> None:
        from twisted.logger import Logger

        for log_format in ("text", "json"):
            observer, out = _stdout_observer(log_format, "info")
            log = Logger(namespace="mercure.test", observer=observer)
            log.debug("hidden {x}", x=1)
            log.info("shown {x}", x=2)
            flush_all()
            text = out.getvalue()
            self.assertIn("shown 2", text)
            self.assertNotIn("hidden", text)
        observer, out = _stdout_observer("json", "debug")
        Logger(namespace="mercure.test", observer=observer).debug("hidden {x}", x=1)
        flush_all()
        self.assertIn("hidden 1", out.getvalue())


def _stdout_observer(log_format: str, level: str) -> tuple[Any, io.StringIO]:
    """``log_observer_for`` writing to stdout (``--nodaemon``), stdout captured."""
    out = io.StringIO()
    real, sys.stdout = sys.stdout, out
    try:
        observer = log_observer_for(log_format, {"nodaemon": True}, level)
    finally:
        sys.stdout = real
    assert observer is not None
    return observer, out
