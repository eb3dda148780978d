"""Fan-out on one Redis vs Redis Cluster, same code, same events: mentions of `--fanout` users
each, appended through ingest's EventLog, then drained by one in-process FanoutWorker. Three
backends stay up and the rounds alternate between them: one Redis, a one-node cluster (every
slot on one master: Redis's cluster mode alone) and 3 masters. Reports applied items/s and Redis
CPU per applied item (used_cpu_sys+user deltas summed over the masters), the masters' idle CPU
over as long a window, and INFO commandstats per command. With `--callgrind`, every server runs
under valgrind (loadtest/callgrind.py) and each round also counts the instructions Redis executed
per applied item over the drain (deterministic: one round is enough).

    python -m loadtest.clusterbench --events 3000 --fanout 10 --users 5000 --rounds 3 --out FILE
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
from redis.asyncio import Redis

from feeds import inbox
from feeds.cluster import Cluster
from feeds.limits import FeedLimits
from loadtest import callgrind
from loadtest.cluster import free_ports, private_cluster
from notifier.api.append import EventLog
from notifier.fanout.consumer import FanoutWorker
from notifier.runtime.settings import FanoutSettings, IngestSettings
from schemas.events import Event, Mention

PARTITIONS = 6
# "cluster-1": one node holding every slot, so the same calls as on one Redis meet Redis's
# cluster mode alone (no second process, no bus peers): it separates that tax from the rest
MASTERS = {"cluster-1": 1, "cluster": 3}
KINDS = ("single", "cluster-1", "cluster")
CHUNK = 500  # events per append call


def workload(events: int, fanout: int, users: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    return [
        Mention(
            id=f"m{i}",
            actor=f"a{i}",
            occurred_at=now,
            post=f"p{i % 50}",
            users=[f"u{j}" for j in rng.sample(range(users), fanout)],
            text="hello",
        )
        for i in range(events)
    ]


@contextlib.contextmanager
def single_server(
    directory: Path, replica_of: int = 0, wrapper: tuple[str, ...] = (), options: tuple[str, ...] = ()
) -> Iterator[str]:
    """A redis-server (`replica_of`: a replica of the one on that port), run under `wrapper` with
    `options` added to its command line (as loadtest.cluster's nodes)."""
    exe = shutil.which("redis-server")
    assert exe is not None
    directory.mkdir(parents=True, exist_ok=True)
    port = free_ports(1)[0]
    cmd = [*wrapper, exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cmd += ["--dir", str(directory), "--logfile", "redis.log"]
    cmd += ["--replicaof", "127.0.0.1", str(replica_of)] if replica_of else []
    proc = subprocess.Popen([*cmd, *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + (60 if wrapper else 10)
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout != b"PONG\n":
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait()


async def master_clients(redis: Redis) -> list[Redis]:
    """A client of each master (one Redis: itself)."""
    if isinstance(redis, Cluster):
        return [redis.node_client(node) for node in await redis.masters()]
    return [redis]


@dataclass(frozen=True, slots=True)
class Sample:
    """Redis's counters summed over the masters at one moment."""

    user_s: float
    sys_s: float
    commands: dict[str, tuple[int, float]]  # command -> (calls, usec)

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


async def _sample(masters: list[Redis]) -> Sample:
    user = sys = 0.0
    commands: dict[str, tuple[int, float]] = {}
    for m in masters:
        info = await m.info("cpu")
        user += float(info["used_cpu_user"])
        sys += float(info["used_cpu_sys"])
        for name, stat in (await m.info("commandstats")).items():
            calls, usec = commands.get(name.removeprefix("cmdstat_"), (0, 0.0))
            commands[name.removeprefix("cmdstat_")] = (calls + int(stat["calls"]), usec + float(stat["usec"]))
    return Sample(user, sys, commands)


def _commands(before: Sample, after: Sample, items: int) -> dict[str, dict[str, float]]:
    """Per command: calls, and usec per applied item. Commandstats time is wall clock inside the
    command (a Redis process descheduled mid-script counts), and a script's inner commands count
    both under EVALSHA and under their own names: on a busy machine it is not CPU."""
    out = {}
    for name, (calls, usec) in sorted(after.commands.items()):
        calls0, usec0 = before.commands.get(name, (0, 0.0))
        if calls > calls0:
            out[name] = {"calls": calls - calls0, "usec_per_item": round((usec - usec0) / items, 2)}
    return out


async def measure(
    redis: Redis, events: list[Event], fanout: int, counted: Path | None = None
) -> dict[str, Any]:
    """One drain; `counted`: the folder of the servers' callgrind dumps (they run under it)."""
    log = EventLog(redis, IngestSettings(partitions=PARTITIONS))
    for i in range(0, len(events), CHUNK):
        await log.append(events[i : i + CHUNK], "bench")
    settings = FanoutSettings(batch_size=256, block_ms=100)
    worker = FanoutWorker(redis, settings, partitions=PARTITIONS, limits=FeedLimits(), consumer="bench")
    masters = await master_clients(redis)
    for m in masters:
        await m.config_resetstat()
    pids = [int((await m.info("server"))["process_id"]) for m in masters]
    before = await _sample(masters)
    if counted:
        await callgrind.control("-z", pids)
    began = time.perf_counter()
    applied_events = await worker.drain()
    wall_s = time.perf_counter() - began
    if counted:
        await callgrind.control("-d", pids)
    after = await _sample(masters)
    # the masters' own CPU with no client work (cron, and on a cluster the bus), over as long a
    # window: used_cpu counts it, commandstats does not
    await anyio.sleep(wall_s)
    idle = await _sample(masters)
    items = applied_events * fanout
    commands = _commands(before, after, items)
    cpu_s, idle_s = after.cpu_s - before.cpu_s, idle.cpu_s - after.cpu_s
    evalsha = commands.get("evalsha", {"calls": 0})
    return {
        "masters": len(masters),
        "events": applied_events,
        "items": items,
        "wall_s": round(wall_s, 3),
        "items_per_s": round(items / wall_s),
        "redis_cpu_s": round(cpu_s, 3),
        "redis_user_s": round(after.user_s - before.user_s, 3),
        "redis_sys_s": round(after.sys_s - before.sys_s, 3),
        "redis_cpu_us_per_item": round(cpu_s * 1e6 / items, 2),
        "idle_cpu_s_same_window": round(idle_s, 3),
        "redis_cpu_us_per_item_less_idle": round((cpu_s - idle_s) * 1e6 / items, 2),
        "apply_calls": evalsha["calls"],
        "items_per_apply_call": round(items / evalsha["calls"], 1) if evalsha["calls"] else 0,
        "commands": commands,
        "dead_lettered": worker.stats.dead_lettered,
        **({"instructions_per_item": round(callgrind.dumped(counted, pids) / items)} if counted else {}),
    }


@contextlib.asynccontextmanager
async def opened(
    kind: str, directory: Path, replicas: int, wrapper: tuple[str, ...] = (), options: tuple[str, ...] = ()
) -> AsyncIterator[Redis]:
    """The backend `kind`, each master with `replicas` replicas, every server run under `wrapper`
    with `options` (see single_server)."""
    timeout_s = 60 if wrapper else 10
    if kind == "single":
        with contextlib.ExitStack() as servers:
            url = servers.enter_context(single_server(directory, wrapper=wrapper, options=options))
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            for i in range(replicas):
                servers.enter_context(
                    single_server(directory / f"replica{i}", port, wrapper=wrapper, options=options)
                )
            client = Redis.from_url(url, socket_timeout=timeout_s)
            try:
                yield client
            finally:
                await client.aclose()
        return
    with private_cluster(
        directory, masters=MASTERS[kind], replicas=replicas, wrapper=wrapper, options=options
    ) as lab:
        cluster = Cluster(
            [("127.0.0.1", n.port) for n in lab.nodes], retry_budget_s=timeout_s, socket_timeout=timeout_s
        )
        try:
            yield cluster
        finally:
            await cluster.shutdown()


async def _flush(redis: Redis) -> None:
    for m in await master_clients(redis):
        await m.flushall()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both backends stay up; the rounds alternate between them (fresh keys each), so a change in
    the machine's load hits both alike. Ratios are of the medians."""
    events = workload(args.events, args.fanout, args.users, args.seed)
    inbox.ITEMS_PER_CALL = args.items_per_call
    # one node cannot be its own replica: with replicas, one Redis (and its replicas) vs 3 masters
    kinds = [kind for kind in KINDS if not (args.replicas and kind == "cluster-1")]
    out: dict[str, Any] = {
        "command": f"python -m loadtest.clusterbench --events {args.events} --fanout {args.fanout} "
        f"--users {args.users} --rounds {args.rounds} --items-per-call {args.items_per_call} "
        f"--replicas {args.replicas}" + (" --callgrind" if args.callgrind else ""),
        "partitions": PARTITIONS,
        "note": "small run on a shared, busy 2-core machine: one worker process, Redis on the same cores",
        "rounds": {kind: [] for kind in kinds},
    }
    figures = ["items_per_s", "redis_cpu_us_per_item", "redis_cpu_us_per_item_less_idle"]
    with tempfile.TemporaryDirectory(prefix="clusterbench-") as tmp:
        counted = Path(tmp) if args.callgrind else None
        wrapper, options = (callgrind.wrapper(counted), callgrind.OPTIONS) if counted else ((), ())
        async with contextlib.AsyncExitStack() as stack:
            backends = [
                (
                    kind,
                    await stack.enter_async_context(
                        opened(kind, Path(tmp) / kind, args.replicas, wrapper, options)
                    ),
                )
                for kind in kinds
            ]
            for _ in range(args.rounds):
                for kind, redis in backends:
                    await _flush(redis)
                    out["rounds"][kind].append(await measure(redis, events, args.fanout, counted))
    figures += ["instructions_per_item"] if args.callgrind else []
    for kind in kinds:
        rounds = out["rounds"][kind]
        out[kind] = {figure: statistics.median(r[figure] for r in rounds) for figure in figures}
    for kind in kinds[1:]:
        out[f"{kind}_vs_single"] = {
            figure: round(out[kind][figure] / out["single"][figure], 3) for figure in out["single"]
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--fanout", type=int, default=10)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=0, help="replicas per master (one Redis too)")
    parser.add_argument("--items-per-call", type=int, default=inbox.ITEMS_PER_CALL)
    parser.add_argument("--callgrind", action="store_true", help="count Redis's instructions (valgrind)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = anyio.run(run, args)
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
