"""Opening Redis: a cluster from its seeds (NOTIFIER_REDIS_CLUSTER), a configured URL, else the
default address, else a private redis-server, else an in-process fake (nothing persists; a loud
warning says so)."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feeds.cluster import Cluster
from schemas.errors import ConfigError

from .settings import RedisSettings

log = logging.getLogger(__name__)

DEFAULT_URL = "redis://127.0.0.1:6379/0"
ADDRESS_FILE = "address"  # in the data folder while a private redis-server runs there


@dataclass(frozen=True, slots=True)
class RedisHandle:
    client: Redis
    blocking: bool  # False for the in-process fake, whose XREADGROUP ignores BLOCK
    description: str


def _client(url: str, settings: RedisSettings) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.connect_timeout_s,
        health_check_interval=30,
    )


async def _answers(url: str, settings: RedisSettings) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=settings.connect_timeout_s)
    try:
        return bool(await client.ping())
    except (RedisConnectionError, RedisTimeoutError, OSError):
        return False
    finally:
        await client.aclose()


def _cluster(settings: RedisSettings, jobs_url: str) -> Cluster:
    """Seeds `redis://[user:password@]host:port` (or `host:port`), comma-separated."""
    seeds: list[tuple[str, int]] = []
    username = password = None
    for seed in settings.url.split(","):
        parsed = urlsplit(seed.strip() if "//" in seed else "redis://" + seed.strip())
        seeds.append((parsed.hostname or "127.0.0.1", parsed.port or 6379))
        username, password = parsed.username or username, parsed.password or password
    return Cluster(
        seeds,
        retry_budget_s=settings.socket_timeout_s,
        jobs_url=jobs_url,
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.connect_timeout_s,
        username=username,
        password=password,
    )


@contextlib.asynccontextmanager
async def open_redis(
    settings: RedisSettings, *, jobs_url: str = "", allow_fake: bool = True
) -> AsyncIterator[RedisHandle]:
    """The configured Redis (`jobs_url`: on a cluster, the plain Redis of arq's job queue);
    unconfigured: one answering at 127.0.0.1:6379, else the private redis-server a running `up`
    started on the data folder, else a new private one there, else (when `allow_fake`) the
    in-process fake."""
    url = settings.url
    if settings.cluster:
        cluster = _cluster(settings, jobs_url)
        try:
            yield RedisHandle(cluster, True, f"Redis Cluster (seeds: {len(url.split(','))})")
        finally:
            await cluster.shutdown()
        return
    folder = Path(settings.data_dir) / "redis"
    if url == "" and await _answers(DEFAULT_URL, settings):
        url = DEFAULT_URL
    address = folder / ADDRESS_FILE
    if url in {"", "embedded"} and address.is_file():
        running = address.read_text(encoding="utf-8").strip()
        if await _answers(running, settings):
            client = _client(running, settings)
            try:
                yield RedisHandle(
                    client, True, f"the running private redis-server at {running} (data in {folder})"
                )
            finally:
                await client.aclose()
            return
    if url in {"", "embedded"} and shutil.which("redis-server"):
        with _private_server(folder) as private_url:
            client = _client(private_url, settings)
            try:
                yield RedisHandle(client, True, f"private redis-server at {private_url} (data in {folder})")
            finally:
                await client.aclose()
        return
    if url == "embedded":  # forced: never the fake instead
        raise ConfigError(
            f"NOTIFIER_REDIS_URL=embedded needs redis-server on PATH (the private server on {folder})"
        )
    if url in {"", "memory"} and not allow_fake:
        raise ConfigError(
            "no Redis found: nothing answers at 127.0.0.1:6379, no private redis-server runs on "
            f"{folder}, and redis-server is not installed; set NOTIFIER_REDIS_URL"
        )
    if url in {"", "memory"}:
        log.warning(
            "NO REDIS: running on an in-process fake Redis. Nothing persists and nothing is "
            "shared with other processes. Set NOTIFIER_REDIS_URL for real use."
        )
        from fakeredis import FakeServer
        from fakeredis.aioredis import FakeRedis

        fake = FakeRedis(server=FakeServer(version=(7, 0)))
        try:
            yield RedisHandle(fake, False, "in-process fake Redis (nothing persists)")
        finally:
            await fake.aclose()
        return
    client = _client(url, settings)
    try:
        yield RedisHandle(client, True, f"configured Redis {_address(url)}")
    finally:
        await client.aclose()


def _address(url: str) -> str:
    """Where `url` (or a cluster's comma-separated seeds) points, without credentials: for logs."""
    shown = []
    for seed in url.split(","):
        parts = urlsplit(seed.strip() if "://" in seed else f"redis://{seed.strip()}")
        shown.append(f"{parts.scheme}://{parts.hostname or ''}:{parts.port or 6379}{parts.path}")
    return ",".join(shown)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _private_server(data_dir: Path) -> Iterator[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    cmd = [
        "redis-server",
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir.resolve()),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--maxmemory-policy", "noeviction",
        "--logfile", "redis.log",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc)
        log.warning("started a private redis-server on port %s, data in %s", port, data_dir)
        url = f"redis://127.0.0.1:{port}/0"
        (data_dir / ADDRESS_FILE).write_text(url + "\n", encoding="utf-8")  # for operator commands
        yield url
    finally:
        (data_dir / ADDRESS_FILE).unlink(missing_ok=True)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError("redis-server did not start listening")
