"""A local stack of our own: a private redis-server on a free port (no persistence) and each
product role as a subprocess (`python -m notifier api|worker|gateway`), or the Socket.IO
baseline's roles; waited for until ready, torn down at the end (SIGTERM, then kill)."""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import orjson
import redis as sync_redis

from notifier.runtime.settings import AuthSettings
from schemas import keys

START_TIMEOUT_S: Final = 30.0
STOP_GRACE_S: Final = 5.0
WANT_NOFILE: Final = 65_536


@dataclass(frozen=True, slots=True)
class Target:
    """Where the traffic goes and how to authenticate; `redis_url` enables lag/memory sampling."""

    kind: str  # "notifier" or "socketio"
    api_urls: tuple[str, ...]
    gateway_urls: tuple[str, ...]
    service_key: str = field(repr=False)
    auth: AuthSettings
    redis_url: str | None
    partitions: int
    pids: dict[str, tuple[int, ...]] = field(default_factory=dict)  # role → processes we started


def raise_nofile() -> int:
    """Lift the soft open-files limit toward the hard one (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = WANT_NOFILE if hard == resource.RLIM_INFINITY else min(hard, WANT_NOFILE)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Started subprocesses, stopped in reverse order."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, role: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
        log = (self.logs / f"{role}-{len(self.started)}.log").open("wb")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.started.append((role, proc, log))
        return proc.pid

    def check_alive(self) -> None:
        for role, proc, log in self.started:
            if proc.poll() is not None:
                raise RuntimeError(f"{role} exited with {proc.returncode}; see {log.name}")

    def pids(self) -> dict[str, tuple[int, ...]]:
        out: dict[str, list[int]] = {}
        for role, proc, _ in self.started:
            out.setdefault(role, []).append(proc.pid)
        return {role: tuple(pids) for role, pids in out.items()}

    def stop(self) -> None:
        for _, proc, _ in reversed(self.started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for _, proc, log in reversed(self.started):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def _wait(what: str, ready: Iterator[bool], procs: Processes) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    for ok in ready:
        if ok:
            return
        procs.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {START_TIMEOUT_S}s; logs in {procs.logs}")
        time.sleep(0.05)  # external processes: polling is the only readiness signal


def _listening(port: int) -> Iterator[bool]:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                yield True
        except OSError:
            yield False


def _consumers_registered(client: sync_redis.Redis, partitions: int, names: set[str]) -> Iterator[bool]:
    while True:
        seen: set[str] = set()
        try:
            for p in range(partitions):
                rows = client.xinfo_consumers(keys.events(p), keys.FANOUT_GROUP)
                seen |= {r["name"].decode() if isinstance(r["name"], bytes) else r["name"] for r in rows}
                if not names <= seen:
                    break
            else:
                yield True
                continue
        except sync_redis.ResponseError:  # stream or group not created yet
            pass
        yield False


def _redis(procs: Processes, workdir: Path) -> str:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not on PATH (apt-get install redis-server)")
    port = free_port()
    cmd = [
        exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(workdir), "--maxmemory-policy", "noeviction", "--maxclients", "10000",
    ]  # fmt: skip
    procs.start("redis", cmd)
    _wait("redis-server", _listening(port), procs)
    return f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def local_stack(
    kind: str, *, apis: int, workers: int, gateways: int, partitions: int, extra_env: dict[str, str]
) -> Iterator[Target]:
    """Start the stack, yield its Target, tear it all down (also on error)."""
    raise_nofile()
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        workdir = Path(tmp)
        procs = Processes(workdir)
        try:
            redis_url = _redis(procs, workdir)
            auth = AuthSettings(jwt_secret=secrets.token_urlsafe(48))
            service_key = secrets.token_urlsafe(24)
            if kind == "notifier":
                target = _notifier(
                    procs, redis_url, auth, service_key, apis, workers, gateways, partitions, extra_env
                )
            else:
                target = _baseline(procs, redis_url, auth, service_key, apis, gateways)
            yield target
        except BaseException:
            _keep_logs(workdir)
            raise
        finally:
            procs.stop()


def _keep_logs(workdir: Path) -> None:
    dest = Path(tempfile.mkdtemp(prefix="loadtest-logs-"))
    for log in workdir.glob("*.log"):
        shutil.copy(log, dest / log.name)
    print(f"loadtest: stack logs kept in {dest}", file=sys.stderr)


def _notifier(
    procs: Processes,
    redis_url: str,
    auth: AuthSettings,
    service_key: str,
    apis: int,
    workers: int,
    gateways: int,
    partitions: int,
    extra_env: dict[str, str],
) -> Target:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    base |= {
        "NOTIFIER_REDIS_URL": redis_url,
        "NOTIFIER_AUTH_JWT_SECRET": auth.jwt_secret,
        "NOTIFIER_INGEST_SERVICES": orjson.dumps(
            {"loadtest": {"key": service_key, "events": ["*"]}}
        ).decode(),
        "NOTIFIER_INGEST_PARTITIONS": str(partitions),
        "NOTIFIER_HTTP_HOST": "127.0.0.1",
        "NOTIFIER_HTTP_GRACE_S": "3",
        "NOTIFIER_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    api_ports = [free_port() for _ in range(apis)]
    gateway_ports = [free_port() for _ in range(gateways)]
    consumers = {f"loadtest-worker-{i}" for i in range(workers)}
    for port in api_ports:
        procs.start(
            "api", [sys.executable, "-m", "notifier", "api"], base | {"NOTIFIER_HTTP_API_PORT": str(port)}
        )
    for name in sorted(consumers):
        procs.start(
            "worker", [sys.executable, "-m", "notifier", "worker"], base | {"NOTIFIER_FANOUT_CONSUMER": name}
        )
    for port in gateway_ports:
        env = base | {"NOTIFIER_HTTP_GATEWAY_PORT": str(port)}
        procs.start("gateway", [sys.executable, "-m", "notifier", "gateway"], env)
    for port in api_ports + gateway_ports:
        _wait(f"port {port}", _listening(port), procs)
    client = sync_redis.Redis.from_url(redis_url)
    try:
        _wait("fan-out workers", _consumers_registered(client, partitions, consumers), procs)
    finally:
        client.close()
    return Target(
        "notifier",
        tuple(f"http://127.0.0.1:{p}" for p in api_ports),
        tuple(f"ws://127.0.0.1:{p}" for p in gateway_ports),
        service_key,
        auth,
        redis_url,
        partitions,
        procs.pids(),
    )


def _baseline(
    procs: Processes, redis_url: str, auth: AuthSettings, service_key: str, apis: int, gateways: int
) -> Target:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
    env |= {
        "LOADTEST_REDIS_URL": redis_url,
        "LOADTEST_JWT_SECRET": auth.jwt_secret,
        "LOADTEST_KEY": service_key,
    }
    api_ports = [free_port() for _ in range(apis)]
    gateway_ports = [free_port() for _ in range(gateways)]
    module = [sys.executable, "-m", "loadtest.baseline_socketio"]
    for port in api_ports:
        procs.start("api", [*module, "api", "--port", str(port)], env)
    for port in gateway_ports:
        procs.start("gateway", [*module, "gateway", "--port", str(port)], env)
    for port in api_ports + gateway_ports:
        _wait(f"port {port}", _listening(port), procs)
    return Target(
        "socketio",
        tuple(f"http://127.0.0.1:{p}" for p in api_ports),
        tuple(f"ws://127.0.0.1:{p}" for p in gateway_ports),
        service_key,
        auth,
        redis_url,
        0,
        procs.pids(),
    )
