"""Register upkeep: trims the item registers past the views' horizon, a few users a round, so a
busy user's `ni:` hash stops growing (feeds/horizon.py says what may go and why)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

import anyio
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from feeds.cluster import REDIS_REFUSING, REDIS_UNAVAILABLE
from feeds.horizon import Registers, TrimStats
from feeds.limits import FeedLimits
from notifier.runtime.lifecycle import Backoff

log = logging.getLogger(__name__)


def wall_ms() -> int:
    return int(time.time() * 1000)


class Sweeper:
    """Service: every `interval_ms`, trims the registers older than `horizon_ms` of the next
    `users_per_round` users of a scan that wraps around. Idempotent, so several workers may
    sweep at once; with no horizon (ingest takes any lateness) it does nothing."""

    def __init__(
        self,
        redis: Redis,
        limits: FeedLimits,
        *,
        horizon_ms: int | None,
        users_per_round: int,
        interval_ms: int,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self._registers = Registers(redis, limits)
        self._horizon_ms = horizon_ms
        self._per_round = users_per_round
        self._interval_s = interval_ms / 1000
        self._clock = clock
        self._scan: AsyncIterator[str] | None = None
        self._stopping = anyio.Event()
        self.stats = TrimStats()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        backoff = Backoff("register sweep")
        task_status.started()
        while not self._stopping.is_set():
            try:
                await self.sweep_round()
                backoff.reset()
            except REDIS_UNAVAILABLE as exc:
                self._scan = None  # a scan cursor may not survive a reconnect: start over
                await backoff.sleep(exc)
                continue
            with anyio.move_on_after(self._interval_s):
                await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()

    async def sweep_round(self) -> TrimStats:
        """Trim the next users of the scan; what this round did."""
        done = TrimStats()
        if self._horizon_ms is None or not self._per_round:
            return done
        cutoff = self._clock() - self._horizon_ms
        while done.users < self._per_round:
            if self._scan is None:
                self._scan = self._registers.users()
            try:
                user = await anext(self._scan)
            except StopAsyncIteration:
                self._scan = None
                break  # a full pass ended: the next round starts another
            try:
                done.registers += await self._registers.trim(user, cutoff)
            except REDIS_REFUSING:
                raise  # Redis refuses every user alike (at maxmemory, read-only): backed off, counted
            except ResponseError as exc:  # one user's key of another type: the others go on
                log.error("register trim failed user=%s: %s", user, exc)
            done.users += 1
        self.stats.users += done.users
        self.stats.registers += done.registers
        if done.registers:
            log.info("trimmed registers=%d users=%d below_ms=%d", done.registers, done.users, cutoff)
        return done
