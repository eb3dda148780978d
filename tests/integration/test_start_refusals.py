"""A role that Redis refuses to serve at start (a wrong password, a database number it does
not have) or that cannot open its port exits 2 with one line, as for any other misconfiguration:
not a wait for an outage that will never end, not a traceback."""

from __future__ import annotations

import socket
from collections.abc import Callable

import orjson
import pytest

from notifier.cli import main
from tests.conftest import free_port

pytestmark = [pytest.mark.integration]


@pytest.mark.parametrize(
    ("url_of", "said"),
    [
        (lambda url: url.replace("redis://", "redis://nobody:secret@"), "authentication failed"),
        (lambda url: url.replace("redis://", "redis://:secret@"), "authentication failed"),
        (lambda url: url.rsplit("/", 1)[0] + "/99", "DB index is out of range"),
    ],
    ids=["unknown-user", "password-nobody-set", "no-such-database"],
)
def test_redis_refusing_the_url_is_one_line_and_exit_2(
    redis_url: str,
    url_of: Callable[[str], str],
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NOTIFIER_REDIS_URL", url_of(redis_url))
    monkeypatch.setenv("NOTIFIER_METRICS_PORT", "0")
    monkeypatch.setenv("NOTIFIER_MODERATION_CLASSIFIER", "0")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err, err
    assert err.splitlines()[-1].startswith("redis refused: "), err  # one line, after the log's
    # in the JSON log format, one JSON object (a log collector keeps it whole)
    monkeypatch.setenv("NOTIFIER_LOG_FORMAT", "json")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    line = orjson.loads(err.splitlines()[-1])
    assert (line["level"], line["role"]) == ("CRITICAL", "worker") and said in line["message"], err


def test_a_port_in_use_while_redis_is_away_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Waiting for Redis, the role serves its probes on its port: a port already taken is the
    same one line as with Redis up."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("NOTIFIER_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # nobody there
        monkeypatch.setenv("NOTIFIER_METRICS_PORT", str(port))
        monkeypatch.setenv("NOTIFIER_MODERATION_CLASSIFIER", "0")
        assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err, err


def test_a_redis_url_redis_py_cannot_read_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOTIFIER_REDIS_URL", "redis://127.0.0.1:notaport/0")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert "NOTIFIER_REDIS_URL is not a valid Redis URL" in err and "Traceback" not in err, err
    # a setting that cannot be read is refused before the log is set up: in its format all the same
    monkeypatch.setenv("NOTIFIER_LOG_FORMAT", "json")
    monkeypatch.setenv("NOTIFIER_INGEST_PARTITIONS", "x")
    assert main(["worker"]) == 2
    line = orjson.loads(capsys.readouterr().err)
    assert "NOTIFIER_INGEST_PARTITIONS" in line["message"] and "\n" not in line["message"], line


@pytest.mark.parametrize("command", [["dlq", "list"], ["explain", "e1"], ["replay"]])
def test_an_operator_command_without_redis_says_so_in_one_line_and_exits_3(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a traceback and exit 1, which says "no such reference": a script can tell an outage."""
    monkeypatch.setenv("NOTIFIER_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # nobody there
    monkeypatch.setenv("NOTIFIER_REDIS_CONNECT_TIMEOUT_S", "1")
    monkeypatch.setenv("NOTIFIER_MODERATION_CLASSIFIER", "0")
    assert main(command) == 3
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("redis unavailable (") and "Traceback" not in err, err
