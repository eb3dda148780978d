"""Real processes to break: a redis-server that can be killed, frozen and restarted on its own
directory and port, the product's roles as `python -m notifier ROLE` subprocesses, and `Lab`,
one scenario's world (server, roles, ledger, clients). Every wait is `wait_until`."""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Final

import anyio
import httpx
import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from notifier.runtime import tokens
from notifier.runtime.settings import AuthSettings

from .ledger import Attempt, CommentFactory, Json, Ledger, drive_load, post_event

JWT_SECRET: Final = "faults-jwt-secret-0123456789abcdef-0123456789"
SERVICE_KEY: Final = "faults-service-key-0123456789abcdef"
PARTITIONS: Final = 4
PROJECT: Final = Path(__file__).resolve().parents[2]
START_TIMEOUT_S: Final = 60.0  # two cores shared with other suites: imports alone can take seconds
STOP_TIMEOUT_S: Final = 15.0
TRACEBACK: Final = "Traceback (most recent call last)"

Predicate = Callable[[], bool | Awaitable[bool]]


async def wait_until(
    predicate: Predicate, timeout_s: float, *, what: str = "condition", interval_s: float = 0.05
) -> float:
    """Poll `predicate` (sync or async) until it holds; the seconds it took. A Redis connection
    error or timeout inside it counts as "not yet"."""
    start = time.monotonic()
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return time.monotonic() - start
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            last_error = exc
        if time.monotonic() - start >= timeout_s:
            suffix = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{what} did not hold within {timeout_s}s{suffix}")
        await anyio.sleep(interval_s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def port_open(port: int) -> bool:
    try:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return False
    await stream.aclose()
    return True


class RedisProcess:
    """redis-server on a free port with its own `--dir`. `sigkill` then `restart` brings it back on
    the same directory and port (AOF reloaded when `appendonly`); `pause`/`resume` freeze it."""

    def __init__(self, directory: Path, *, appendonly: bool = True, appendfsync: str = "everysec") -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not on PATH")
        self._exe = exe
        self.directory = directory
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.port = 0
        self.paused = False
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        cmd = [
            self._exe,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--logfile", "redis.log",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.paused = False

    async def _answering(self, timeout_s: float) -> bool:
        """True once PING succeeds (AOF loaded); False if the server exited."""
        client = Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=1.0)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if not self.running:
                    return False
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    if await client.ping():
                        return True
                await anyio.sleep(0.02)
        finally:
            await client.aclose()
        raise TimeoutError(f"redis-server on {self.port} did not answer within {timeout_s}s")

    async def start(self) -> None:
        for _ in range(3):  # a free port can be taken before the server binds it
            self.port = free_port()
            self._spawn()
            if await self._answering(START_TIMEOUT_S):
                return
        raise RuntimeError(f"redis-server would not start; see {self.directory / 'redis.log'}")

    async def restart(self) -> float:
        """Start again on the same directory and port; the seconds until it answered."""
        assert not self.running, "restart needs a stopped server"
        began = time.monotonic()
        for _ in range(20):  # the port may linger for a moment after a kill
            self._spawn()
            if await self._answering(START_TIMEOUT_S):
                return time.monotonic() - began
            await anyio.sleep(0.1)
        raise RuntimeError(f"redis-server would not restart; see {self.directory / 'redis.log'}")

    def sigkill(self) -> None:
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait()
        self.paused = False

    @property
    def aof(self) -> Path:
        """The AOF file Redis appends to (7.x: the newest `incr` file of its multi-part AOF)."""
        files = sorted(
            (self.directory / "appendonlydir").glob("*.incr.aof"), key=lambda f: int(f.name.split(".")[-3])
        )
        return files[-1]

    def cut_aof(self, size: int) -> int:
        """With the server stopped: cut the AOF back to `size` bytes, as a host crash loses what
        was not yet on disk; returns the bytes cut."""
        assert not self.running, "cut the AOF of a stopped server"
        aof = self.aof
        cut = aof.stat().st_size - size
        os.truncate(aof, size)
        return cut

    def pause(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)
        self.paused = False

    async def kill_pubsub_clients(self) -> int:
        """`CLIENT KILL TYPE pubsub`: the number of connections closed."""
        client = Redis.from_url(self.url, socket_connect_timeout=1.0, socket_timeout=2.0)
        try:
            return int(await client.client_kill_filter(_type="pubsub"))
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()


class RoleProcess:
    """One `python -m notifier ROLE`; stdout and stderr appended to `log_path`."""

    def __init__(self, name: str, role: str, env: Mapping[str, str], log_path: Path, port: int = 0) -> None:
        self.name = name
        self.role = role
        self.env = dict(env)
        self.log_path = log_path
        self.port = port
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    def spawn(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "notifier", self.role],
                env=self.env,
                cwd=PROJECT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def log_text(self, *, this_run: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            if this_run:
                log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    async def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> float:
        def ready() -> bool:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited with {self.returncode}:\n{self.log_text()[-3000:]}")
            return "ready services=" in self.log_text(this_run=True)

        waited = await wait_until(ready, timeout_s, what=f"{self.name} ready")
        if self.port:
            await wait_until(lambda: port_open(self.port), timeout_s, what=f"{self.name} port")
        return waited

    async def start(self, timeout_s: float = START_TIMEOUT_S) -> float:
        self.spawn()
        return await self.wait_ready(timeout_s)

    def send(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, sig)

    async def wait_exit(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        await wait_until(lambda: not self.alive, timeout_s, what=f"{self.name} exit")
        assert self._proc is not None
        return self._proc.wait()

    def kill(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGCONT)  # a frozen process dies on SIGKILL too
            self._proc.kill()
        self._proc.wait()


def service_env(redis_url: str, overrides: Mapping[str, str]) -> dict[str, str]:
    """The environment of every role: the parent's, minus its NOTIFIER_*, plus the lab's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    services = {"faults": {"key": SERVICE_KEY, "events": ["*"]}}
    env.update(
        {
            "NOTIFIER_REDIS_URL": redis_url,
            "NOTIFIER_REDIS_SOCKET_TIMEOUT_S": "5",
            "NOTIFIER_REDIS_CONNECT_TIMEOUT_S": "1",
            "NOTIFIER_AUTH_JWT_SECRET": JWT_SECRET,
            "NOTIFIER_INGEST_SERVICES": orjson.dumps(services).decode(),
            "NOTIFIER_INGEST_PARTITIONS": str(PARTITIONS),
            "NOTIFIER_INGEST_MAX_LATENESS_S": "0",  # some scenarios post events with fixed dates
            "NOTIFIER_INGEST_TIMEOUT_S": "1.0",
            "NOTIFIER_INGEST_PRESSURE_INTERVAL_MS": "100",
            "NOTIFIER_FANOUT_MIN_IDLE_MS": "1000",
            "NOTIFIER_FANOUT_CLAIM_INTERVAL_MS": "200",
            "NOTIFIER_FANOUT_BLOCK_MS": "200",
            "NOTIFIER_FANOUT_MAX_DELIVERIES": "3",
            "NOTIFIER_FANOUT_BATCH_SIZE": "64",
            "NOTIFIER_FEEDS_MAX_GROUPS": "100000",  # every comment stays visible to the checker
            "NOTIFIER_FEEDS_MAX_CHANGES": "100000",  # ... and every change-log entry
            "NOTIFIER_MODERATION_CLASSIFIER": "0",  # the model takes a second per start; rules stay on
            "NOTIFIER_GATEWAY_PING_INTERVAL_S": "5",
            "NOTIFIER_HTTP_HOST": "127.0.0.1",
            "NOTIFIER_HTTP_GRACE_S": "5",
            "NOTIFIER_METRICS_PORT": "0",  # worker and jobs: any free port (several run at once)
            "NOTIFIER_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


class Lab:
    """One scenario: a redis-server, the roles started on it, an observer Redis client, an HTTP
    client for ingest and REST, and the ledger. Leaving it kills every process it started."""

    def __init__(
        self,
        workdir: Path,
        *,
        appendonly: bool = True,
        appendfsync: str = "everysec",
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.server = RedisProcess(workdir / "redis", appendonly=appendonly, appendfsync=appendfsync)
        self.overrides = dict(overrides or {})
        self.api_port = free_port()
        self.gateway_port = free_port()
        self.roles: dict[str, RoleProcess] = {}
        self.ledger = Ledger()
        self.auth = AuthSettings(jwt_secret=JWT_SECRET)
        self._redis: Redis | None = None
        self._http: httpx.AsyncClient | None = None

    @property
    def redis(self) -> Redis:
        assert self._redis is not None
        return self._redis

    @property
    def http(self) -> httpx.AsyncClient:
        assert self._http is not None
        return self._http

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/v1/ws"

    @property
    def ingest_timeout_s(self) -> float:
        return float(self.env()["NOTIFIER_INGEST_TIMEOUT_S"])

    def token(self, user: str) -> str:
        return tokens.issue(self.auth, user, ttl_s=3600)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        ports = {
            "NOTIFIER_HTTP_API_PORT": str(self.api_port),
            "NOTIFIER_HTTP_GATEWAY_PORT": str(self.gateway_port),
        }
        return service_env(self.server.url, {**ports, **self.overrides, **(extra or {})})

    async def __aenter__(self) -> Lab:
        self.workdir.mkdir(parents=True, exist_ok=True)
        await self.server.start()
        self._redis = Redis.from_url(self.server.url, socket_timeout=3.0, socket_connect_timeout=1.0)
        self._http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.api_port}",
            timeout=httpx.Timeout(15.0),
            limits=httpx.Limits(max_connections=32),
            trust_env=False,
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for role in self.roles.values():
            role.kill()
        if self._http is not None:
            await self._http.aclose()
        if self._redis is not None:
            with anyio.CancelScope(shield=True):
                await self._redis.aclose()
        self.server.stop()
        if exc is not None:
            for role in self.roles.values():
                print(f"----- {role.name} (last lines) -----\n{role.log_text()[-4000:]}")
            return
        # at quiescence no role may have logged an unhandled exception (RELIABILITY 4.1)
        crashed = {r.name: r.log_text() for r in self.roles.values() if TRACEBACK in r.log_text()}
        for name, text in crashed.items():
            trace = text[text.index(TRACEBACK) - 200 :]
            # the start says where, the end says what: a long chained traceback needs both
            shown = trace if len(trace) <= 8000 else f"{trace[:4000]}\n[...]\n{trace[-4000:]}"
            print(f"----- {name} -----\n{shown}")
        assert not crashed, f"unhandled exceptions logged by {sorted(crashed)}"

    async def load(
        self,
        factory: CommentFactory,
        *,
        count: int,
        duration_s: float,
        rate_per_s: float = 150.0,
        stop: anyio.Event | None = None,
        retries: int = 0,
    ) -> int:
        """Paced comment events into ingest, every answer in the ledger (see `drive_load`)."""
        return await drive_load(
            self.http,
            self.ledger,
            factory,
            SERVICE_KEY,
            count=count,
            duration_s=duration_s,
            rate_per_s=rate_per_s,
            stop=stop,
            retries=retries,
        )

    async def post(self, event: Json) -> Attempt:
        return await post_event(self.http, self.ledger, event, SERVICE_KEY)

    def role(self, name: str, role: str, extra: Mapping[str, str] | None = None) -> RoleProcess:
        port = {"api": self.api_port, "gateway": self.gateway_port}.get(role, 0)
        process = RoleProcess(name, role, self.env(extra), self.workdir / f"{name}.log", port)
        self.roles[name] = process
        return process

    def worker(self, name: str, extra: Mapping[str, str] | None = None) -> RoleProcess:
        return self.role(name, "worker", {"NOTIFIER_FANOUT_CONSUMER": name, **(extra or {})})

    async def start(self, *processes: RoleProcess) -> None:
        """Spawn all, then wait for each: they start in parallel."""
        for process in processes:
            process.spawn()
        for process in processes:
            await process.wait_ready()
