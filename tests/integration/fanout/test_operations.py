"""Operator paths on a real redis-server: replay (event sourcing), dead-letter redrive and drop,
log trimming that never loses work, the idempotency window's sweep, and the startup checks of
the Redis a role talks to."""

from __future__ import annotations

import dataclasses
import logging

import anyio
import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from feeds.inbox import Inbox
from notifier.api.append import EventLog
from notifier.api.pressure import Pressure
from notifier.fanout.consumer import FanoutWorker
from notifier.fanout.deadletter import DeadLetters
from notifier.fanout.janitor import Janitor
from notifier.fanout.replay import replay
from notifier.runtime.checks import inspect_redis
from notifier.runtime.eventlog import decode_entry, partition_of
from notifier.runtime.settings import Settings
from schemas import keys, layouts
from schemas.errors import Reason
from schemas.events import Event, Like, encode_event

from ...conftest import SettingsFactory, free_port
from ..views import at, inbox_view, snapshot
from .test_consumer import append, likes_and_follows, make_worker

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

USERS = ("bob", "eve")


async def test_replay_over_live_views_changes_nothing(redis: Redis, settings: Settings) -> None:
    await append(redis, settings, likes_and_follows("bob", likes=5, follows=3))
    await make_worker(redis, settings, "w").drain()
    inbox = Inbox(redis, settings.feeds)
    before = await snapshot(redis, inbox, USERS)
    for _ in range(2):
        stats = await replay(redis, partitions=settings.ingest.partitions, limits=settings.feeds, fresh=False)
        assert (stats.events, stats.failed) == (8, 0)
        assert await snapshot(redis, inbox, USERS) == before  # not even a change-log entry


async def test_fresh_replay_rebuilds_the_same_inbox_under_a_new_epoch(
    redis: Redis, settings: Settings
) -> None:
    await append(redis, settings, likes_and_follows("bob", likes=4, follows=2))
    await make_worker(redis, settings, "w").drain()
    inbox = Inbox(redis, settings.feeds)
    before = await inbox_view(inbox, "bob")
    old_cursor = (await inbox.page("bob", None, 1)).cursor
    stats = await replay(redis, partitions=settings.ingest.partitions, limits=settings.feeds, fresh=True)
    assert stats.deleted_keys > 0
    assert await inbox_view(inbox, "bob") == before
    new_cursor = (await inbox.page("bob", None, 1)).cursor
    assert new_cursor.split(".")[0] != old_cursor.split(".")[0]  # clients holding old cursors refetch


async def _dead_letter_one(redis: Redis, settings: Settings, poison: Event) -> str:
    await redis.set(keys.inbox("eve"), "not a sorted set")  # every apply for eve fails
    await append(redis, settings, [poison])
    worker = make_worker(redis, settings, "w")
    await worker.drain()
    letters = DeadLetters(redis)
    for _ in range(settings.fanout.max_deliveries + 1):
        for p in range(settings.ingest.partitions):
            await worker.reclaim(p, min_idle_ms=0)
    [letter] = await letters.entries(settings.ingest.partitions)
    return letter.ref


async def test_a_redriven_dead_letter_applies_once_the_cause_is_fixed(
    redis: Redis, settings: Settings
) -> None:
    poison = Like(id="poison", actor="fan0", occurred_at=at(0), post="post-1", owner="eve")
    ref = await _dead_letter_one(redis, settings, poison)
    letters = DeadLetters(redis)
    shown = await letters.show(ref)
    assert shown is not None and "WRONGTYPE" in shown.fields["error"]
    assert orjson.loads(shown.fields["m"]) == orjson.loads(encode_event(poison))  # the stored event, as JSON

    await redis.delete(keys.inbox("eve"))  # the operator fixes the cause
    position = await letters.redrive(ref)
    assert position is not None and position.startswith(
        f"{partition_of('fan0', settings.ingest.partitions)}/"
    )
    assert await letters.entries(settings.ingest.partitions) == []
    p, _, entry = position.partition("/")
    [(_, fields)] = await redis.xrange(keys.events(int(p)), min=entry, max=entry)
    first = decode_entry(entry.encode(), fields).redriven_from.decode()
    assert first == shown.fields["orig"]  # what moderation's velocity rule counts it as of
    await make_worker(redis, settings, "w").drain()
    groups, unread, _ = await inbox_view(Inbox(redis, settings.feeds), "eve")
    assert [(g["verb"], g["count"]) for g in groups] == [("like", 1)] and unread == 1
    assert await letters.redrive(ref) is None  # gone: a second redrive finds nothing


