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

import hashlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import anyio
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from redis.exceptions import ClusterDownError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from feeds.cluster import REDIS_UNAVAILABLE, Cluster
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


@dataclass(frozen=True, slots=True)
class Runs:
    """Which Redis run holds each partition's log: one server's run id for every partition, or
    on a cluster the run id of the master owning each partition's slot (a promoted replica is a
    new run for that master's partitions)."""

    of_partition: dict[int, str]
    since_ms: int  # when this set of runs began, as far as known

    @property
    def name(self) -> str:
        """The run id, or on a cluster a fingerprint of the masters' run ids (noted in
        `ingest-watch`)."""
        ids = sorted(set(self.of_partition.values()))
        if len(ids) == 1:
            return ids[0]
        return "cluster-" + hashlib.sha1(" ".join(ids).encode()).hexdigest()[:16]


class RestartWatch:
    """A Service of the api role. `restarts`, `reappended` and `unrecovered` count what it saw
    (also added up in Redis, `keys.ingest_recovery`). On a cluster it watches every master that
    owns a partition, and appends again only what the partitions of a changed master took."""

    def __init__(self, redis: Redis, settings: IngestSettings, recent: RecentAppends) -> None:
        self._redis = redis
        self._settings = settings
        self._recent = recent
        self._name = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        # another api gets this long after a restart to note the new run before it is reported
        self._grace_ms = max(5_000, 10 * settings.restart_check_ms)
        # an api notes every restart_check_ms; what it accepted is written within recovery_keep_s
        self._safe_after_ms = 2 * settings.restart_check_ms + int(settings.recovery_keep_s * 1000)
        self._runs: Runs | None = None
        self._noted_ms = 0  # when this api last noted its run in `ingest-watch`
        self._previous: tuple[str, int] | None = None  # the run before, last seen alive then
        self._first_seen: tuple[str, int] = ("", 0)  # a cluster's fingerprint, when first seen
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
                except REDIS_UNAVAILABLE as exc:
                    await backoff.sleep(exc)
                    continue
                with anyio.move_on_after(self._settings.restart_check_ms / 1000):
                    await self._stopping.wait()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                try:  # stopped: nothing of ours is at risk once Redis has written it
                    await self._redis.hdel(keys.ingest_watch(), self._name)
                except REDIS_UNAVAILABLE:
                    pass

    def stop(self) -> None:
        self._stopping.set()

    async def check(self) -> bool:
        """One look at Redis; False if it cannot tell its run id (nothing to watch)."""
        asked_at_s = time.monotonic()
        runs = await self._look()
        if runs is None:
            log.warning("no Redis run id: ingest cannot notice a Redis restart nor append again what it lost")
            self._recent.enabled = False
            return False
        before = self._runs
        if before is not None:
            changed = {p for p, run in runs.of_partition.items() if before.of_partition.get(p) != run}
            if changed and isinstance(self._redis, Cluster):  # a slot moved to another master
                alive = await self._master_runs(self._redis)  # with its keys (MIGRATE): no loss
                changed = {p for p in changed if before.of_partition.get(p) not in alive}
        else:  # no run seen yet, but events taken: the run that took them may be gone already
            changed = set(runs.of_partition) if len(self._recent) else set()
        if changed:
            await self._append_again(changed, before.name if before else "?", runs.name)
        self._runs = runs
        self._recent.confirm(asked_at_s)
        now_ms = int(time.time() * 1000)
        if before is not None and before.name != runs.name:
            # the latest this api saw the run before alive: what another api accepted well
            # before then, Redis had written (`recovery_keep_s` is how long that may take)
            self._previous = (before.name, self._noted_ms)
        await self._redis.hset(keys.ingest_watch(), self._name, f"{runs.name} {now_ms}")
        self._noted_ms = now_ms
        await self._report_abandoned(runs, now_ms, self._previous)
        return True

    async def _look(self) -> Runs | None:
        redis = self._redis
        partitions = range(self._settings.partitions)
        if isinstance(redis, Cluster):
            return await self._look_cluster(redis, partitions)
        try:
            server = await redis.info("server")
        except ResponseError:  # INFO denied by an ACL, or the in-process fake
            server = {}
        if not isinstance(server.get("run_id"), str):
            return None
        since_ms = int(time.time() * 1000) - int(server["uptime_in_seconds"]) * 1000
        return Runs({p: str(server["run_id"]) for p in partitions}, since_ms)

    async def _look_cluster(self, redis: Cluster, partitions: range) -> Runs:
        """Each partition's master's run id, from the slot map as last known; a master that
        does not answer (failing over) refreshes the map and the look is retried."""
        try:
            run_ids: dict[str, str] = {}
            of_partition: dict[int, str] = {}
            for p in partitions:
                node = redis.get_node_from_key(keys.events(p))
                if node.name not in run_ids:
                    server = await redis.node_client(node).execute_command("INFO", "server", "replication")
                    if server.get("role") != "master":
                        raise ClusterDownError(f"{node.name} owns partition {p} but is no master")
                    run_ids[node.name] = str(server["run_id"])
                of_partition[p] = run_ids[node.name]
        except REDIS_UNAVAILABLE:
            await redis.refresh()
            raise
        runs = Runs(of_partition, 0)
        now_ms = int(time.time() * 1000)
        if self._first_seen[0] != runs.name:  # a promoted replica's uptime says nothing of when
            self._first_seen = (runs.name, now_ms)
        return Runs(of_partition, self._first_seen[1])

    async def _master_runs(self, redis: Cluster) -> set[str]:
        """The run ids of every master of the cluster now."""
        runs = set()
        for node in await redis.masters():
            server = await redis.node_client(node).execute_command("INFO", "server", "replication")
            if server.get("role") == "master":
                runs.add(str(server["run_id"]))
        return runs

    async def _append_again(self, partitions: set[int], old: str, new: str) -> None:
        kept = [k for k in self._recent.snapshot() if k.partition in partitions]
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
            "redis restarted (run %s -> %s, partitions %s): of %d events this api accepted lately "
            "there, %d were lost and are appended again%s",
            old,
            new,
            _ranges(partitions),
            len(kept),
            len(lost),
            _span(lost),
        )

    async def _report_abandoned(self, runs: Runs, now_ms: int, alive: tuple[str, int] | None) -> None:
        """Report, once, each api whose note is on an earlier Redis run: it did not survive the
        restart, and what it accepted after its last note may be lost. Unless this api saw that
        run alive long after the note (`alive`: the run, when): that api stopped well before
        the crash, and Redis had written what it accepted."""
        notes = await self._redis.hgetall(keys.ingest_watch())
        for name, note in notes.items():
            their_run, _, seen = note.decode().partition(" ")
            seen_ms = int(seen)
            if their_run == runs.name:
                if now_ms - seen_ms > FORGET_MS:
                    await self._redis.hdel(keys.ingest_watch(), name)
                continue
            if now_ms - runs.since_ms < self._grace_ms or not await self._redis.hdel(
                keys.ingest_watch(), name
            ):
                continue  # it may still be appending again itself; or another api reported it
            if alive is not None and alive[0] == their_run and seen_ms + self._safe_after_ms < alive[1]:
                log.info(
                    "api %s stopped noting at %s, well before Redis restarted (run %s alive at %s): "
                    "nothing it accepted was at risk",
                    name.decode(),
                    _when(seen_ms),
                    their_run,
                    _when(alive[1]),
                )
                continue
            await self._count_unrecovered()
            partitions = self._settings.partitions
            log.error(
                "possibly lost: events accepted by api %s between %s and %s, on any partition "
                "(0-%d): Redis restarted (run %s -> %s) and that api did not survive to append "
                "again what the crash took back",
                name.decode(),
                _when(seen_ms),
                _when(runs.since_ms + 1_000),  # uptime counts clock seconds: up to 1 s over
                partitions - 1,
                their_run,
                runs.name,
            )

    async def _count_unrecovered(self) -> None:
        self.unrecovered += 1
        await self._redis.hincrby(keys.ingest_recovery(), "unrecovered", 1)


def _ranges(partitions: set[int]) -> str:
    return ",".join(str(p) for p in sorted(partitions))


def _span(lost: list[Kept]) -> str:
    if not lost:
        return ""
    first, last = min(k.at_ms for k in lost), max(k.at_ms for k in lost)
    parts = sorted({k.partition for k in lost})
    return f" (accepted {_when(first)} to {_when(last)}, partitions {parts})"
