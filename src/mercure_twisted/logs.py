"""Logs for operators: access lines, stream lines, and one JSON object per line.

Every event is a ``twisted.logger`` event with named fields; ``log_format =
"json"`` only changes how they are written (``json_observer``).  Nothing
here ever writes a token: the access line redacts token query parameters
and never looks at the ``Authorization`` or ``Cookie`` headers, and the JSON
writer additionally masks anything shaped like a JWS compact serialization
(``xxx.yyy.zzz`` in base64url starting with ``eyJ``) in every message and
field, so that a token that reached some message by accident (an error that
quotes its input) still does not reach the log.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timezone
from typing import IO, Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import (
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    PredicateResult,
)
from twisted.python.logfile import LogFile
from zope.interface import implementer

from ._logformat import classic_text_line, format_message
from ._logwriter import TurnFileLogObserver
from .subscriber import Subscriber
from .update import Update

__all__ = [
    "AtLeastLevel",
    "StreamLog",
    "access_line",
    "debug_logged",
    "json_observer",
    "log_observer_for",
    "redact",
    "register_capability_prefix",
    "text_observer",
]

#: A JWS/JWT compact serialization: base64url JSON header (``eyJ`` is
#: ``{"``), payload and signature.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: A token in a query string or form: ``authorization=...``, ``access_token=...``.
_TOKEN_PARAMETER = re.compile(r"((?:^|[?&;\s])(?:authorization|access_token)=)[^&\s]*", re.I)
#: ``Bearer xxx`` wherever it appears.
_BEARER = re.compile(r"(\bBearer\s+)[^\s\"',;]+", re.I)

REDACTED = "REDACTED"

#: Path prefixes whose next segment is a capability (a secret URL such as a
#: WebSub callback), registered by what mounts them on the hub's root.
_capability_paths: re.Pattern[str] | None = None
_capability_prefixes: set[str] = set()
#: What every pattern above needs somewhere in the text: most log text
#: (a publish's access line among it) has none of it, and one search
#: is cheaper than four substitutions.
_SUSPECT_BASE = r"eyJ|=|bearer"
_suspect = re.compile(_SUSPECT_BASE, re.I)


def register_capability_prefix(prefix: str) -> None:
    """Redact the path segment after ``prefix/`` (``/websub/callback``) in logs."""
    global _capability_paths, _suspect
    _capability_prefixes.add(prefix.rstrip("/"))
    alternatives = "|".join(re.escape(p) for p in sorted(_capability_prefixes))
    _capability_paths = re.compile(rf"((?:{alternatives})/)[^/?#\s\"]+")
    _suspect = re.compile(rf"{_SUSPECT_BASE}|(?:{alternatives})/", re.I)


def redact(text: str) -> str:
    """``text`` with every token-looking value replaced by ``REDACTED``."""
    if _suspect.search(text) is None:
        return text
    if _capability_paths is not None:
        text = _capability_paths.sub(r"\1" + REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    text = _TOKEN_PARAMETER.sub(r"\1" + REDACTED, text)
    return _BEARER.sub(r"\1" + REDACTED, text)


def _redacted(value: Any) -> Any:
    """A JSON-ready copy of a field value, every string redacted."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"))
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _redacted(v) for k, v in value.items()}
    return redact(str(value))


def event_as_json(event: LogEvent) -> str:
    """One line: time, level, namespace, message, then the event's own fields."""
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time") or 0, timezone.utc).isoformat(
            timespec="milliseconds"
        ),
        "level": getattr(level, "name", "info"),
        "namespace": event.get("log_namespace"),
        "message": redact(format_message(event)),
    }
    for key, value in event.items():
        if key.startswith("log_") or key in record or key in ("format", "message", "why"):
            continue
        if key in ("isError", "printed", "system", "time"):
            continue
        record[key] = _redacted(value)
    failure = event.get("log_failure")
    if failure is not None:
        record["error"] = redact(failure.getTraceback())
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def text_observer(out: IO[Any]) -> TurnFileLogObserver:
    """twistd's text lines (``textFileLogObserver``), formatted at a third of
    its cost and written once per reactor turn (``_logwriter``)."""
    return TurnFileLogObserver(out, classic_text_line)


def json_observer(out: IO[Any]) -> TurnFileLogObserver:
    """A log observer writing one JSON object per line to ``out``."""
    return TurnFileLogObserver(out, event_as_json)


#: Whether the process's log observer writes debug events: True until
#: ``log_observer_for`` builds one that filters them out.  Hot paths ask
#: ``debug_logged()`` before a debug event: twisted.logger builds and
#: publishes an event even when every observer drops it (2.6% of a publish).
_debug_logged = True


