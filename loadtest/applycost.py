"""python -m loadtest.applycost: Redis's cost per applied item of the `fanout` workload, counted.

The `fanout` stage's events (loadtest.fanout.workload: likes, follows, comments, one recipient
each) are planned and applied straight through feeds.inbox.Inbox (100 events a round trip, as a
worker's batch) against a private redis-server, optionally with a share of the recipients
subscribed to their channels (online). Printed per applied item: the commands the scripts ran
(INFO commandstats), Redis CPU (INFO cpu: noisy on a shared machine) and, with `--cachegrind`,
the instructions Redis executed (valgrind's cachegrind, minus a 1-item run's: deterministic, so
before/after ratios hold on a busy machine). Run it from two checkouts with PYTHONPATH set to each
for a before/after.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from feeds.inbox import Inbox
from feeds.items import plan
from feeds.limits import FeedLimits
from schemas import keys

from .fanout import EVENTS_PER_USER, workload
from .stack import free_port

BATCH = 100  # events per round trip


async def _ready(redis: Redis) -> None:
    for _ in range(600):  # valgrind starts slowly
        try:
            await redis.ping()
            return
        except RedisConnectionError:
            await asyncio.sleep(0.1)  # an external process: polling is the only readiness signal
    raise RuntimeError("redis-server did not start")


async def measure(events: int, online_pct: int, cachegrind: bool) -> dict[str, float]:
    port, work = free_port(), Path(tempfile.mkdtemp(prefix="applycost-"))
    prefix = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={work}/cg.out"]
    cmd = [
        *(prefix if cachegrind else []),
        "redis-server",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    with (work / "stderr").open("w") as err:
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.DEVNULL, stderr=err)
    redis = Redis(port=port)
    try:
        await _ready(redis)
        limits = FeedLimits()
        log = workload(events, max(2, events // EVENTS_PER_USER), 1, "cost", int(time.time() * 1000))
        ops = [op for event in log for op in plan(event, limits)]
        users = sorted({op.user for op in ops})
        online = users[: len(users) * online_pct // 100]
        pubsub = redis.pubsub()
        if online:
            await pubsub.subscribe(*[keys.user_channel(u) for u in online])
        inbox = Inbox(redis, limits)
        await redis.config_resetstat()
        before = await redis.info("cpu")
        per_batch = len(ops) * BATCH // max(1, len(log))
        for start in range(0, len(ops), max(1, per_batch)):
            errors = await inbox.apply(ops[start : start + per_batch])
            if any(errors):
                raise RuntimeError(f"apply failed: {errors}")
        after, stats = await redis.info("cpu"), await redis.info("commandstats")
        await pubsub.aclose()
        n = len(ops)
        cpu = sum(after[k] - before[k] for k in ("used_cpu_user", "used_cpu_sys"))
        nested = sum(v["calls"] for k, v in stats.items() if k.removeprefix("cmdstat_") not in _OWN)
        out = {"items": float(n), "commands_per_item": nested / n, "cpu_us_per_item": cpu / n * 1e6}
        if cachegrind:
            try:
                await redis.execute_command("SHUTDOWN", "NOSAVE")
            except RedisConnectionError:
                pass  # the reply never comes: the server is gone
            await proc.wait()
            out["instructions"] = float(_instructions(work / "stderr"))
        return out
    finally:
        await redis.aclose()
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


# what the harness itself sends after the reset; every other command is a script's
_OWN = frozenset({"evalsha", "eval", "info", "script|load"})


def _instructions(stderr: Path) -> int:
    found = re.search(r"I\s+refs:\s+([\d,]+)", stderr.read_text())
    if found is None:
        raise RuntimeError(f"no cachegrind summary in {stderr}")
    return int(found.group(1).replace(",", ""))


async def run(events: int, online_pct: int, cachegrind: bool) -> None:
    result = await measure(events, online_pct, cachegrind)
    line = (
        f"items={result['items']:.0f} online={online_pct}% commands/item={result['commands_per_item']:.2f} "
        f"redis_cpu_us/item={result['cpu_us_per_item']:.1f}"
    )
    if cachegrind:
        fixed = (await measure(1, 0, True))["instructions"]
        line += f" instructions/item={(result['instructions'] - fixed) / result['items']:.0f}"
    print(line)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.applycost", description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=2_000)
    p.add_argument("--online", type=int, default=0, help="percent of recipients subscribed")
    p.add_argument("--cachegrind", action="store_true", help="count Redis's instructions (valgrind)")
    args = p.parse_args()
    asyncio.run(run(args.events, args.online, args.cachegrind))


if __name__ == "__main__":
    main()
