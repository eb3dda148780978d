"""Operator commands on a real redis-server: they find Redis the way `up` does (the private
redis-server a running `up` started on the data folder), and refuse bad references in one line."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import anyio
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from notifier.cli import main
from notifier.runtime.redis import ADDRESS_FILE, open_redis
from notifier.runtime.settings import RedisSettings
from schemas.errors import ConfigError
from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_the_running_private_server_is_found(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / ADDRESS_FILE).write_text(redis_url + "\n")  # as `up` leaves it
    settings = RedisSettings(url="embedded", data_dir=str(tmp_path))
    async with open_redis(settings, allow_fake=False) as handle:
        assert handle.description.startswith(f"the running private redis-server at {redis_url}")
        assert await handle.client.ping()


async def test_the_running_private_server_comes_before_one_at_6379(redis_url: str, tmp_path: Path) -> None:
    """Unconfigured, an operator command acts on what the running `up` serves, even if a Redis
    starts answering at 127.0.0.1:6379 meanwhile (one may or may not answer there: either way)."""
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / ADDRESS_FILE).write_text(f"{redis_url}\n{os.getpid()}\n")
    async with open_redis(RedisSettings(url="", data_dir=str(tmp_path)), allow_fake=False) as handle:
        assert handle.description.startswith(f"the running private redis-server at {redis_url}")


@pytest.mark.skipif(
    shutil.which("redis-server") is None and not os.environ.get("CI"), reason="no redis-server"
)
async def test_a_private_server_whose_owner_was_killed_is_stopped_and_replaced(tmp_path: Path) -> None:
    """A killed `up` leaves its server behind (where the platform cannot tie the server's life to
    its owner's): the next start stops it and starts one of its own on the same data."""
    folder = tmp_path / "redis"
    folder.mkdir()
    port = free_port()
    command = ["redis-server", "--port", str(port), "--save", "", "--dir", str(folder)]
    async with await anyio.open_process(command, stdout=None, stderr=None, start_new_session=True) as orphan:
        try:
            url = f"redis://127.0.0.1:{port}/0"
            client = Redis.from_url(url)
            with anyio.fail_after(10):
                while True:  # listening
                    if await _pings(client):
                        break
                    await anyio.sleep(0.02)
            await client.aclose()
            dead = await anyio.run_process([sys.executable, "-c", "import os; print(os.getpid())"])
            (folder / ADDRESS_FILE).write_text(f"{url}\n{int(dead.stdout)}\n")  # its owner is gone
            settings = RedisSettings(url="embedded", data_dir=str(tmp_path))
            async with open_redis(settings, allow_fake=False) as handle:
                assert handle.description.startswith("private redis-server at")
                assert url not in handle.description
                with anyio.fail_after(10):
                    assert await orphan.wait() == 0  # shut down, not left running
                assert (folder / ADDRESS_FILE).read_text().split() == [
                    handle.description.split()[3],
                    str(os.getpid()),
                ]
            assert not (folder / ADDRESS_FILE).exists()
        finally:
            if orphan.returncode is None:
                orphan.kill()


async def _pings(client: Redis) -> bool:
    try:
        return bool(await client.ping())
    except (RedisConnectionError, OSError):
        return False


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
