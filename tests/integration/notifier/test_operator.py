"""Operator commands on a real redis-server: they find Redis the way `up` does (the private
redis-server a running `up` started on the data folder), and refuse bad references in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.cli import main
from notifier.runtime.redis import ADDRESS_FILE, open_redis
from notifier.runtime.settings import RedisSettings
from schemas.errors import ConfigError

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_the_running_private_server_is_found(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / ADDRESS_FILE).write_text(redis_url + "\n")  # as `up` leaves it
    settings = RedisSettings(url="embedded", data_dir=str(tmp_path))
    async with open_redis(settings, allow_fake=False) as handle:
        assert handle.description.startswith(f"the running private redis-server at {redis_url}")
        assert await handle.client.ping()


async def test_embedded_without_redis_server_is_refused_not_faked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server to start
    settings = RedisSettings(url="embedded", data_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="embedded needs redis-server"):
        async with open_redis(settings):
            pass


@pytest.mark.parametrize(
    ("argv", "code", "out", "err"),
    [
        (["dlq", "show", "0/abc"], 2, "", "not a dead-letter reference (PARTITION/ID): '0/abc'\n"),
        (["dlq", "redrive", "nope"], 2, "", "not a dead-letter reference (PARTITION/ID): 'nope'\n"),
        (["dlq", "show", "0/1-1"], 1, '{"ref":"0/1-1","error":"not_found"}\n', ""),
    ],
)
def test_unknown_dead_letters_are_one_line(
    argv: list[str],
    code: int,
    out: str,
    err: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NOTIFIER_REDIS_URL", redis_url)
    monkeypatch.setenv("NOTIFIER_LOG_LEVEL", "WARNING")
    assert main(argv) == code
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (out, err)
