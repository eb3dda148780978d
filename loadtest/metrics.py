"""Measurements: latency histograms (HdrHistogram, microseconds), and a once-a-second sample of
the consumer group's lag, Redis memory, and CPU/RSS of every process of the run."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psutil
from hdrh.histogram import HdrHistogram
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from feeds.cluster import Cluster
from schemas import keys

MAX_US: Final = 3_600_000_000  # one hour
PERCENTILES: Final = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, MAX_US, 3)


def decoded(encoded: bytes) -> HdrHistogram:
    h = new_histogram()
    if encoded:
        h.decode_and_add(encoded)
    return h


def summary_ms(h: HdrHistogram) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/mean in milliseconds, and the count."""
    if h.get_total_count() == 0:
        return {"count": 0}
    out: dict[str, float] = {"count": h.get_total_count()}
    for p in PERCENTILES:
        out[f"p{p:g}"] = h.get_value_at_percentile(p) / 1000
    out["max"] = h.get_max_value() / 1000
    out["mean"] = round(h.get_mean_value() / 1000, 3)
    return out


@dataclass(frozen=True, slots=True)
class GroupState:
    lag: int  # entries not yet delivered to the group
    pending: int  # delivered, not acknowledged
    read: int  # entries-read: how many the group has consumed, ever
    backlog_by_partition: tuple[int, ...] = ()  # lag + pending of each partition


async def consumer_groups(redis: Redis, partitions: int) -> GroupState:
    """The fan-out group's state summed over every partition of the event log."""
    lag = pending = read = 0
    by_partition = []
    for p in range(partitions):
        try:
            groups = await redis.xinfo_groups(keys.events(p))
        except ResponseError:  # no stream yet
            groups = []
        backlog = 0
        for g in groups:
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            if name != keys.FANOUT_GROUP:
                continue
            # `lag` is nil when Redis cannot tell (after deletions): count it as unknown-but-present
            group_lag = int(g["lag"]) if g.get("lag") is not None else 1
            lag += group_lag
            pending += int(g["pending"])
            read += int(g.get("entries-read") or 0)
            backlog = group_lag + int(g["pending"])
        by_partition.append(backlog)
    return GroupState(lag, pending, read, tuple(by_partition))


async def _nodes(redis: Redis) -> list[Redis]:
    """A cluster's masters, else `redis` itself."""
    if isinstance(redis, Cluster):
        return [redis.node_client(node) for node in await redis.masters()]
    return [redis]


async def used_memory(redis: Redis) -> int:
    """Bytes Redis holds; on a cluster, summed over the masters."""
    return sum([int((await node.info("memory"))["used_memory"]) for node in await _nodes(redis)])


@dataclass(frozen=True, slots=True)
class Footprint:
    used: int  # used_memory
    expiry_table: int  # the keys' expiry table (MEMORY STATS), in no key's MEMORY USAGE


async def footprint(redis: Redis) -> Footprint:
    """Bytes Redis holds, and those of its expiry table; on a cluster, summed over the masters."""
    used = expiry = 0
    for node in await _nodes(redis):
        stats = await node.memory_stats()
        used += int(stats["total.allocated"])
        expiry += sum(
            int(db["overhead.hashtable.expires"]) for name, db in stats.items() if name.startswith("db.")
        )
    return Footprint(used, expiry)


@dataclass(slots=True)
class InboxFill:
    """Users whose inbox is at its cap or under it: how many, the groups they hold (each group is
    one notification a user can see) and the bytes of their registers, records and change logs."""

    users: int = 0
    groups: int = 0
    bytes: int = 0

    def summary(self) -> dict[str, Any]:
        per = round(self.bytes / self.groups, 1) if self.groups else None
        counts = {"users": self.users, "groups": self.groups, "bytes": self.bytes}
        return {**counts, "bytes_per_notification": per}


