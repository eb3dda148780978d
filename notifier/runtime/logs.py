"""One logging configuration for every role: readable text (default) or one JSON object a line,
with the role and the context fields (request id, service, event id, user, close code)."""

from __future__ import annotations

import contextvars
import datetime
import logging
import re
import sys
from typing import Final

import orjson

# set per HTTP request / WebSocket by notifier.runtime.access; read by every log line of it
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# the authenticated calling service of an API request (set by the ingest endpoint)
service: contextvars.ContextVar[str] = contextvars.ContextVar("service", default="")

ACCESS_LOGGER: Final = "notifier.access"  # HTTP access and WebSocket open/close lines, at INFO
# the context fields text lines append as key=value (the access line's own fields are in its
# message); JSON lines carry every field passed in `extra=`
CONTEXT_FIELDS: Final = ("service", "event_id", "user", "code", "reason")
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


class _Context(logging.Filter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self._role = role

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = self._role
        record.request_id = request_id.get()
        if not hasattr(record, "service"):
            record.service = service.get()
        return True


_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def _escaped(text: str) -> str:
    """Control characters as escapes: a request path with %0a in it could forge log lines."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    """`TIME LEVEL LOGGER message key=value…`: the context fields appended to the message; one
    line a record, whatever the message holds (a traceback follows on lines of its own)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _escaped(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = [
            f"{k}={_escaped(str(v))}"
            for k in CONTEXT_FIELDS
            if (v := getattr(record, k, None)) not in (None, "")
        ]
        rid = getattr(record, "request_id", "")
        if rid:
            context.append(f"request_id={rid}")
        return f"{line} {' '.join(context)}" if context else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, role, logger, message, and the context fields set."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "role": getattr(record, "role", ""),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", "")
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in ("role", "request_id") and value not in (None, ""):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure(level: str = "INFO", *, fmt: str = "text", access: bool = True, role: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_Context(role))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn logs every WebSocket open/close at INFO: noise at thousands of connections (ours
    # are the access lines below, which can be turned off)
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, root.level))
    # arq logs each job's start and end at INFO in a layout of its own (a periodic sweep every
    # few seconds); the jobs role's own lines and metrics say what ran
    logging.getLogger("arq").setLevel(max(logging.WARNING, root.level))
    # access lines are INFO: on with the level at INFO or below, unless turned off
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.NOTSET if access else logging.WARNING)