async def test_a_dropped_dead_letter_keeps_its_reason(redis: Redis, settings: Settings) -> None:
    poison = Like(id="poison", actor="fan0", occurred_at=at(0), post="post-1", owner="eve")
    ref = await _dead_letter_one(redis, settings, poison)
    letters = DeadLetters(redis)
    assert await letters.drop(ref, "spam campaign, not worth delivering")
    assert await letters.entries(settings.ingest.partitions) == []
    p = partition_of("fan0", settings.ingest.partitions)
    [(_, kept)] = await redis.xrange(keys.dropped_letters(p))
    assert kept[b"dropped_reason"] == b"spam campaign, not worth delivering"
    assert b"WRONGTYPE" in kept[b"error"]


async def test_trimming_keeps_every_entry_a_group_still_needs(
    redis: Redis, settings_factory: SettingsFactory
) -> None:
    settings: Settings = settings_factory(
        {"NOTIFIER_INGEST_PARTITIONS": "1", "NOTIFIER_FANOUT_RETAIN_MS": "1"}
    )
    events = likes_and_follows("bob", likes=6, follows=0)
    await append(redis, settings, events)
    stream = keys.events(0)
    await redis.xgroup_create(stream, keys.FANOUT_GROUP, id="0", mkstream=True)
    await redis.xreadgroup(keys.FANOUT_GROUP, "slow", {stream: ">"}, count=2)  # 2 pending, 4 unread
    janitor = Janitor(redis, settings.fanout, partitions=1)
    far_future = 2**41
    assert await janitor.trim(0, now_ms=far_future) == 0  # the oldest entry is still pending
    assert await redis.xlen(stream) == 6

    await make_worker(redis, settings, "slow").drain()  # history first, then the rest: all acked
    assert await janitor.trim(0, now_ms=far_future) == 6  # all processed by the only group
    assert await redis.xlen(stream) == 0
    groups, _, _ = await inbox_view(Inbox(redis, settings.feeds), "bob")
    assert groups[0]["count"] == 6


async def test_trimming_keeps_the_retention_window(redis: Redis, settings: Settings) -> None:
    await append(redis, settings, likes_and_follows("bob", likes=3, follows=0))
    await make_worker(redis, settings, "w").drain()
    janitor = Janitor(redis, settings.fanout, partitions=settings.ingest.partitions)
    trimmed = sum([await janitor.trim(p) for p in range(settings.ingest.partitions)])
    assert trimmed == 0  # processed, but younger than NOTIFIER_FANOUT_RETAIN_MS (a week)


async def test_the_janitor_sweeps_the_idempotency_window(redis: Redis, settings: Settings) -> None:
    """Records older than the window go, younger ones stay; an event whose record went is new
    again (the window is over); a record the append script did not write is left alone."""
    events = likes_and_follows("bob", likes=40, follows=10)
    log = EventLog(redis, settings.ingest)
    await log.append(events, "posts")
    janitor = Janitor(redis, settings.fanout, partitions=settings.ingest.partitions, window_s=60)
    partitions = range(settings.ingest.partitions)
    assert sum([await janitor.sweep_window(p) for p in partitions]) == 0  # all within the window
    await redis.hset(keys.idempotency_bucket(0, 0), "not-ours", "?")
    an_hour_on = (await redis.time())[0] * 1000 + 3_600_000
    assert sum([await janitor.sweep_window(p, now_ms=an_hour_on) for p in partitions]) == 0  # leased
    await next_round(redis, partitions)
    assert sum([await janitor.sweep_window(p, now_ms=an_hour_on) for p in partitions]) == 50
    assert [await redis.hget(keys.idempotency_bucket(0, 0), "not-ours")] == [b"?"]
    assert [a.status for a in await log.append(events[:1], "posts")] == ["accepted"]


async def next_round(redis: Redis, partitions: range) -> None:
    """What the end of a maintenance round does: the sweep's leases expire."""
    await redis.delete(*(keys.idempotency_lease(p) for p in partitions))


