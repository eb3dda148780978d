"""Backpressure: ingest refuses new work (503, Retry-After) while fan-out is too far behind,
Redis memory is nearly full, or Redis was set to evict keys, instead of accepting events it
might lose."""

from __future__ import annotations

import logging
from typing import Any

import anyio
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from feeds.cluster import CLUSTER_UNAVAILABLE, REDIS_UNAVAILABLE, Cluster
from notifier.runtime import metrics
from notifier.runtime.checks import evicts
from notifier.runtime.eventlog import fanout_group, fanout_lag
from notifier.runtime.lifecycle import Backoff
from notifier.runtime.settings import IngestSettings
from schemas import keys
from schemas.errors import Reason, Rejected

log = logging.getLogger(__name__)


class Pressure:
    """Samples each partition's backlog (group lag + pending) and Redis memory (on a cluster,
    every master's) on an interval; `check()` is then free on the request path. A sample that
    meets an unavailable Redis or cluster (a lost connection, MOVED, ASK, TRYAGAIN, CLUSTERDOWN
    during a failover or a reshard) is unknown, not zero: the last verdict stands until a
    sample completes."""

    def __init__(self, redis: Redis, settings: IngestSettings) -> None:
        self._redis = redis
        self._settings = settings
        self._refusal: Rejected | None = None
        self._stopping = anyio.Event()
        self._gauge = metrics.current().backpressure

    def check(self) -> None:
        if self._refusal is not None:
            raise self._refusal

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        backoff = Backoff("ingest pressure sampler")
        task_status.started()
        while not self._stopping.is_set():
            try:
                self._update(await self.sample())
                backoff.reset()
            except REDIS_UNAVAILABLE as exc:
                await backoff.sleep(exc)
                continue
            with anyio.move_on_after(self._settings.pressure_interval_ms / 1000):
                await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()

    async def sample(self) -> Rejected | None:
        """The refusal the current state calls for, if any."""
        for memory in await self._memories():
            policy = memory.get("maxmemory_policy")
            if memory.get("role") == "slave":  # a promoted replica demoted, or the wrong node
                where = (
                    "a failover is under way, or the slot map is stale"
                    if isinstance(self._redis, Cluster)
                    else "point NOTIFIER_REDIS_URL at its master"
                )
                return Rejected(
                    Reason.UNAVAILABLE, f"Redis is a read-only replica: it refuses writes; {where}"
                )
            if evicts(policy):  # set since the start, which refuses such a Redis
                return Rejected(
                    Reason.UNAVAILABLE,
                    f"Redis may evict keys (maxmemory-policy {policy}): events and inboxes could be "
                    "lost; set maxmemory-policy noeviction",
                )
            limit = int(memory.get("maxmemory", 0))
            if limit and int(memory.get("used_memory", 0)) > limit * self._settings.max_memory_ratio:
                return Rejected(Reason.BACKLOG, "Redis memory nearly full; retry later")
        for p in range(self._settings.partitions):
            backlog = await self._backlog(p)
            if backlog > self._settings.max_backlog:
                return Rejected(
                    Reason.BACKLOG, f"fan-out is {backlog} events behind on a partition; retry later"
                )
        return None

    async def _memories(self) -> list[dict[str, Any]]:
        """INFO memory and replication of every master (a cluster refuses writes to a full
        master's slots; a replica refuses them all)."""
        redis = self._redis
        nodes = (
            [redis.node_client(n) for n in await redis.masters()] if isinstance(redis, Cluster) else [redis]
        )
        out = []
        for node in nodes:
            try:
                out.append(await node.info("memory", "replication"))
            except CLUSTER_UNAVAILABLE:
                raise
            except ResponseError:  # INFO denied by an ACL, or the in-process fake lacks it: no signal
                out.append({})
        return out

    async def _backlog(self, partition: int) -> int:
        stream = keys.events(partition)
        async with self._redis.pipeline(transaction=False) as pipe:  # one slot: one round trip
            pipe.xinfo_groups(stream)
            pipe.xlen(stream)
            pipe.xrevrange(stream, count=1)
            groups, length, last = await pipe.execute(raise_on_error=False)
        for reply in (groups, length, last):
            # MOVED, ASK, CLUSTERDOWN are ResponseErrors too: unknown, not "no stream"
            if isinstance(reply, CLUSTER_UNAVAILABLE) or (
                isinstance(reply, BaseException) and not isinstance(reply, ResponseError)
            ):
                raise reply
        if isinstance(groups, ResponseError):  # no stream yet
            return 0
        group = fanout_group(groups)  # None: no consumer yet, the whole stream is behind
        lag = fanout_lag(group, int(length), last[0][0] if last else None)
        return lag + (int(group["pending"]) if group is not None else 0)

    def _update(self, refusal: Rejected | None) -> None:
        if (refusal is None) != (self._refusal is None):
            if refusal is None:
                log.warning("ingest accepting again")
            elif refusal.reason is Reason.UNAVAILABLE:  # an operator must act
                log.error("ingest refusing: %s", refusal.detail)
            else:
                log.warning("ingest refusing: %s", refusal.detail)
        self._refusal = refusal
        self._gauge.set(refusal is not None)