async def inbox_fill(redis: Redis, users: Sequence[str], max_groups: int) -> tuple[InboxFill, InboxFill]:
    """(at the cap, under it) over `users`: an inbox holding `max_groups` groups has dropped
    older ones, whose registers stay until the horizon and whose removals are in its change log."""
    full, under = InboxFill(), InboxFill()
    for start in range(0, len(users), 500):
        chunk = users[start : start + 500]
        async with redis.pipeline(transaction=False) as pipe:
            for user in chunk:
                pipe.llen(keys.inbox(user))  # one record per group
                for key in (keys.toggles(user), keys.inbox(user), keys.changelog(user)):
                    pipe.memory_usage(key, samples=0)
            replies = await pipe.execute()
        for n in range(len(chunk)):
            groups, *sizes = replies[4 * n : 4 * n + 4]
            fill = full if int(groups) >= max_groups else under
            fill.users += 1
            fill.groups += int(groups)
            fill.bytes += sum(int(size or 0) for size in sizes)
    return full, under


def family(key: bytes) -> str:
    text = key.decode(errors="replace")
    return text[: text.index("{")] if "{" in text else text


# What each stored byte is for, by key family (families not named here are "other"): the
# notifications themselves, the event log and ingest's idempotency window, moderation's indexes.
KIND_OF_FAMILY: Final = {
    **{
        family(make("u").encode()): "inbox"
        for make in (keys.toggles, keys.inbox, keys.changelog, keys.read_marks, keys.group_actors_prefix)
    },
    family(keys.events(0).encode()): "event log",
    family(keys.idempotency(0, "e").encode()): "event log",
    family(keys.dedupe(0, "e").encode()): "event log",
    **{
        family(make("x").encode()): "moderation"
        for make in (keys.mod_content, keys.mod_ref, keys.mod_duplicates)
    },
}


def bytes_by_kind(
    families: Mapping[str, Mapping[str, Any]], before: Footprint, after: Footprint, stored: int
) -> dict[str, Any]:
    """The families' MEMORY USAGE summed by what they are for, the growth of the expiry table
    (~33 bytes a key with a TTL), and what neither accounts for (the rest of the growth: the main
    key table's buckets, buffers, scripts), in bytes and per `stored` notification."""
    kinds: dict[str, int] = {}
    for name, row in families.items():
        kind = KIND_OF_FAMILY.get(name, "other")
        kinds[kind] = kinds.get(kind, 0) + int(row["bytes"])
    kinds["expiry table"] = after.expiry_table - before.expiry_table
    kinds["not in any key"] = after.used - before.used - sum(kinds.values())
    return {
        kind: {"bytes": n, "bytes_per_notification": round(n / stored, 1) if stored else None}
        for kind, n in kinds.items()
    }


async def key_families(redis: Redis, stored: int) -> dict[str, dict[str, Any]]:
    """Per key family (the text before the hash tag): keys, MEMORY USAGE bytes and their share
    per `stored` notification, encodings; on a cluster, summed over the masters. Largest first."""
    out: dict[str, dict[str, Any]] = {}
    for node in await _nodes(redis):
        await _count_families(node, out)
    for row in out.values():
        row["encodings"] = dict(row["encodings"])
        row["bytes_per_notification"] = round(row["bytes"] / stored, 1) if stored else None
    return dict(sorted(out.items(), key=lambda kv: -int(kv[1]["bytes"])))


async def _count_families(redis: Redis, out: dict[str, dict[str, Any]]) -> None:
    batch: list[bytes] = []

    async def flush() -> None:
        async with redis.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.memory_usage(key, samples=0)
                pipe.object("encoding", key)
            replies = await pipe.execute()
        for key, size, encoding in zip(batch, replies[::2], replies[1::2], strict=True):
            row = out.setdefault(family(key), {"keys": 0, "bytes": 0, "encodings": Counter()})
            row["keys"] += 1
            row["bytes"] += int(size or 0)
            row["encodings"][encoding.decode() if isinstance(encoding, bytes) else str(encoding)] += 1
        batch.clear()

    async for key in redis.scan_iter(count=1_000):
        batch.append(key)
        if len(batch) >= 1_000:
            await flush()
    if batch:
        await flush()


