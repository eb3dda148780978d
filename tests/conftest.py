"""Suite-wide fixtures: a private redis-server on a free port, a flushed client per test, and
Settings built the way the product builds them (`Settings.from_env`)."""

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

from feeds.cluster import Cluster
from loadtest.cluster import ClusterLab, private_cluster
from notifier.runtime.settings import Settings

JWT_SECRET: Final = "test-secret-0123456789abcdef-0123456789abcdef"
SERVICE_KEYS: Final = {
    "posts": "posts-key-0123456789abcdef",  # may send every event type
    "likes": "likes-key-0123456789abcdef",  # may send only likes
}
ALLOWED_ORIGIN: Final = "https://app.example"
_START_ATTEMPTS: Final = 3
_START_DEADLINE_S: Final = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_answering(proc: subprocess.Popen[bytes], url: str) -> bool:
    """True once the server answers PING; False if it exited (e.g. the port was taken meanwhile)."""
    client = sync_redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    deadline = time.monotonic() + _START_DEADLINE_S
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            with contextlib.suppress(sync_redis.ConnectionError, sync_redis.TimeoutError):
                if client.ping():
                    return True
            time.sleep(0.01)  # an external process: polling is the only readiness signal
    finally:
        client.close()
    raise RuntimeError(f"redis-server did not answer within {_START_DEADLINE_S}s")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of our own on a free port (never the machine's 6379), stopped at the end."""
    exe = shutil.which("redis-server")
    if exe is None:
        message = "redis-server is not on PATH; the integration and e2e tiers need it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    directory: Path = tmp_path_factory.mktemp("redis")
    for _ in range(_START_ATTEMPTS):
        port = free_port()
        cmd = [
            exe,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
            "--logfile", "redis.log",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        try:
            if _wait_answering(proc, url):
                yield url
                return
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    raise RuntimeError(f"redis-server would not start; see {directory / 'redis.log'}")


def require_executable(exe: str, tier: str) -> None:
    """Skip without `exe` on PATH; under CI, fail: a missing service is a defect there."""
    if shutil.which(exe) is None:
        message = f"{exe} is not on PATH; {tier} needs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterLab]:
    """A Redis Cluster of our own for the whole session: 3 masters, one replica each, on free
    ports, short node timeout. Tests flush it first (`cluster` fixture) and must leave it whole
    (a test that kills a node restarts it and waits for `cluster_state:ok`)."""
    require_executable("redis-server", "the cluster tests")
    require_executable("redis-cli", "the cluster tests")
    with private_cluster(tmp_path_factory.mktemp("cluster")) as lab:
        yield lab


@pytest.fixture
async def cluster(redis_cluster: ClusterLab, redis_url: str) -> AsyncIterator[Cluster]:
    """A client of the session's cluster (bytes replies, as the product uses), every master
    flushed; its job queue is on the suite's single server (flushed too)."""
    with sync_redis.Redis.from_url(redis_url) as jobs:
        jobs.flushall()
    client = cluster_client(redis_cluster, redis_url)
    try:
        yield client
    finally:
        await client.shutdown()


def cluster_client(lab: ClusterLab, jobs_url: str) -> Cluster:
    """A client of the lab's cluster, every master flushed first."""
    lab.wait_ok()
    lab.flush()
    seeds = [("127.0.0.1", n.port) for n in lab.live()]
    return Cluster(seeds, retry_budget_s=10, jobs_url=jobs_url, socket_timeout=5, socket_connect_timeout=1)


def cluster_env(lab: ClusterLab, jobs_url: str) -> dict[str, str]:
    """`base_env` for the cluster: seeds, and the suite's single server as the jobs Redis."""
    return {**base_env(lab.url), "NOTIFIER_REDIS_CLUSTER": "1", "NOTIFIER_JOBS_REDIS_URL": jobs_url}


@pytest.fixture
def cluster_settings(redis_cluster: ClusterLab, redis_url: str) -> SettingsFactory:
    """Settings for the session's cluster; `overrides` are NOTIFIER_* variables."""

    def make(overrides: Mapping[str, str] | None = None, /) -> Settings:
        return Settings.from_env({**cluster_env(redis_cluster, redis_url), **(overrides or {})})

    return make


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the suite's server (bytes replies, as the product uses), flushed first."""
    client = Redis.from_url(redis_url, decode_responses=False)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


def base_env(redis_url: str) -> dict[str, str]:
    """The environment every test's Settings start from (also given to `notifier` subprocesses)."""
    services = {
        "posts": {"key": SERVICE_KEYS["posts"], "events": ["*"]},
        "likes": {"key": SERVICE_KEYS["likes"], "events": ["like"]},
    }
    return {
        "NOTIFIER_REDIS_URL": redis_url,
        "NOTIFIER_REDIS_SOCKET_TIMEOUT_S": "5",
        "NOTIFIER_AUTH_JWT_SECRET": JWT_SECRET,
        "NOTIFIER_INGEST_SERVICES": orjson.dumps(services).decode(),
        "NOTIFIER_INGEST_PARTITIONS": "4",
        "NOTIFIER_INGEST_MAX_LATENESS_S": "0",  # the suite's events have fixed dates, long past
        "NOTIFIER_FANOUT_MIN_IDLE_MS": "50",
        "NOTIFIER_FANOUT_BLOCK_MS": "100",
        "NOTIFIER_FANOUT_MAX_DELIVERIES": "3",
        "NOTIFIER_FANOUT_CONSUMER": "test-worker",
        "NOTIFIER_GATEWAY_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
        "NOTIFIER_HTTP_HOST": "127.0.0.1",
        "NOTIFIER_HTTP_API_PORT": "0",
        "NOTIFIER_METRICS_PORT": "0",  # worker and jobs: any free port (several run at once)
        "NOTIFIER_HTTP_GRACE_S": "5",
    }


class SettingsFactory(Protocol):
    def __call__(self, overrides: Mapping[str, str] | None = None, /) -> Settings: ...


@pytest.fixture
def settings_factory(redis_url: str) -> SettingsFactory:
    """Settings for the suite's server; `overrides` are NOTIFIER_* variables."""

    def make(overrides: Mapping[str, str] | None = None, /) -> Settings:
        return Settings.from_env({**base_env(redis_url), **(overrides or {})})

    return make


@pytest.fixture
def settings(settings_factory: SettingsFactory) -> Settings:
    return settings_factory()
