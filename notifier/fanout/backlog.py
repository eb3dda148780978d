"""The fan-out's backlog as operators see it, read at scrape or probe time (never per event):
per partition the group's lag, pending entries, the oldest pending entry's age and dead letters;
and whether the consumer group exists on every partition (readiness)."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from notifier.runtime.eventlog import fanout_group, fanout_lag
from notifier.runtime.metrics import Metrics
from schemas import keys

from .deadletter import DeadLetters


class Backlog:
    def __init__(self, redis: Redis, partitions: int) -> None:
        self._redis = redis
        self._partitions = range(partitions)
        self._dead = DeadLetters(redis)

    async def _groups(self) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for p in self._partitions:
                pipe.xinfo_groups(keys.events(p))
            return list(await pipe.execute(raise_on_error=False))

    async def missing_groups(self) -> str | None:
        """None when group `fanout` exists on every partition; else which partitions lack it."""
        missing = [
            p for p, g in zip(self._partitions, await self._groups(), strict=True) if fanout_group(g) is None
        ]
        return f"consumer group missing on partitions {missing}" if missing else None

    async def sample(self, metrics: Metrics) -> None:
        groups = await self._groups()
        async with self._redis.pipeline(transaction=False) as pipe:
            for p in self._partitions:
                pipe.xlen(keys.events(p))
                pipe.xpending(keys.events(p), keys.FANOUT_GROUP)
                pipe.xrevrange(keys.events(p), count=1)
            replies = await pipe.execute(raise_on_error=False)
        dead_letters = await self._dead.sizes(len(self._partitions))
        now_ms = time.time() * 1000
        for i, p in enumerate(self._partitions):
            (length, pending, last), dead = replies[3 * i : 3 * i + 3], dead_letters[i]
            newest = last[0][0] if isinstance(last, list) and last else None
            label = str(p)
            metrics.lag.labels(label).set(fanout_lag(fanout_group(groups[i]), _int(length), newest))
            metrics.dead_letters.labels(label).set(_int(dead))
            count = int(pending["pending"]) if isinstance(pending, dict) else 0
            metrics.pending.labels(label).set(count)
            oldest = pending.get("min") if count and isinstance(pending, dict) else None
            age_s = 0.0
            if oldest:
                text = oldest.decode() if isinstance(oldest, bytes) else str(oldest)
                age_s = max(0.0, (now_ms - int(text.split("-")[0])) / 1000)
            metrics.oldest_pending.labels(label).set(age_s)


def _int(value: Any) -> int:
    return 0 if isinstance(value, BaseException) or value is None else int(value)