async def test_a_big_bucket_is_swept_a_share_a_round(redis: Redis, settings: Settings) -> None:
    """A bucket in Redis's hashtable encoding is scanned across rounds, far enough each round to
    pass every record SWEEPS_PER_WINDOW times a window: the rounds together reach them all, one
    janitor a round, each going on where the last one (any) stopped."""
    bucket = keys.idempotency_bucket(0, 7)
    now_ms = (await redis.time())[0] * 1000
    window_s = 80 * settings.fanout.maintenance_interval_ms // 1000  # 10 rounds a sweep
    old = {
        f"old-{i}": layouts.encode_accepted(f"{now_ms - window_s * 1000 - 1}-{i}", bytes(12))
        for i in range(2_000)
    }
    young = {f"young-{i}": layouts.encode_accepted(f"{now_ms}-{i}", bytes(12)) for i in range(200)}
    await redis.hset(bucket, mapping={**old, **young})
    assert await redis.object("ENCODING", bucket) == b"hashtable"
    janitors = [Janitor(redis, settings.fanout, partitions=1, window_s=window_s) for _ in range(3)]
    rounds: list[int] = []
    while await redis.hlen(bucket) > len(young):
        first, *others = janitors[len(rounds) % 3 :] + janitors[: len(rounds) % 3]
        rounds.append(await first.sweep_window(0, now_ms=now_ms))
        assert [await o.sweep_window(0, now_ms=now_ms) for o in others] == [0, 0]  # its round
        await next_round(redis, range(1))
        assert len(rounds) <= 12
    assert sum(rounds) == len(old) and len(rounds) >= 8 and max(rounds) < len(old) // 4
    assert sorted(await redis.hkeys(bucket)) == sorted(k.encode() for k in young)


async def test_a_growing_bucket_is_swept_all_the_same(redis: Redis, settings: Settings) -> None:
    """Every bucket starts empty at the upgrade and grows: a round's share follows its size, so
    a pass still ends within the rounds a window allows (a share fixed as the pass began, a few
    records, never caught up with the table)."""
    bucket = keys.idempotency_bucket(0, 3)
    now_ms = (await redis.time())[0] * 1000
    window_s = 80 * settings.fanout.maintenance_interval_ms // 1000  # 10 rounds a pass
    past = f"{now_ms - window_s * 1000 - 1}"
    old = {f"old-{i}": layouts.encode_accepted(f"{past}-{i}", bytes(12)) for i in range(600)}
    await redis.hset(bucket, mapping=old)  # past 512 fields: a hashtable, scanned a share at a time
    janitor = Janitor(redis, settings.fanout, partitions=1, window_s=window_s)
    for n in range(14):
        young = {f"young-{n}-{i}": layouts.encode_accepted(f"{now_ms}-{i}", bytes(12)) for i in range(2_000)}
        await redis.hset(bucket, mapping=young)
        await janitor.sweep_window(0, now_ms=now_ms)
        await next_round(redis, range(1))
    assert not [k for k in await redis.hkeys(bucket) if k.startswith(b"old-")]


