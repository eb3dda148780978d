"""Fault actions shared by the scenarios and the chaos run."""

from __future__ import annotations

import random
import signal
import time

import anyio
from redis.asyncio import Redis

from .harness import RedisProcess, RoleProcess
from .observers import pending_of


async def kill_holding_entries(
    redis: Redis, worker: RoleProcess, partitions: int, *, timeout_s: float
) -> list[bytes]:
    """SIGKILL `worker` while it holds read-but-unacknowledged entries: once XPENDING shows
    some for its consumer name, freeze it, confirm it still holds them, and kill it. Returns
    the entries it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await pending_of(redis, partitions, worker.name):
            worker.send(signal.SIGSTOP)
            held = await pending_of(redis, partitions, worker.name)
            if held:
                worker.kill()
                return held
            worker.send(signal.SIGCONT)  # it acked in between: sample again
        await anyio.sleep(random.uniform(0.001, 0.01))  # sampling instant, not synchronisation
    raise TimeoutError(f"{worker.name} never held pending entries within {timeout_s}s")


async def crash_redis(server: RedisProcess, down_s: float) -> tuple[float, float]:
    """SIGKILL the server, keep it down `down_s`, restart it on the same directory and port.
    Returns (killed at, answering again at) in time.monotonic()."""
    server.sigkill()
    killed_at = time.monotonic()
    await anyio.sleep(down_s)  # holding the fault
    await server.restart()
    return killed_at, time.monotonic()


async def freeze_redis(server: RedisProcess, frozen_s: float) -> tuple[float, float]:
    """SIGSTOP the server for `frozen_s`; returns (frozen at, thawed at)."""
    server.pause()
    frozen_at = time.monotonic()
    try:
        await anyio.sleep(frozen_s)  # holding the fault
    finally:
        server.resume()
    return frozen_at, time.monotonic()
