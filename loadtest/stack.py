"""A local stack of our own: a private redis-server on a free port (no persistence) and each
product role as a subprocess (`python -m notifier api|worker|gateway`), or the Socket.IO
baseline's roles; waited for until ready, torn down at the end (SIGTERM, then kill).
`local_stack` starts every role at once; `private_stack` hands over the stack so the stage
benchmarks start roles one at a time (a worker after preloading, a stubbed API beside the real one)."""

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

from .cluster import ClusterLab, private_cluster

START_TIMEOUT_S: Final = 30.0
STOP_GRACE_S: Final = 5.0
WANT_NOFILE: Final = 65_536
KINDS: Final = ("notifier", "socketio", "socketio-node")  # the product, and the two baselines
NODE_BASELINE: Final = Path(__file__).parent / "socketio_node"  # package.json, lockfile, server.js


@dataclass(frozen=True, slots=True)
class Target:
    """Where the traffic goes and how to authenticate; `redis_url` enables lag/memory sampling."""

    kind: str  # one of KINDS
    api_urls: tuple[str, ...]
    gateway_urls: tuple[str, ...]
    service_key: str = field(repr=False)
    auth: AuthSettings
    redis_url: str | None
    partitions: int
    pids: dict[str, tuple[int, ...]] = field(default_factory=dict)  # role → processes we started
    redis_cluster: bool = False  # redis_url lists the seed nodes of a Redis Cluster


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


def pinned(cpus: str) -> list[str]:
    """The command prefix that runs a process on `cpus` only (a `taskset -c` list: "1", "0,2-3"),
    nothing for "" (anywhere)."""
    return ["taskset", "-c", cpus] if cpus else []


def _redis(procs: Processes, workdir: Path, role: str = "redis", cpus: str = "") -> str:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not on PATH (apt-get install redis-server)")
    port = free_port()
    cmd = [
        *pinned(cpus), exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(workdir), "--maxmemory-policy", "noeviction", "--maxclients", "10000",
    ]  # fmt: skip
    procs.start(role, cmd)
    _wait("redis-server", _listening(port), procs)
    return f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def local_stack(
    kind: str,
    *,
    apis: int,
    workers: int,
    gateways: int,
    partitions: int,
    extra_env: dict[str, str],
    masters: int = 0,
    cluster: ClusterLab | None = None,
) -> Iterator[Target]:
    """Start the stack, yield its Target, tear it all down (also on error)."""
    with private_stack(
        kind, partitions=partitions, extra_env=extra_env, masters=masters, cluster=cluster
    ) as stack:
        stack.start(apis=apis, workers=workers, gateways=gateways)
        yield stack.target()


@contextlib.contextmanager
def private_stack(
    kind: str,
    *,
    partitions: int,
    extra_env: dict[str, str],
    masters: int = 0,
    cluster: ClusterLab | None = None,
    redis_cpus: str = "",
) -> Iterator[LocalStack]:
    """A private redis-server with no roles yet: the caller starts them when it needs them
    (the stage benchmarks preload Redis first, or start one role at a time), run on `redis_cpus`
    only when given (`pinned`). `masters` > 0: a private Redis Cluster of that many masters (no
    replicas) instead, and the redis-server holds only arq's job queue; `cluster`: that running
    cluster (the test suite's), as is."""
    raise_nofile()
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        workdir = Path(tmp)
        procs = Processes(workdir)
        try:
            if not masters and cluster is None:
                url = _redis(procs, workdir, cpus=redis_cpus)
                yield LocalStack(kind, procs, url, partitions, extra_env)
                return
            if kind != "notifier":
                raise ValueError("only the product runs on a Redis Cluster")
            if redis_cpus:
                raise ValueError("pinning Redis applies to one redis-server, not a cluster")
            jobs_url = _redis(procs, workdir, "jobs-redis")
            with contextlib.ExitStack() as own:
                lab = cluster or own.enter_context(
                    private_cluster(workdir / "cluster", masters=masters, replicas=0)
                )
                env = {"NOTIFIER_REDIS_CLUSTER": "1", "NOTIFIER_JOBS_REDIS_URL": jobs_url}
                stack = LocalStack(kind, procs, lab.url, partitions, {**env, **extra_env})
                stack.cluster = lab
                yield stack
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


