"""Event-log upkeep: trim only what every consumer group has processed (MINID from the slowest
group, never a blind MAXLEN), keep `retain_ms` of history for replay, reap dead consumers, and
report entries someone else deleted before the fan-out read them."""

from __future__ import annotations

import logging
import time

import anyio
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from feeds.changelog import entry_id
from feeds.cluster import REDIS_UNAVAILABLE
from notifier.runtime import metrics
from notifier.runtime.lifecycle import Backoff
from notifier.runtime.settings import FanoutSettings
from schemas import keys

from .deadletter import DeadLetters, Gap

log = logging.getLogger(__name__)


class Janitor:
    """Service: every `maintenance_interval_ms`, reports unread entries deleted from each
    partition's log, trims it and reaps consumers."""

    def __init__(self, redis: Redis, settings: FanoutSettings, *, partitions: int) -> None:
        self._redis = redis
        self._settings = settings
        self._partitions = range(partitions)
        self._stopping = anyio.Event()
        self._dead = DeadLetters(redis)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        backoff = Backoff("janitor")
        task_status.started()
        while not self._stopping.is_set():
            try:
                for p in self._partitions:
                    await self.report_gap(p)
                    await self.trim(p)
                    await self.reap(p)
                backoff.reset()
            except REDIS_UNAVAILABLE as exc:
                await backoff.sleep(exc)
                continue
            with anyio.move_on_after(self._settings.maintenance_interval_ms / 1000):
                await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()

    async def report_gap(self, partition: int) -> Gap | None:
        """Entries deleted from the log before the fan-out read them (an operator's XTRIM
        MAXLEN or XDEL: this janitor never trims past what was read) were never applied: a loss,
        reported once by whichever worker finds it: a dead letter without an event, an ERROR
        line and `notifier_fanout_lost_total`."""
        # a worker that acknowledged within two rounds is active
        gap = await self._dead.unread_deleted(partition, 2 * self._settings.maintenance_interval_ms)
        if gap is not None:
            metrics.current().lost.inc(gap.lost)
            log.error(
                "lost before processing partition=%d: %d entries were deleted from the event log "
                "before the fan-out read them (it has read up to %s); never applied, a dead letter "
                "records it",
                partition,
                gap.lost,
                gap.read_up_to,
            )
        return gap

    async def safe_trim_point(self, partition: int) -> tuple[int, int] | None:
        """The lowest entry some group still needs: its oldest pending or first unread entry."""
        stream = keys.events(partition)
        try:
            groups = await self._redis.xinfo_groups(stream)
        except ResponseError:
            return None  # no stream
        if not groups:
            return None  # nobody has read anything yet: keep everything
        needed: list[tuple[int, int]] = []
        for group in groups:
            name = group["name"]
            pending = await self._redis.xpending(stream, name)
            if pending["pending"]:
                needed.append(entry_id(pending["min"]))
            else:
                last = entry_id(group["last-delivered-id"])
                needed.append((last[0], last[1] + 1))
        return min(needed)

    async def trim(self, partition: int, *, now_ms: int | None = None) -> int:
        safe = await self.safe_trim_point(partition)
        if safe is None:
            return 0
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        horizon = (now_ms - self._settings.retain_ms, 0)
        point = min(safe, horizon)
        if point <= (0, 0):
            return 0
        trimmed = await self._redis.xtrim(
            keys.events(partition), minid=f"{point[0]}-{point[1]}", approximate=False
        )
        if trimmed:
            log.info("trimmed partition=%d entries=%d below=%s", partition, trimmed, point)
        return int(trimmed)

    async def reap(self, partition: int) -> int:
        """Remove consumers idle past `reap_idle_ms` that hold nothing (claim before delete)."""
        stream = keys.events(partition)
        try:
            consumers = await self._redis.xinfo_consumers(stream, keys.FANOUT_GROUP)
        except ResponseError:
            return 0
        reaped = 0
        for consumer in consumers:
            if consumer["pending"] == 0 and consumer["idle"] > self._settings.reap_idle_ms:
                await self._redis.xgroup_delconsumer(stream, keys.FANOUT_GROUP, consumer["name"])
                await self._dead.uncount(partition, consumer["name"])
                reaped += 1
        return reaped
