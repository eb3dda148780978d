"""The log formats: JSON lines with the role, the request's id and the context fields; text lines
with them appended; access lines on or off by NOTIFIER_LOG_ACCESS."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from notifier.runtime import logs
from notifier.runtime.settings import Settings
from schemas.errors import ConfigError


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)
    logging.getLogger(logs.ACCESS_LOGGER).setLevel(logging.NOTSET)


def configure(stream: io.StringIO, **options: object) -> None:
    logs.configure("INFO", role="gateway", **options)  # type: ignore[arg-type]
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]


def test_json_lines_carry_role_request_id_and_context(captured: io.StringIO) -> None:
    configure(captured, fmt="json")
    token = logs.request_id.set("req-7")
    try:
        logging.getLogger(logs.ACCESS_LOGGER).info("ws close", extra={"user": "olga", "code": 4504})
    finally:
        logs.request_id.reset(token)
    logging.getLogger("notifier.x").warning("plain %s", "line")
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["time"].endswith("+00:00") and first["level"] == "INFO"
    assert {k: first[k] for k in ("role", "logger", "message", "request_id", "user", "code")} == {
        "role": "gateway",
        "logger": "notifier.access",
        "message": "ws close",
        "request_id": "req-7",
        "user": "olga",
        "code": 4504,
    }
    assert second["message"] == "plain line" and "request_id" not in second


def test_text_lines_append_the_context(captured: io.StringIO) -> None:
    configure(captured)
    token = logs.request_id.set("req-8")
    try:
        logging.getLogger(logs.ACCESS_LOGGER).info("ws open", extra={"user": "olga"})
    finally:
        logs.request_id.reset(token)
    assert captured.getvalue().rstrip().endswith("INFO notifier.access ws open user=olga request_id=req-8")


def test_access_lines_can_be_turned_off(captured: io.StringIO) -> None:
    settings = Settings.from_env({"NOTIFIER_LOG_ACCESS": "0", "NOTIFIER_LOG_FORMAT": "json"})
    configure(captured, fmt=settings.log.format, access=settings.log.access)
    logging.getLogger(logs.ACCESS_LOGGER).info("GET /readyz 200")
    logging.getLogger("notifier.x").info("kept")
    assert [json.loads(line)["message"] for line in captured.getvalue().splitlines()] == ["kept"]


def test_a_bad_format_is_refused() -> None:
    with pytest.raises(ConfigError, match="NOTIFIER_LOG_FORMAT must be text or json"):
        Settings.from_env({"NOTIFIER_LOG_FORMAT": "xml"})


def test_a_text_line_cannot_be_split_by_what_it_logs(captured: io.StringIO) -> None:
    """A request path with %0a decoded in it forged log lines of its own."""
    configure(captured)
    forged = "/nope\n2026-12-07 09:00:00,000 ERROR notifier.auth FORGED\r\u2028x"
    logging.getLogger(logs.ACCESS_LOGGER).info("GET %s 404", forged, extra={"user": "a\nb"})
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("notifier.x").exception("failed")
    lines = captured.getvalue().splitlines()
    assert "\\n2026-12-07 09:00:00,000 ERROR notifier.auth FORGED\\r\\u2028x 404" in lines[0]
    assert lines[0].endswith("user=a\\nb")
    assert not lines[1].startswith("2026-12-07 09:00:00,000") and "failed" in lines[1]
    assert any("ValueError: boom" in line for line in lines[2:])  # a traceback keeps its lines