@dataclass(slots=True)
class ProcessMeter:
    """CPU (% of one core) and RSS per role; a role may have several processes (summed)."""

    roles: dict[str, list[psutil.Process]] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)
    cpu_s_start: dict[str, float] = field(default_factory=dict)

    def watch(self, role: str, pid: int) -> None:
        try:
            proc = psutil.Process(pid)
            proc.cpu_percent(None)  # prime: the next call measures from now
        except psutil.Error:
            return
        self.roles.setdefault(role, []).append(proc)

    def watch_self(self, child_pids: Sequence[int]) -> None:
        self.watch("generator", os.getpid())
        for pid in child_pids:
            self.watch("generator", pid)

    def sample(self) -> dict[str, dict[str, float]]:
        out = {}
        for role, procs in self.roles.items():
            cpu = rss = 0.0
            for proc in procs:
                try:
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_rss[role] = max(self.peak_rss.get(role, 0), int(rss))
            out[role] = {"cpu_pct": round(cpu, 1), "rss_mb": round(rss / 2**20, 1)}
        return out

    def cpu_seconds(self) -> dict[str, float]:
        out = {}
        for role, procs in self.roles.items():
            total = 0.0
            for proc in procs:
                try:
                    t = proc.cpu_times()
                    total += t.user + t.system
                except psutil.Error:
                    continue
            out[role] = total
        return out


def cpu_used(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {role: round(after[role] - before.get(role, 0.0), 2) for role in after}


def averages(timeline: Sequence[Mapping[str, Any]], role: str) -> dict[str, float]:
    cpu = [row["processes"][role]["cpu_pct"] for row in timeline if role in row.get("processes", {})]
    rss = [row["processes"][role]["rss_mb"] for row in timeline if role in row.get("processes", {})]
    if not cpu:
        return {}
    return {
        "cpu_avg_pct": round(sum(cpu) / len(cpu), 1),
        "cpu_max_pct": max(cpu),
        "rss_max_mb": max(rss),
    }


def process_summary(
    meter: ProcessMeter, timeline: Sequence[Mapping[str, Any]], cpu_s: Mapping[str, float], seconds: float
) -> dict[str, dict[str, Any]]:
    """Per role: CPU over the measured `seconds` (`cpu_s` of them; `cpu_pct` of one core), the
    once-a-second averages and peaks of the `timeline` rows, and the peak RSS."""
    out: dict[str, dict[str, Any]] = {}
    for role in meter.roles:
        used = cpu_s.get(role)
        out[role] = {
            **averages(timeline, role),
            "cpu_s": used,
            "cpu_pct": round(100 * used / seconds, 1) if used is not None and seconds > 0 else None,
            "rss_peak_mb": round(meter.peak_rss.get(role, 0) / 2**20, 1),
        }
    return out


# what the load generator itself sends while sampling (the groups' lag, memory), not the product's
_SAMPLER_COMMANDS: Final = frozenset({"xinfo|groups", "info", "config|resetstat"})


CommandStats = dict[str, dict[str, int]]  # command -> calls, usec (INFO commandstats)


async def command_stats(redis: Redis) -> CommandStats:
    """INFO commandstats' calls and µs per command, the sampler's own left out."""
    stats = await redis.info("commandstats")
    out = {}
    for name, row in stats.items():
        command = name.removeprefix("cmdstat_")
        if command not in _SAMPLER_COMMANDS:
            out[command] = {"calls": int(row["calls"]), "usec": int(row["usec"])}
    return out


def commands_per_event(before: CommandStats, after: CommandStats, events: int) -> dict[str, dict[str, float]]:
    """Calls and µs of each command between two `command_stats`, per event, the costliest first.
    A script's own calls are counted both under their names and inside its EVALSHA's time."""
    rows = {}
    for name, row in after.items():
        was = before.get(name, {"calls": 0, "usec": 0})
        calls, usec = row["calls"] - was["calls"], row["usec"] - was["usec"]
        if calls > 0 and events:
            per = {"per_event": round(calls / events, 2), "us_per_event": round(usec / events, 2)}
            rows[name] = {"calls": calls, **per}
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["us_per_event"]))
