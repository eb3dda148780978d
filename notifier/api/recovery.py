"""RestartWatch: the api notices a Redis restart and appends again what the crash took back;
what no surviving api kept is reported as a window of possibly lost events.

Redis with AOF `appendfsync everysec` may lose about the last second of writes when it crashes.
Every api process keeps the events it accepted until Redis has surely written them
(`RecentAppends`), asks Redis for its run id every `restart_check_ms` (a restarted server has a
new one), and on a new run id runs every kept append again: the append script writes the entry
and its dedupe key in one step, so a kept key means a kept entry (answered as a duplicate,
nothing written) and a lost one is appended again. An api that died with Redis cannot; each api
notes in `ingest-watch` the run it last saw and when, so the others, or the next api to start,
find a note left on an earlier run that nobody updated, and report that api's window.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import UTC, datetime
from typing import Final

import anyio
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from notifier.runtime.lifecycle import Backoff
from notifier.runtime.settings import IngestSettings
from schemas import keys

from .append import append_again
from .recent import Kept, RecentAppends

log = logging.getLogger(__name__)

BATCH: Final = 500  # appends run again per round trip
FORGET_MS: Final = 60_000  # a note on the current run this old: its api stopped; nothing is at risk


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


class RestartWatch:
    """A Service of the api role. `restarts`, `reappended` and `unrecovered` count what it saw
    (also added up in Redis, `keys.ingest_recovery`)."""

    def __init__(self, redis: Redis, settings: IngestSettings, recent: RecentAppends) -> None:
        self._redis = redis
        self._settings = settings
        self._recent = recent
        self._name = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        # another api gets this long after a restart to note the new run before it is reported
        self._grace_ms = max(5_000, 10 * settings.restart_check_ms)
        self._run_id: str | None = None
        self._stopping = anyio.Event()
        self.restarts = 0
        self.reappended = 0
        self.unrecovered = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        backoff = Backoff("ingest restart watch")
        task_status.started()
        try:
            while not self._stopping.is_set():
                try:
                    if not await self.check():
                        return
                    backoff.reset()
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    await backoff.sleep(exc)
                    continue
                with anyio.move_on_after(self._settings.restart_check_ms / 1000):
                    await self._stopping.wait()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                try:  # stopped: nothing of ours is at risk once Redis has written it
                    await self._redis.hdel(keys.ingest_watch(), self._name)
                except (RedisConnectionError, RedisTimeoutError, OSError):
                    pass

    def stop(self) -> None:
        self._stopping.set()

    async def check(self) -> bool:
        """One look at Redis; False if it cannot tell its run id (nothing to watch)."""
        asked_at_s = time.monotonic()
        try:
            server = await self._redis.info("server")
        except ResponseError:  # INFO denied by an ACL, or the in-process fake
            server = {}
        if not isinstance(server.get("run_id"), str):  # not one server (a cluster answers per node)
            log.warning("no Redis run id: ingest cannot notice a Redis restart nor append again what it lost")
            self._recent.enabled = False
            return False
        run_id, uptime_ms = str(server["run_id"]), int(server["uptime_in_seconds"]) * 1000
        if run_id != self._run_id and (self._run_id is not None or len(self._recent)):
            # (no run seen yet, but events taken: the run that took them may be gone already)
            await self._append_again(self._run_id or "?", run_id)
        self._run_id = run_id
        self._recent.confirm(asked_at_s)
        now_ms = int(time.time() * 1000)
        await self._redis.hset(keys.ingest_watch(), self._name, f"{run_id} {now_ms}")
        await self._report_abandoned(run_id, now_ms, uptime_ms)
        return True

    async def _append_again(self, old: str, new: str) -> None:
        kept = self._recent.snapshot()
        results: list[bool | BaseException] = []
        for start in range(0, len(kept), BATCH):
            results += await append_again(self._redis, [k.command for k in kept[start : start + BATCH]])
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:  # the next check tries again (appending what is there is a no-op)
            raise RedisConnectionError(f"appending again after a Redis restart failed: {failed[0]}")
        self._recent.appended_again(kept)
        lost = [k for k, again in zip(kept, results, strict=True) if again]
        self.restarts += 1
        self.reappended += len(lost)
        counters = self._redis.pipeline(transaction=False)
        counters.hincrby(keys.ingest_recovery(), "restarts", 1)
        counters.hincrby(keys.ingest_recovery(), "reappended", len(lost))
        await counters.execute()
        log.warning(
            "redis restarted (run %s -> %s): of %d events this api accepted lately, %d were lost "
            "and are appended again%s",
            old,
            new,
            len(kept),
            len(lost),
            _span(lost),
        )
        dropped = self._recent.take_dropped()
        if dropped is not None:
            await self._count_unrecovered()
            log.error(
                "possibly lost: %d events accepted by this api between %s and %s, on any partition; "
                "they left its buffer (NOTIFIER_INGEST_RECOVERY_KEEP_EVENTS) before Redis kept them",
                dropped.count,
                _when(dropped.first_ms),
                _when(dropped.last_ms),
            )

    async def _report_abandoned(self, run_id: str, now_ms: int, uptime_ms: int) -> None:
        """Report, once, each api whose note is on an earlier Redis run: it did not survive the
        restart, and what it accepted after its last note may be lost."""
        notes = await self._redis.hgetall(keys.ingest_watch())
        for name, note in notes.items():
            their_run, _, seen = note.decode().partition(" ")
            seen_ms = int(seen)
            if their_run == run_id:
                if now_ms - seen_ms > FORGET_MS:
                    await self._redis.hdel(keys.ingest_watch(), name)
                continue
            if uptime_ms < self._grace_ms or not await self._redis.hdel(keys.ingest_watch(), name):
                continue  # it may still be appending again itself; or another api reported it
            await self._count_unrecovered()
            partitions = self._settings.partitions
            log.error(
                "possibly lost: events accepted by api %s between %s and %s, on any partition "
                "(0-%d): Redis restarted (run %s -> %s) and that api did not survive to append "
                "again what the crash took back",
                name.decode(),
                _when(seen_ms),
                _when(now_ms - uptime_ms + 1_000),  # uptime counts clock seconds: up to 1 s over
                partitions - 1,
                their_run,
                run_id,
            )

    async def _count_unrecovered(self) -> None:
        self.unrecovered += 1
        await self._redis.hincrby(keys.ingest_recovery(), "unrecovered", 1)


def _span(lost: list[Kept]) -> str:
    if not lost:
        return ""
    first, last = min(k.at_ms for k in lost), max(k.at_ms for k in lost)
    parts = sorted({k.partition for k in lost})
    return f" (accepted {_when(first)} to {_when(last)}, partitions {parts})"
