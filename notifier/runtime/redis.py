"""Opening Redis: a cluster from its seeds (NOTIFIER_REDIS_CLUSTER), a configured URL, else the
private redis-server a running `up` started, else the default address, else a new private
redis-server, else an in-process fake (nothing persists; a loud warning says so)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import anyio
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feeds.cluster import Cluster
from schemas.errors import ConfigError

from .settings import RedisSettings

log = logging.getLogger(__name__)

DEFAULT_URL = "redis://127.0.0.1:6379/0"
ADDRESS_FILE = "address"  # in the data folder while a private redis-server runs there
LOAD_WAIT_S = 60.0  # how long a private redis-server's loading of its data is waited for


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
    unconfigured: the private redis-server a running `up` started on the data folder (so that
    operator commands act on what `up` serves, whatever starts answering at 6379 meanwhile),
    else one answering at 127.0.0.1:6379, else a new private one there, else (when
    `allow_fake`) the in-process fake."""
    url = settings.url
    if settings.cluster:
        cluster = _cluster(settings, jobs_url)
        try:
            yield RedisHandle(cluster, True, f"Redis Cluster (seeds: {len(url.split(','))})")
        finally:
            await cluster.shutdown()
        return
    folder = Path(settings.data_dir) / "redis"
    running = await _running_private(folder / ADDRESS_FILE, settings) if url in {"", "embedded"} else None
    if running is not None:
        client = _client(running, settings)
        try:
            yield RedisHandle(
                client, True, f"the running private redis-server at {running} (data in {folder})"
            )
        finally:
            await client.aclose()
        return
    if url == "" and await _answers(DEFAULT_URL, settings):
        url = DEFAULT_URL
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


async def _running_private(address: Path, settings: RedisSettings) -> str | None:
    """The URL of the private redis-server running on the data folder, if one answers there.
    One whose owner (the process that started it, named in the address file) is gone was left
    behind by a killed `up`: it is shut down (its append-only file written out), and the caller
    starts a server of its own on the same data."""
    found = _read_address(address)
    if found is None:
        return None
    url, owner = found
    if not await _answers(url, settings):
        return None
    if not owner.strip().isdigit() or _alive(int(owner)):
        return url  # (an address file of a version that named no owner: adopted as before)
    log.warning("a private redis-server at %s outlived the process that started it: stopping it", url)
    client = Redis.from_url(url, socket_connect_timeout=settings.connect_timeout_s)
    try:
        await client.shutdown()
    except (RedisConnectionError, RedisTimeoutError, OSError):
        pass  # it closes the connection as it goes
    finally:
        await client.aclose()
    for _ in range(200):  # up to 10 s for it to go
        if not await _answers(url, settings):
            break
        await anyio.sleep(0.05)
    _forget(address)
    return None


def _read_address(address: Path) -> tuple[str, str] | None:
    """(URL, owner's pid or '') of the address file, if there is one."""
    try:
        url, _, owner = address.read_text(encoding="utf-8").strip().partition("\n")
    except FileNotFoundError:
        return None
    return url, owner


def _forget(address: Path) -> None:
    address.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, what makes a child get SIGTERM when the process that started it dies, however
    it dies (killed, its terminal closed): a private redis-server is never left behind. Looked up
    before the fork, so that the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return arm


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
    # a session of its own: a Ctrl-C in the terminal reaches `up`, which stops gracefully and
    # then stops this server; not both at once (the roles' last writes would find Redis gone)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent(),
    )
    try:
        _wait_listening(port, proc)
        log.warning("started a private redis-server on port %s, data in %s", port, data_dir)
        url = f"redis://127.0.0.1:{port}/0"
        # for operator commands, and to tell a server whose owner was killed
        (data_dir / ADDRESS_FILE).write_text(f"{url}\n{os.getpid()}\n", encoding="utf-8")
        yield url
    finally:
        (data_dir / ADDRESS_FILE).unlink(missing_ok=True)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the server listens, and has loaded its data (up to LOAD_WAIT_S more): the roles
    then start on a Redis that answers, instead of each logging that it is still loading."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as conn:
            loaded = time.monotonic() + LOAD_WAIT_S
            while time.monotonic() < loaded and proc.poll() is None:
                conn.sendall(b"PING\r\n")
                if not conn.recv(64).startswith(b"-LOADING"):
                    return
                time.sleep(0.05)
            return
        time.sleep(0.02)
    raise RuntimeError("redis-server did not start listening")
