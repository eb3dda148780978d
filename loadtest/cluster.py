"""A private Redis Cluster on free local ports: N masters with R replicas each, every node in its
own directory, created by `redis-cli --cluster create` and returned once every node says
`cluster_state:ok`. The test suite's cluster fixture and the cluster benchmarks run on it."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import redis as sync_redis

NODE_TIMEOUT_MS: Final = 1_000  # short: a killed master's replica takes over in ~2 s
READY_DEADLINE_S: Final = 30.0
DEFAULT_HZ: Final = 10  # redis-server's


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Node:
    port: int
    bus_port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ask(self, *command: str | int) -> Any:
        """One command on a connection of its own (closed at once: tests treat leaks as errors)."""
        with sync_redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=1) as client:
            return client.execute_command(*command)


@dataclass
class ClusterLab:
    nodes: list[Node]
    masters_n: int
    replicas_n: int
    log: list[str] = field(default_factory=list)
    wrapper: tuple[str, ...] = ()  # what each node runs under (valgrind: loadtest/applycost.py)
    options: tuple[str, ...] = ()  # redis-server options after the defaults, which they override

    @property
    def patience(self) -> float:
        """How much longer than a plain node's to wait for a wrapped one (valgrind is ~50× slower)."""
        return 6.0 if self.wrapper else 1.0

    @property
    def url(self) -> str:
        """NOTIFIER_REDIS_URL: every node a seed."""
        return ",".join(f"redis://{n.address}" for n in self.nodes)

    def masters(self) -> list[Node]:
        """The nodes that are masters now (after failovers too)."""
        out = []
        for node in self.live():
            with contextlib.suppress(sync_redis.RedisError):
                if node.ask("INFO", "replication")["role"] == "master":
                    out.append(node)
        return out

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def node_of_slot(self, slot: int) -> Node:
        for start, end, master, *_ in self.live()[0].ask("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                port = int(master[1])
                return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"slot {slot} has no master")

    def flush(self) -> None:
        for node in self.masters():
            node.ask("FLUSHALL")

    def wait_ok(self, deadline_s: float = READY_DEADLINE_S) -> None:
        """Until every live node says cluster_state:ok and agrees every slot has a live master,
        and every master has its replicas online (when all nodes run)."""
        deadline = time.monotonic() + deadline_s * self.patience
        while True:
            if all(self._ok(n) for n in self.live()) and self._replicated():
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.05)  # external processes: polling is the only readiness signal

    def _ok(self, node: Node) -> bool:
        try:
            if b"cluster_state:ok" not in node.ask("CLUSTER", "INFO"):
                return False
            live = {n.port for n in self.live()}
            slots = node.ask("CLUSTER", "SLOTS")
            covered = sum(
                int(end) - int(start) + 1 for start, end, master, *_ in slots if int(master[1]) in live
            )
            return covered == 16384
        except sync_redis.RedisError:
            return False

    def _replicated(self) -> bool:
        if len(self.live()) < len(self.nodes):
            return True
        try:
            masters = self.masters()
            infos = [m.ask("INFO", "replication") for m in masters]
        except sync_redis.RedisError:
            return False
        online = [
            sum(
                1
                for k, v in info.items()
                if k.startswith("slave") and isinstance(v, dict) and v["state"] == "online"
            )
            for info in infos
        ]
        return len(masters) == self.masters_n and all(n >= self.replicas_n for n in online)

    def node_id(self, node: Node) -> str:
        return str(node.ask("CLUSTER", "MYID").decode())

    def move_slot(self, slot: int, target: Node) -> int:
        """Migrate `slot` to `target` live, as `redis-cli --cluster reshard --cluster-pipeline N`
        does with N at least the slot's keys (IMPORTING / MIGRATING, MIGRATE every key of the slot
        at once, then SETSLOT NODE everywhere); keys moved. One MIGRATE moves a user's keys
        together: the scripts that wait while a slot's keys are split (README "Scaling",
        reshard) wait the least."""
        source = self.node_of_slot(slot)
        if source is target:
            return 0
        source_id, target_id = self.node_id(source), self.node_id(target)
        target.ask("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source.ask("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        while batch := source.ask(
            "CLUSTER", "GETKEYSINSLOT", slot, max(1, source.ask("CLUSTER", "COUNTKEYSINSLOT", slot))
        ):
            source.ask("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *batch)
            moved += len(batch)
        for node in [target, source, *self.masters()]:
            node.ask("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        return moved

    def kill(self, node: Node) -> None:
        """SIGKILL: a crash, nothing flushed."""
        assert node.proc is not None
        node.proc.kill()
        node.proc.wait()

    def start(self, node: Node) -> None:
        exe = shutil.which("redis-server")
        assert exe is not None
        node.directory.mkdir(parents=True, exist_ok=True)
        cmd = [
            exe,
            "--port", str(node.port),
            "--cluster-port", str(node.bus_port),
            "--bind", "127.0.0.1",
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-replica-validity-factor", "0",  # a replica always may take over
            "--dir", str(node.directory),
            "--save", "",
            "--appendonly", "no",
            "--logfile", "redis.log",
            *self.options,
        ]  # fmt: skip
        node.proc = subprocess.Popen(
            [*self.wrapper, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10 * self.patience
        while True:
            with contextlib.suppress(sync_redis.RedisError):
                if node.ask("PING"):
                    return
            if node.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {node.directory / 'redis.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer")
            time.sleep(0.01)

    def create(self, replicas: int) -> None:
        """Join the nodes and spread the slots. The cluster bus works off each node's cron,
        `hz` times a second: nodes started with a low one (callgrind's `--hz 1`) took ~20 s to
        join instead of ~2, past a minute on a loaded machine, so they join at the default and
        get theirs back once the cluster is up."""
        hz = [node.ask("CONFIG", "GET", "hz")[1] for node in self.nodes]
        for node in self.nodes:
            node.ask("CONFIG", "SET", "hz", DEFAULT_HZ)
        try:
            self._create(replicas)
        finally:
            for node, own in zip(self.nodes, hz, strict=True):
                node.ask("CONFIG", "SET", "hz", own)

    def _create(self, replicas: int) -> None:
        if len(self.nodes) == 1:  # redis-cli wants 3 masters; one node simply takes every slot
            self.nodes[0].ask("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            self.wait_ok()
            return
        cli = shutil.which("redis-cli")
        assert cli is not None
        cmd = [cli, "--cluster", "create", *[n.address for n in self.nodes]]
        cmd += ["--cluster-replicas", str(replicas), "--cluster-yes"]
        done = subprocess.run(cmd, capture_output=True, timeout=60 * self.patience, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout.decode()[-2000:]}")
        self.wait_ok()

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=10 * self.patience)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()


def start_nodes(
    directory: Path, masters: int, replicas: int, wrapper: tuple[str, ...] = (), options: tuple[str, ...] = ()
) -> ClusterLab:
    """The nodes running, the cluster not yet created (`create` does it)."""
    count = masters * (1 + replicas)
    ports = free_ports(2 * count)
    nodes = [Node(ports[i], ports[count + i], directory / f"node{i}") for i in range(count)]
    lab = ClusterLab(nodes, masters, replicas, wrapper=wrapper, options=options)
    try:
        for node in nodes:
            lab.start(node)
    except BaseException:
        lab.stop()
        raise
    return lab


@contextlib.contextmanager
def private_cluster(
    directory: Path,
    *,
    masters: int = 3,
    replicas: int = 1,
    wrapper: tuple[str, ...] = (),
    options: tuple[str, ...] = (),
) -> Iterator[ClusterLab]:
    """A cluster of `masters` masters with `replicas` replicas each, stopped on exit (each node
    run under `wrapper`, with `options` added to its command line)."""
    lab = start_nodes(directory, masters, replicas, wrapper, options)
    try:
        lab.create(replicas)
        yield lab
    finally:
        lab.stop()