def debug_logged() -> bool:
    """False when debug events would be dropped (cheaper not to emit them)."""
    return _debug_logged


def log_observer_for(
    log_format: str, server_options: Any, log_level: str = "info"
) -> ILogObserver | None:
    """The observer twistd should use for ``log_format`` and ``log_level``.

    At the default ``info`` level the hub's per-publish and per-stream
    debug events are dropped before they are formatted (the benchmark
    suite measured them at ~10% of a publish), and text lines are written
    by ``text_observer`` rather than twistd's own (a third of a publish).
    None (twistd's own observer) only for text to syslog.  Writes where
    twistd would: ``--logfile`` (``-`` is stdout), else stdout with
    ``--nodaemon``, else ``twistd.log``.
    """
    options = server_options or {}
    if options.get("syslog") and log_format != "json":
        return None  # twistd's syslog observer: leave it to twistd
    logfile = options.get("logfile") or ""
    out: IO[Any]
    if logfile == "-" or (not logfile and options.get("nodaemon", True)):
        out = sys.stdout
    else:
        out = LogFile.fromFullPath(logfile or "twistd.log")
    observer = json_observer(out) if log_format == "json" else text_observer(out)
    global _debug_logged
    _debug_logged = log_level == "debug"
    if log_level == "debug":
        return observer
    return FilteringLogObserver(observer, [AtLeastLevel(LogLevel.levelWithName(log_level))])


@implementer(ILogFilterPredicate)
class AtLeastLevel:
    """``LogLevelFilterPredicate(defaultLogLevel=level)`` with no per-namespace levels.

    Twisted's predicate compares levels through ``LogLevel``'s ordering,
    which lists every constant on each comparison (1% of a publish); this
    looks the level up in a set.  As Twisted's, it drops events with no
    level or no namespace and leaves the rest to the next predicate.
    """

    def __init__(self, level: Any) -> None:  # a LogLevel constant
        self._shown = frozenset(
            other for other in LogLevel.iterconstants() if not other < level
        )

    def __call__(self, event: LogEvent) -> Any:  # a PredicateResult constant
        if event.get("log_level") in self._shown and event.get("log_namespace"):
            return PredicateResult.maybe
        return PredicateResult.no


def access_line(request: Any, duration: float | None) -> dict[str, Any]:
    """The fields of one access-log event for a finished request (no token)."""
    address = request.getClientAddress()
    referer = request.getHeader(b"referer")
    agent = request.getHeader(b"user-agent")
    return {
        "remote": getattr(address, "host", str(address)),
        "method": request.method.decode("latin-1"),
        # ``redact`` covers ``web._site.redact_uri``'s token parameters.
        "uri": redact(request.uri.decode("latin-1")),
        "protocol": request.clientproto.decode("latin-1"),
        "status": int(request.code),
        "bytes": int(getattr(request, "sentLength", 0) or 0),
        "duration": round(duration, 6) if duration is not None else None,
        "referer": redact(referer.decode("latin-1")) if referer else None,
        "user_agent": agent.decode("latin-1") if agent else None,
    }


class StreamLog:
    """A hub observer (``hub.HubObserver``) writing one line per stream open and close.

    The close line says why the stream ended (client gone, write_timeout,
    token expired, too slow, shutdown) and how long it lasted.
    """

    # An instance, not a class attribute: a Logger read through a class
    # takes the class's name as its namespace.
    def __init__(self, clock: IReactorTime) -> None:
        self.log = Logger(namespace="mercure.stream")
        self._clock = clock
        self._opened: dict[str, float] = {}

    def subscribed(self, subscriber: Subscriber) -> None:
        self._opened[subscriber.id] = self._clock.seconds()
        self.log.info(
            "subscription {subscriber} opened: draft-{dialect}, {count} matcher(s) {matchers}",
            subscriber=subscriber.id,
            dialect=subscriber.dialect,
            count=len(subscriber.matchers),
            matchers=[m.pattern for m in subscriber.matchers[:10]],
        )

    def unsubscribed(self, subscriber: Subscriber, reason: str) -> None:
        started = self._opened.pop(subscriber.id, None)
        duration = self._clock.seconds() - started if started is not None else None
        self.log.info(
            "subscription {subscriber} closed after {duration} s: {reason}",
            subscriber=subscriber.id,
            reason=reason,
            duration=round(duration, 3) if duration is not None else None,
        )

    def dispatched(self, update: Update, receivers: int, seconds: float) -> None:
        pass

    def transport_failed(self, operation: str) -> None:
        pass