def node_baseline() -> list[str]:
    """The command of the Node baseline's server, its npm packages installed first (`npm ci`,
    from the lockfile) when missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError("the Node Socket.IO baseline needs node and npm on PATH")
    if not (NODE_BASELINE / "node_modules").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_BASELINE, check=True
        )
    return [node, str(NODE_BASELINE / "server.js")]


class LocalStack:
    """The roles of one `kind` ("notifier": `python -m notifier ROLE`; "socketio": the
    baseline's `python -m loadtest.baseline_socketio ROLE`; "socketio-node": the Node baseline's
    gateway, loadtest/socketio_node) started on a private redis-server.
    Every `start_*` returns once what it started is ready."""

    def __init__(
        self, kind: str, procs: Processes, redis_url: str, partitions: int, extra_env: dict[str, str]
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown stack kind {kind!r}")
        self.kind = kind
        self.procs = procs
        self.redis_url = redis_url
        self.partitions = partitions if kind == "notifier" else 0
        self.auth = AuthSettings(jwt_secret=secrets.token_urlsafe(48))
        self.service_key = secrets.token_urlsafe(24)
        self.api_urls: list[str] = []
        self.gateway_urls: list[str] = []
        self._workers = 0
        self.cluster: ClusterLab | None = None  # the private Redis Cluster, when on one
        self._env = self._notifier_env(extra_env) if kind == "notifier" else self._baseline_env()

    def _notifier_env(self, extra_env: dict[str, str]) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
        return base | {
            "NOTIFIER_REDIS_URL": self.redis_url,
            "NOTIFIER_AUTH_JWT_SECRET": self.auth.jwt_secret,
            "NOTIFIER_INGEST_SERVICES": orjson.dumps(
                {"loadtest": {"key": self.service_key, "events": ["*"]}}
            ).decode(),
            "NOTIFIER_INGEST_PARTITIONS": str(self.partitions),
            "NOTIFIER_HTTP_HOST": "127.0.0.1",
            "NOTIFIER_HTTP_GRACE_S": "3",
            "NOTIFIER_METRICS_PORT": "0",  # several workers on one host
            "NOTIFIER_LOG_LEVEL": "WARNING",
            **extra_env,
        }

    def _baseline_env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
        return base | {
            "LOADTEST_REDIS_URL": self.redis_url,
            "LOADTEST_JWT_SECRET": self.auth.jwt_secret,
            "LOADTEST_KEY": self.service_key,
        }

    def start(self, *, apis: int = 0, workers: int = 0, gateways: int = 0) -> None:
        """Start them all at once, then wait for each to be ready."""
        ports = [self._spawn_http("api", "api", free_port()) for _ in range(apis)]
        names = [self.spawn_worker() for _ in range(workers)]
        ports += [self._spawn_http("gateway", "gateway", free_port()) for _ in range(gateways)]
        self._ready(ports, names)
        self.api_urls += [f"http://127.0.0.1:{p}" for p in ports[:apis]]
        self.gateway_urls += [f"ws://127.0.0.1:{p}" for p in ports[apis:]]

    def start_api(self, *, module: str = "notifier", role: str = "api") -> str:
        """One more API process, run as `python -m MODULE api` (`loadtest.stub_api` for the
        stubbed one); returns its URL. `role` names it in the logs and in `Target.pids`."""
        port = self._spawn_http(role, "api", free_port(), module)
        self._ready([port], [])
        url = f"http://127.0.0.1:{port}"
        self.api_urls.append(url)
        return url

    def _spawn_http(self, role: str, command: str, port: int, module: str = "") -> int:
        # LOADTEST_GATEWAY_CPUS: the gateways (ours or a baseline's) run on these CPUs only
        cpus = pinned(os.environ.get("LOADTEST_GATEWAY_CPUS", "") if command == "gateway" else "")
        if self.kind == "notifier":
            variable = "NOTIFIER_HTTP_API_PORT" if command == "api" else "NOTIFIER_HTTP_GATEWAY_PORT"
            cmd = [*cpus, sys.executable, "-m", module or "notifier", command]
            self.procs.start(role, cmd, self._env | {variable: str(port)})
        elif self.kind == "socketio-node":
            if command != "gateway" or module:
                raise ValueError("the Node Socket.IO baseline is a gateway only (the push stage)")
            self.procs.start(role, [*cpus, *node_baseline(), command, "--port", str(port)], self._env)
        else:
            cmd = [sys.executable, "-m", module or "loadtest.baseline_socketio", command, "--port", str(port)]
            self.procs.start(role, [*cpus, *cmd], self._env)
        return port

    def spawn_worker(self, cpus: str = "") -> str:
        """Start one fan-out worker (on `cpus` only, when given: `pinned`) and return its consumer
        name, without waiting for it (the fan-out stage times the worker from its first read)."""
        if self.kind != "notifier":
            raise ValueError("the Socket.IO baseline has no fan-out worker")
        name = f"loadtest-worker-{self._workers}"
        self._workers += 1
        cmd = [*pinned(cpus), sys.executable, "-m", "notifier", "worker"]
        self.procs.start("worker", cmd, self._env | {"NOTIFIER_FANOUT_CONSUMER": name})
        return name

    def _ready(self, ports: list[int], workers: list[str]) -> None:
        for port in ports:
            _wait(f"port {port}", _listening(port), self.procs)
        if not workers:
            return
        client: sync_redis.Redis = (
            sync_redis.Redis.from_url(self.redis_url)
            if self.cluster is None
            else sync_redis.RedisCluster(host="127.0.0.1", port=self.cluster.nodes[0].port)
        )
        try:
            _wait("fan-out workers", _consumers_registered(client, self.partitions, set(workers)), self.procs)
        finally:
            client.close()

    def target(self) -> Target:
        """What has been started so far."""
        return Target(
            self.kind,
            tuple(self.api_urls),
            tuple(self.gateway_urls),
            self.service_key,
            self.auth,
            self.redis_url,
            self.partitions,
            self.procs.pids() | self._cluster_pids(),
            redis_cluster=self.cluster is not None,
        )

    def _cluster_pids(self) -> dict[str, tuple[int, ...]]:
        if self.cluster is None:
            return {}
        return {"redis": tuple(n.proc.pid for n in self.cluster.nodes if n.proc is not None)}
