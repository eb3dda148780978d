"""Fan-out on one Redis vs a 3-master Redis Cluster, same code, same events: mentions of
`--fanout` users each, appended through ingest's EventLog, then drained by one in-process
FanoutWorker. Reports applied items/s and Redis CPU per applied item (used_cpu_sys+user deltas
summed over the masters), with the scripts' share from INFO commandstats.

    python -m loadtest.clusterbench --events 2000 --fanout 10 --out loadtest/results/cluster-fanout.json
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
from redis.asyncio import Redis

from feeds.cluster import Cluster
from feeds.limits import FeedLimits
from loadtest.cluster import free_ports, private_cluster
from notifier.api.append import EventLog
from notifier.fanout.consumer import FanoutWorker
from notifier.runtime.settings import FanoutSettings, IngestSettings
from schemas.events import Event, Mention

PARTITIONS = 6
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
def single_server(directory: Path) -> Iterator[str]:
    exe = shutil.which("redis-server")
    assert exe is not None
    port = free_ports(1)[0]
    cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cmd += ["--dir", str(directory), "--logfile", "redis.log"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout != b"PONG\n":
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait()


async def _masters(redis: Redis) -> list[Redis]:
    if isinstance(redis, Cluster):
        return [redis.node_client(node) for node in await redis.masters()]
    return [redis]


async def _cpu(masters: list[Redis]) -> tuple[float, float]:
    """(used_cpu_sys + used_cpu_user, evalsha usec) summed over the masters."""
    cpu = usec = 0.0
    for m in masters:
        info = await m.info("cpu")
        cpu += float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        stats = await m.info("commandstats")
        usec += float(stats.get("cmdstat_evalsha", {}).get("usec", 0))
    return cpu, usec


async def measure(redis: Redis, events: list[Event], fanout: int) -> dict[str, Any]:
    log = EventLog(redis, IngestSettings(partitions=PARTITIONS))
    for i in range(0, len(events), CHUNK):
        await log.append(events[i : i + CHUNK], "bench")
    settings = FanoutSettings(batch_size=256, block_ms=100)
    worker = FanoutWorker(redis, settings, partitions=PARTITIONS, limits=FeedLimits(), consumer="bench")
    masters = await _masters(redis)
    for m in masters:
        await m.config_resetstat()
    cpu0, usec0 = await _cpu(masters)
    began = time.perf_counter()
    applied_events = await worker.drain()
    wall_s = time.perf_counter() - began
    cpu1, usec1 = await _cpu(masters)
    items = applied_events * fanout
    return {
        "masters": len(masters),
        "events": applied_events,
        "items": items,
        "wall_s": round(wall_s, 3),
        "items_per_s": round(items / wall_s),
        "redis_cpu_s": round(cpu1 - cpu0, 3),
        "redis_cpu_us_per_item": round((cpu1 - cpu0) * 1e6 / items, 2),
        "evalsha_us_per_item": round((usec1 - usec0) / items, 2),
        "dead_lettered": worker.stats.dead_lettered,
    }


@contextlib.asynccontextmanager
async def opened(kind: str, directory: Path) -> AsyncIterator[Redis]:
    if kind == "single":
        with single_server(directory) as url:
            client = Redis.from_url(url)
            try:
                yield client
            finally:
                await client.aclose()
        return
    with private_cluster(directory, masters=3, replicas=0) as lab:
        cluster = Cluster([("127.0.0.1", n.port) for n in lab.nodes], retry_budget_s=10, socket_timeout=10)
        try:
            yield cluster
        finally:
            await cluster.shutdown()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    events = workload(args.events, args.fanout, args.users, args.seed)
    out: dict[str, Any] = {
        "command": f"python -m loadtest.clusterbench --events {args.events} --fanout {args.fanout} "
        f"--users {args.users}",
        "partitions": PARTITIONS,
        "note": "small run on a shared, busy 2-core machine: one worker process, Redis on the same cores",
    }
    for kind in ("single", "cluster"):
        with tempfile.TemporaryDirectory(prefix=f"clusterbench-{kind}-") as tmp:
            async with opened(kind, Path(tmp)) as redis:
                out[kind] = await measure(redis, events, args.fanout)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--fanout", type=int, default=10)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = anyio.run(run, args)
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
