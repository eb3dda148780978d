"""Moderation tests: a private redis-server on a free port (pytest.fail when CI is set and it is
missing), Settings built by `Settings.from_env`, and the shipped classifier loaded once."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Final, Protocol

import orjson
import pytest
import redis as sync_redis
from redis.asyncio import Redis

from notifier.moderation.classifier import ProfanityCheck
from notifier.runtime.settings import Settings

JWT_SECRET: Final = "moderation-test-secret-0123456789abcdef-0123"
SERVICE_KEY: Final = "posts-key-0123456789abcdef"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "moderation: the moderation feature (rules, queue, recall, console)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.moderation)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not on PATH; the moderation tests need it")
        pytest.skip("redis-server is not on PATH")
    directory = tmp_path_factory.mktemp("moderation-redis")
    port = _free_port()
    cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
           "--dir", str(directory), "--logfile", "redis.log"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = sync_redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {directory / 'redis.log'}")
            with contextlib.suppress(sync_redis.ConnectionError, sync_redis.TimeoutError):
                if client.ping():
                    break
            time.sleep(0.01)  # an external process: polling is the only readiness signal
        yield url
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=False)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


def env(redis_url: str) -> dict[str, str]:
    services = {"posts": {"key": SERVICE_KEY, "events": ["*"]}}
    return {
        "NOTIFIER_REDIS_URL": redis_url,
        "NOTIFIER_REDIS_SOCKET_TIMEOUT_S": "5",
        "NOTIFIER_AUTH_JWT_SECRET": JWT_SECRET,
        "NOTIFIER_INGEST_SERVICES": orjson.dumps(services).decode(),
        "NOTIFIER_INGEST_PARTITIONS": "2",
        "NOTIFIER_FANOUT_BLOCK_MS": "100",
        "NOTIFIER_FANOUT_CONSUMER": "moderation-test",
        "NOTIFIER_HTTP_HOST": "127.0.0.1",
        "NOTIFIER_HTTP_API_PORT": "0",
        "NOTIFIER_HTTP_GRACE_S": "5",
        "NOTIFIER_JOBS_POLL_MS": "20",
        "NOTIFIER_JOBS_SWEEP_S": "1",
        "NOTIFIER_MODERATION_BLOCKED_DOMAINS": "spam.example",
        "NOTIFIER_MODERATION_VELOCITY_PER_MIN": "5",
        "NOTIFIER_MODERATION_DUPLICATE_TARGETS": "3",
    }


class SettingsFactory(Protocol):
    def __call__(self, overrides: Mapping[str, str] = ..., /) -> Settings: ...


@pytest.fixture
def settings_factory(redis_url: str) -> SettingsFactory:
    def make(overrides: Mapping[str, str] = {}, /) -> Settings:
        return Settings.from_env({**env(redis_url), **overrides})

    return make


@pytest.fixture
def settings(settings_factory: SettingsFactory) -> Settings:
    return settings_factory()


@pytest.fixture(scope="session")
def model() -> ProfanityCheck:
    return ProfanityCheck()
