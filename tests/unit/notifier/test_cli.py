"""The CLI's own checks: a version, tokens only for known roles, each role's help, and bad input
as one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket

import pytest

from loadtest.__main__ import main as loadtest_main
from loadtest.scenarios import FEED_MODES, PRESETS
from notifier import __version__
from notifier.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"notifier {__version__}\n"


def test_token_refuses_an_unknown_role(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["token", "amy", "--role", "moderater"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'moderater'" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["token", "bad user"], ["token", ""], ["token", "amy", "--ttl-s", "-5"]])
def test_token_refuses_what_no_api_would_take(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "token needs a user id" in capsys.readouterr().err


def test_an_empty_service_key_setting_is_a_missing_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOTIFIER_INGEST_SERVICES", "")
    monkeypatch.setenv("NOTIFIER_AUTH_JWT_SECRET", "s" * 32)
    assert main(["api"]) == 2
    assert "api needs NOTIFIER_INGEST_SERVICES" in capsys.readouterr().err


def test_a_mistyped_moderation_rule_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOTIFIER_MODERATION_THRESHOLDS", '{"clasifier": {"hold": 0.97}}')
    assert main(["token", "amy"]) == 2
    assert "no rule 'clasifier' (did you mean classifier?)" in capsys.readouterr().err


def test_a_mistyped_setting_is_named_with_the_closest_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOTIFIER_GATEWAY_SEND_QUEUE_FRAME", "5")
    assert main(["token", "amy"]) == 2
    err = capsys.readouterr().err
    assert (
        "NOTIFIER_GATEWAY_SEND_QUEUE_FRAME: not a setting (did you mean NOTIFIER_GATEWAY_SEND_QUEUE_FRAMES?)"
        in err
    )
    assert "Traceback" not in err


Env = pytest.MonkeyPatch
Out = pytest.CaptureFixture[str]


def test_a_bad_log_level_is_refused_without_a_traceback(monkeypatch: Env, capsys: Out) -> None:
    monkeypatch.setenv("NOTIFIER_LOG_LEVEL", "loud")
    assert main(["token", "amy"]) == 2
    err = capsys.readouterr().err
    assert "NOTIFIER_LOG_LEVEL" in err and "Traceback" not in err


def test_a_port_in_use_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("NOTIFIER_REDIS_URL", "memory")
        monkeypatch.setenv("NOTIFIER_HTTP_API_PORT", str(port))
        monkeypatch.setenv("NOTIFIER_MODERATION_CLASSIFIER", "0")
        assert main(["up"]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("role", "names"),
    [
        (
            "gateway",
            [
                "NOTIFIER_HTTP_GATEWAY_PORT (WebSocket /v1/ws), default 8001",
                "NOTIFIER_GATEWAY_SEND_QUEUE_FRAMES = 256",
            ],
        ),
        ("api", ["NOTIFIER_HTTP_API_PORT (HTTP), default 8000", "NOTIFIER_INGEST_MAX_BODY_BYTES"]),
        (
            "worker",
            ["listens on: NOTIFIER_METRICS_PORT (/metrics and probes), default 9100", "FANOUT_BATCH_SIZE"],
        ),
    ],
)
def test_each_role_lists_its_ports_and_settings(
    role: str, names: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([role, "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in names), out
    # a role with a port of its own serves /metrics there: the metrics port is not its setting
    assert ("NOTIFIER_METRICS_PORT =" in out) == (role == "worker"), out


def test_loadtest_lists_its_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert loadtest_main(["--list"]) == 0
    names = [" ".join(line.split()[:2]) for line in capsys.readouterr().out.splitlines()]
    expected = [n for p in PRESETS for n in (p, *([f"{p} --feed"] if p in FEED_MODES else []))]
    assert [n if n.endswith(" --feed") else n.split()[0] for n in names] == expected