async def test_the_sweep_frees_memory_at_maxmemory(redis: Redis, settings: Settings) -> None:
    """Redis at maxmemory (noeviction) refuses the lease and the places: the sweep deletes all
    the same, as the keys' own TTLs did before."""
    events = likes_and_follows("bob", likes=30, follows=0)
    await EventLog(redis, settings.ingest).append(events, "posts")
    janitor = Janitor(redis, settings.fanout, partitions=settings.ingest.partitions, window_s=60)
    used = (await redis.info("memory"))["used_memory"]
    await redis.config_set("maxmemory", used // 2)
    try:
        an_hour_on = (await redis.time())[0] * 1000 + 3_600_000
        swept = [await janitor.sweep_window(p, now_ms=an_hour_on) for p in range(settings.ingest.partitions)]
    finally:
        await redis.config_set("maxmemory", 0)
    assert sum(swept) == 30


async def test_a_redis_that_may_evict_is_refused(redis: Redis, settings: Settings) -> None:
    """At start a role refuses it; set while roles run, ingest refuses events (they could be
    evicted) until it is noeviction again."""
    pressure = Pressure(redis, settings.ingest)
    assert await pressure.sample() is None
    await redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        found = await inspect_redis(redis)
        refusal = await pressure.sample()
    finally:
        await redis.config_set("maxmemory-policy", "noeviction")
    assert any("maxmemory-policy" in e for e in found.errors)
    assert refusal is not None and "maxmemory-policy allkeys-lru" in refusal.detail, refusal
    assert await pressure.sample() is None
    ok = await inspect_redis(redis)
    assert ok.errors == []
    assert any("AOF is off" in w for w in ok.warnings)  # the suite's server runs without AOF


async def test_a_redis_turned_replica_is_refused_quietly(redis: Redis, settings: Settings) -> None:
    """A master demoted to a replica refuses every write: ingest refuses events from its next
    sample, with one line, instead of a warning per refused append."""
    pressure = Pressure(redis, settings.ingest)
    assert await pressure.sample() is None
    await redis.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # a master nobody runs
    try:
        refusal = await pressure.sample()
    finally:
        await redis.execute_command("REPLICAOF", "NO", "ONE")
    assert refusal is not None and refusal.reason is Reason.UNAVAILABLE, refusal
    assert "read-only replica" in refusal.detail
    assert await pressure.sample() is None


async def test_idle_consumers_holding_nothing_are_reaped_and_forgotten(
    redis: Redis, settings: Settings
) -> None:
    fanout = dataclasses.replace(settings.fanout, reap_idle_ms=100)
    one = dataclasses.replace(
        settings, ingest=dataclasses.replace(settings.ingest, partitions=1), fanout=fanout
    )
    await append(redis, one, likes_and_follows("bob", likes=2, follows=0))
    await FanoutWorker(redis=redis, settings=fanout, partitions=1, limits=one.feeds, consumer="gone").drain()
    stream = keys.events(0)
    await redis.xadd(stream, {"e": "x"})
    await redis.xreadgroup(keys.FANOUT_GROUP, "busy", {stream: ">"})  # holds one pending entry
    janitor = Janitor(redis, fanout, partitions=1)
    assert await janitor.reap(0) == 0  # both active a moment ago
    with anyio.fail_after(5):
        while min(c["idle"] for c in await redis.xinfo_consumers(stream, keys.FANOUT_GROUP)) <= 100:  # noqa: ASYNC110
            await anyio.sleep(0.05)  # Redis's clock: nothing to wait on
    assert await janitor.reap(0) == 1
    assert [c["name"] for c in await redis.xinfo_consumers(stream, keys.FANOUT_GROUP)] == [b"busy"]
    assert not await redis.sismember(keys.fanout_counting(0), "gone")


async def test_an_ack_refused_at_maxmemory_leaves_its_entries_pending_and_uncounted(
    redis: Redis, settings: Settings
) -> None:
    """At maxmemory Redis refuses INCRBY but not XACK: acknowledged as separate commands, the
    entries were acknowledged uncounted, and once memory was raised the janitor reported them as
    lost (a dead letter without an event, notifier_fanout_lost_total) though they were applied.
    One atomic call refuses all of it or does all of it."""
    await EventLog(redis, settings.ingest).append(likes_and_follows("bob", likes=10, follows=0), "posts")
    letters = DeadLetters(redis)
    lengths = [await redis.xlen(keys.events(p)) for p in range(settings.ingest.partitions)]
    partition = next(p for p, n in enumerate(lengths) if n)
    stream = keys.events(partition)
    await letters.create_group(partition, "w1")
    [(_, rows)] = await redis.xreadgroup(keys.FANOUT_GROUP, "w1", {stream: ">"})
    ids = [entry for entry, _ in rows]
    done = int(await redis.get(keys.fanout_done(partition)) or 0)
    used = (await redis.info("memory"))["used_memory"]
    await redis.config_set("maxmemory", used // 2)
    try:
        with pytest.raises(OutOfMemoryError):
            await letters.acknowledge_many({partition: ids})
    finally:
        await redis.config_set("maxmemory", 0)
    assert (await redis.xpending(stream, keys.FANOUT_GROUP))["pending"] == len(ids)
    assert int(await redis.get(keys.fanout_done(partition)) or 0) == done
    assert await letters.acknowledge_many({partition: ids}) == {partition: len(ids)}
    assert await letters.acknowledge_many({partition: ids}) == {partition: 0}  # another worker's, too late
    assert int(await redis.get(keys.fanout_done(partition))) == done + len(ids)
    assert await letters.unread_deleted(partition, 60_000) is None  # nothing reported lost


async def test_events_in_a_partition_no_worker_reads_are_reported(
    redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """An api with a larger NOTIFIER_INGEST_PARTITIONS than the workers: its events past their
    partitions would wait for ever, unseen but for this error."""
    janitor = Janitor(redis, settings.fanout, partitions=2)
    assert await janitor.report_unread_partition() == 0
    await redis.xadd(keys.events(2), {"e": "x"})
    with caplog.at_level(logging.ERROR, logger="notifier.fanout.janitor"):
        assert await janitor.report_unread_partition() == 1
        assert await janitor.report_unread_partition() == 1  # logged once in UNREAD_REPORT_S
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "1 events in partition 2, which this worker does not read (NOTIFIER_INGEST_PARTITIONS=2): "
        "give every api and worker the same count"
    ], said
