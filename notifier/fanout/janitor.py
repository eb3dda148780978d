"""Event-log upkeep: trim only what every consumer group has processed (MINID from the slowest
group, never a blind MAXLEN), keep `retain_ms` of history for replay, reap dead consumers,
report entries someone else deleted before the fan-out read them, and delete the idempotency
window's records past it."""

from __future__ import annotations

import logging
import math
import time
from typing import Final

import anyio
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError, ResponseError

from feeds.changelog import entry_id
from feeds.cluster import REDIS_REFUSING, REDIS_UNAVAILABLE
from notifier.runtime import metrics
from notifier.runtime.lifecycle import Backoff
from notifier.runtime.settings import FanoutSettings, IngestSettings
from schemas import keys, layouts

from .deadletter import DeadLetters, Gap

log = logging.getLogger(__name__)

SCAN_PAGE: Final = 1_000  # idempotency records read per HSCAN
UNREAD_REPORT_S: Final = 600.0  # a partition no worker reads is logged this often at most
SWEEPS_PER_WINDOW: Final = 8  # each record is looked at this often within the window, at least


class Janitor:
    """Service: every `maintenance_interval_ms`, reports unread entries deleted from each
    partition's log, trims it, reaps consumers and sweeps its idempotency window (`window_s`:
    ingest's `dedupe_ttl_s`)."""

    def __init__(
        self,
        redis: Redis,
        settings: FanoutSettings,
        *,
        partitions: int,
        window_s: int = IngestSettings().dedupe_ttl_s,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._partitions = range(partitions)
        self._window_ms = window_s * 1000
        self._stopping = anyio.Event()
        self._dead = DeadLetters(redis)
        self._unread_reported = -math.inf

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        backoff = Backoff("janitor")
        task_status.started()
        while not self._stopping.is_set():
            try:
                refused = None
                for p in self._partitions:
                    for step in (self.report_gap, self.trim, self.reap, self.sweep_window):
                        try:
                            await step(p)
                        except REDIS_REFUSING as exc:  # at maxmemory: what frees memory goes on
                            refused = exc
                if refused is not None:
                    raise refused
                await self.report_unread_partition()
                backoff.reset()
            except REDIS_UNAVAILABLE as exc:
                await backoff.sleep(exc)
                continue
            with anyio.move_on_after(self._settings.maintenance_interval_ms / 1000):
                await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()

    async def report_unread_partition(self) -> int:
        """Entries in the partition after this worker's last: an api with a larger
        NOTIFIER_INGEST_PARTITIONS writes there, and no worker like this one reads them. Logged
        (an error, every UNREAD_REPORT_S at most); how many there are."""
        beyond = len(self._partitions)
        if beyond >= 1024:  # the most partitions there can be
            return 0
        waiting = int(await self._redis.xlen(keys.events(beyond)))
        now = time.monotonic()
        if waiting and now - self._unread_reported >= UNREAD_REPORT_S:
            self._unread_reported = now
            log.error(
                "%d events in partition %d, which this worker does not read "
                "(NOTIFIER_INGEST_PARTITIONS=%d): give every api and worker the same count",
                waiting,
                beyond,
                beyond,
            )
        return waiting

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

    async def sweep_window(self, partition: int, *, now_ms: int | None = None) -> int:
        """Delete the partition's idempotency records older than the window. One janitor a
        round sweeps a partition, whichever takes its lease first (`keys.idempotency_sweep`:
        every worker runs a janitor, and scanning the window is the costly part of its round).
        Each bucket's scan goes on from round to round where the last one stopped (its place is
        kept in Redis beside the lease), far enough each round to pass every record
        SWEEPS_PER_WINDOW times a window: a record outlives the window by at most an eighth of
        it (or a round). Returns how many records went (0 when another janitor has the round)."""
        interval = self._settings.maintenance_interval_ms
        lease, places = keys.idempotency_lease(partition), keys.idempotency_sweep(partition)
        try:
            if not await self._redis.set(lease, "1", nx=True, px=interval):
                return 0
        except OutOfMemoryError:
            pass  # Redis at maxmemory takes deletions only: sweep, unleased, from the places kept
        if now_ms is None:  # Redis's clock, which gave the records' entry ids their times
            seconds, micros = await self._redis.time()
            now_ms = seconds * 1000 + micros // 1000
        oldest = now_ms - self._window_ms
        rounds = max(1.0, self._window_ms / SWEEPS_PER_WINDOW / interval)
        kept = {int(b): v.decode().split(" ") for b, v in (await self._redis.hgetall(places)).items()}
        deleted, ended = 0, []
        for bucket in range(keys.IDEMPOTENCY_BUCKETS):
            key = keys.idempotency_bucket(partition, bucket)
            cursor, share = (int(n) for n in kept.get(bucket, ("0", "0")))
            # at least a `rounds`-th of the bucket a round: a bucket that grows (every one does
            # after an upgrade, from empty) would outrun a share fixed as its pass began
            share = max(share, math.ceil(await self._redis.hlen(key) / rounds))
            budget = share
            while budget > 0:
                cursor, records = await self._redis.hscan(key, cursor, count=min(budget, SCAN_PAGE))
                budget -= max(len(records), 1)
                past = [field for field, record in records.items() if _accepted_ms(record) < oldest]
                if past:
                    deleted += await self._redis.hdel(key, *past)
                if cursor == 0:
                    break
            if cursor:
                kept[bucket] = [str(cursor), str(share)]
            elif bucket in kept:
                del kept[bucket]
                ended.append(bucket)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                if ended:
                    pipe.hdel(places, *ended)
                if kept:
                    pipe.hset(places, mapping={b: " ".join(v) for b, v in kept.items()})
                await pipe.execute()
        except OutOfMemoryError:
            pass  # the next round goes on from the places kept before
        if deleted:
            log.info("idempotency window partition=%d records past it deleted=%d", partition, deleted)
        return deleted


def _accepted_ms(record: bytes) -> float:
    """When a record's event was appended; a record not in the layout counts as new (kept: only
    the append script writes these hashes, so it is not ours to delete)."""
    try:
        return layouts.accepted_ms(record)
    except ValueError:
        return math.inf
