"""FanoutWorker against a real redis-server: crash and reclaim, redelivery of whole batches,
dead-lettering of an event that can never apply, and batches of a partition overlapping."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import anyio
import pytest
from redis.asyncio import Redis

from feeds.inbox import Inbox
from feeds.items import plan
from notifier.api.append import EventLog
from notifier.fanout.consumer import FanoutWorker
from notifier.runtime.eventlog import LoggedEvent, decode_entry, partition_of
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.events import Event, Follow, Like

from ..views import at, inbox_view, logged_changes, pending_total, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def make_worker(redis: Redis, settings: Settings, consumer: str) -> FanoutWorker:
    return FanoutWorker(
        redis,
        settings.fanout,
        partitions=settings.ingest.partitions,
        limits=settings.feeds,
        consumer=consumer,
    )


def likes_and_follows(owner: str, likes: int, follows: int) -> list[Event]:
    events: list[Event] = [
        Like(id=f"like-{i}", actor=f"fan{i}", occurred_at=at(i), post="post-1", owner=owner)
        for i in range(likes)
    ]
    events += [
        Follow(id=f"follow-{i}", actor=f"fan{i}", occurred_at=at(100 + i), user=owner) for i in range(follows)
    ]
    return events


async def append(redis: Redis, settings: Settings, events: Sequence[Event]) -> None:
    appended = await EventLog(redis, settings.ingest).append(events, "posts")
    assert [a.status for a in appended] == ["accepted"] * len(events)


async def read_without_ack(redis: Redis, settings: Settings, consumer: str) -> list[tuple[int, bytes, Event]]:
    """What a consumer that dies right after XREADGROUP leaves behind: every entry pending on it."""
    got: list[tuple[int, bytes, Event]] = []
    for p in range(settings.ingest.partitions):
        stream = keys.events(p)
        await redis.xgroup_create(stream, keys.FANOUT_GROUP, id="0", mkstream=True)
        reply = await redis.xreadgroup(keys.FANOUT_GROUP, consumer, {stream: ">"}, count=1000)
        for entry_id, fields in reply[0][1] if reply else []:
            got.append((p, entry_id, decode_entry(entry_id, fields).event))
    return got


async def assert_applied_exactly_once(
    redis: Redis, inbox: Inbox, owner: str, likes: int, follows: int
) -> None:
    groups, unread, _ = await inbox_view(inbox, owner)
    by_verb = {g["verb"]: g for g in groups}
    assert sorted(by_verb) == ["follow", "like"]
    assert by_verb["like"]["count"] == likes
    assert by_verb["like"]["actors"] == [f"fan{i}" for i in range(likes - 1, likes - 4, -1)]
    assert by_verb["follow"]["count"] == follows
    assert unread == 2
    followers = await redis.zrange(keys.followers(owner), 0, -1)
    assert {f.decode() for f in followers} == {f"fan{i}" for i in range(follows)}
    # the log holds one change per actor added (a replay renders each from the current group):
    # an item applied twice would have logged one more
    changes = await logged_changes(redis, owner)
    for verb, n in (("like", likes), ("follow", follows)):
        upserts = [c["group"] for c in changes if c["op"] == "upsert" and c["group"]["verb"] == verb]
        assert len(upserts) == n
        assert all(group == by_verb[verb] for group in upserts)


async def test_a_batch_abandoned_mid_apply_is_reclaimed_by_another_worker_and_applied_once(
    redis: Redis, settings: Settings
) -> None:
    events = likes_and_follows("ann", likes=8, follows=4)
    await append(redis, settings, events)
    taken = await read_without_ack(redis, settings, "worker-a")
    assert len(taken) == len(events)

    # worker-a got half of the batch into the views, then died: nothing acked
    inbox = Inbox(redis, settings.feeds)
    half = [op for _, _, event in taken[: len(taken) // 2] for op in plan(event, settings.feeds)]
    assert await inbox.apply(half) == [None] * len(half)
    assert await pending_total(redis, settings.ingest.partitions) == len(events)

    survivor = make_worker(redis, settings, "worker-b")
    claimed = 0
    for p in range(settings.ingest.partitions):
        claimed += await survivor.reclaim(p, min_idle_ms=0)
    assert claimed == len(events)
    await survivor.drain()

    assert await pending_total(redis, settings.ingest.partitions) == 0
    assert survivor.stats.applied == len(events)
    await assert_applied_exactly_once(redis, inbox, "ann", likes=8, follows=4)


async def test_a_restarted_worker_finishes_its_own_pending_entries_first(
    redis: Redis, settings: Settings
) -> None:
    events = likes_and_follows("ben", likes=5, follows=3)
    await append(redis, settings, events)
    await read_without_ack(redis, settings, "worker-0")  # the process died holding the batch

    restarted = make_worker(redis, settings, "worker-0")  # same stable name after the restart
    assert await restarted.drain() == len(events)

    assert await pending_total(redis, settings.ingest.partitions) == 0
    await assert_applied_exactly_once(redis, Inbox(redis, settings.feeds), "ben", likes=5, follows=3)


async def test_redelivering_every_batch_changes_no_view(redis: Redis, settings: Settings) -> None:
    events = likes_and_follows("cy", likes=6, follows=3) + [
        Like(id=f"dee-like-{i}", actor=f"fan{i}", occurred_at=at(i), post="post-9", owner="dee")
        for i in range(4)
    ]
    await append(redis, settings, events)
    worker = make_worker(redis, settings, "worker-0")
    assert await worker.drain() == len(events)
    inbox = Inbox(redis, settings.feeds)
    before = await snapshot(redis, inbox, ["cy", "dee"])

    for p in range(settings.ingest.partitions):  # rewind the group: every entry is delivered again
        await redis.xgroup_setid(keys.events(p), keys.FANOUT_GROUP, "0")
    assert await worker.drain() == len(events)

    assert await snapshot(redis, inbox, ["cy", "dee"]) == before
    assert await pending_total(redis, settings.ingest.partitions) == 0


async def test_a_poison_event_is_dead_lettered_after_max_deliveries_and_the_rest_apply(
    redis: Redis, settings: Settings
) -> None:
    poison = Like(id="poison", actor="fan0", occurred_at=at(0), post="post-1", owner="eve")
    others: list[Event] = [
        Like(id="ok-1", actor="fan0", occurred_at=at(1), post="post-2", owner="fay"),
        Like(id="ok-2", actor="fan1", occurred_at=at(2), post="post-3", owner="fay"),
        Follow(id="ok-3", actor="fan2", occurred_at=at(3), user="gus"),
    ]
    await redis.set(keys.inbox("eve"), "not a sorted set")  # every apply for eve fails: WRONGTYPE
    await append(redis, settings, [poison, *others])
    partitions = settings.ingest.partitions
    dead = keys.dead_letters(partition_of(poison.actor, partitions))
    max_deliveries = settings.fanout.max_deliveries

    worker = make_worker(redis, settings, "worker-0")
    await worker.drain()
    rounds = 0
    while not await redis.xlen(dead):
        rounds += 1
        assert rounds <= max_deliveries, "never dead-lettered"
        for p in range(partitions):
            await worker.reclaim(p, min_idle_ms=0)

    assert worker.stats.failed == max_deliveries  # really attempted that often
    assert worker.stats.dead_lettered == 1
    [(_, letter)] = await redis.xrange(dead)
    assert letter[b"deliveries"] == str(max_deliveries).encode()
    assert b"WRONGTYPE" in letter[b"error"]
    assert decode_entry(letter[b"orig"], letter).event == poison
    assert await pending_total(redis, partitions) == 0
    for p in range(partitions):
        assert await redis.hlen(keys.fanout_errors(p)) == 0
        if keys.dead_letters(p) != dead:
            assert await redis.xlen(keys.dead_letters(p)) == 0

    inbox = Inbox(redis, settings.feeds)
    fay, fay_unread, _ = await inbox_view(inbox, "fay")
    assert sorted(g["post"] for g in fay) == ["post-2", "post-3"]
    assert fay_unread == 2
    gus, _, _ = await inbox_view(inbox, "gus")
    assert [(g["verb"], g["actors"]) for g in gus] == [("follow", ["fan2"])]
    assert await redis.type(keys.inbox("eve")) == b"string"  # untouched, nothing half-applied leaks
    assert await redis.llen(keys.changelog("eve")) == 0


class HoldFirstBatch:
    """A Screen that keeps the first batch it sees until released, and passes the others; it
    notes every batch's event ids."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.holding = anyio.Event()
        self.held: list[str] = []
        self.batches: list[list[str]] = []

    async def screen(self, events: Sequence[LoggedEvent]) -> list[LoggedEvent]:
        self.batches.append([e.event.id for e in events])
        if not self.held:
            self.held = self.batches[0]
            self.holding.set()
            await self.release.wait()
        return list(events)


async def applied(worker: FanoutWorker, n: int) -> None:
    with anyio.fail_after(10):
        while worker.stats.applied < n:  # noqa: ASYNC110  # the worker has no event to wait on
            await anyio.sleep(0.01)


async def test_a_slow_batch_does_not_hold_up_the_next_of_its_partition(
    redis: Redis, settings: Settings
) -> None:
    fanout = dataclasses.replace(settings.fanout, batch_size=1, batches_in_flight=2)
    screen = HoldFirstBatch()
    worker = FanoutWorker(
        redis, fanout, partitions=1, limits=settings.feeds, consumer="w1", blocking=True, screen=screen
    )
    one_partition = dataclasses.replace(settings.ingest, partitions=1)
    await EventLog(redis, one_partition).append(likes_and_follows("ola", 2, 0), "posts")
    inbox = Inbox(redis, settings.feeds)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        await applied(worker, 1)  # the second like, past the held first
        groups, _, _ = await inbox_view(inbox, "ola")
        assert screen.held == ["like-0"] and groups[0]["actors"] == ["fan1"]
        screen.release.set()
        await applied(worker, 2)
        worker.stop()
    groups, _, _ = await inbox_view(inbox, "ola")
    assert groups[0]["count"] == 2 and await pending_total(redis, 1) == 0


async def test_a_caught_up_partition_reads_on_once_the_batch_in_hand_is_applied(
    redis: Redis, settings: Settings
) -> None:
    """Batches overlap only while a partition is behind (its last read filled a batch): caught
    up, what arrives while a batch is applied waits, and comes as one batch after it."""
    fanout = dataclasses.replace(settings.fanout, batch_size=10, batches_in_flight=4)
    screen = HoldFirstBatch()
    worker = FanoutWorker(
        redis, fanout, partitions=1, limits=settings.feeds, consumer="w1", blocking=True, screen=screen
    )
    log = EventLog(redis, dataclasses.replace(settings.ingest, partitions=1))
    first, second, third = likes_and_follows("ola", 3, 0)
    await log.append([first], "posts")
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        with anyio.fail_after(10):
            await screen.holding.wait()
        await log.append([second], "posts")
        await log.append([third], "posts")
        screen.release.set()
        await applied(worker, 3)
        worker.stop()
    assert screen.batches == [["like-0"], ["like-1", "like-2"]]
    assert await pending_total(redis, 1) == 0


async def test_batches_of_two_partitions_processed_as_one_keep_entries_of_the_same_id_apart(
    redis: Redis, settings: Settings
) -> None:
    """Entry ids are unique in a stream, not across streams: two partitions' batches processed
    as one (what the worker does with batches ready at the same moment) may hold the same id.
    Each is applied and acknowledged in its own partition, and a failure stays with its own."""
    from notifier.runtime.eventlog import entry_fields

    worker = make_worker(redis, settings, "w")
    ok = Like(id="ok", actor="fan0", occurred_at=at(1), post="post-1", owner="ann")
    bad = Like(id="bad", actor="fan1", occurred_at=at(2), post="post-2", owner="eve")
    await redis.set(keys.inbox("eve"), "not a list")  # eve's apply fails: WRONGTYPE
    batches = []
    for p, event in ((0, ok), (1, bad)):
        stream = keys.events(p)
        await redis.xgroup_create(stream, keys.FANOUT_GROUP, id="0", mkstream=True)
        await redis.xadd(stream, entry_fields(event, "posts", 1_000), id="5-1")
        [(_, [(entry_id, fields)])] = await redis.xreadgroup(keys.FANOUT_GROUP, "w", {stream: ">"})
        assert entry_id == b"5-1"
        batches.append((p, [(entry_id, [x for pair in fields.items() for x in pair])]))  # as Redis sends it
    assert await worker._process_many(batches) == [[], []]  # both in one batch

    assert await redis.xpending(keys.events(0), keys.FANOUT_GROUP) == {
        "pending": 0, "min": None, "max": None, "consumers": []
    }  # fmt: skip
    assert (await redis.xpending(keys.events(1), keys.FANOUT_GROUP))["pending"] == 1
    assert await redis.hkeys(keys.fanout_errors(0)) == []
    assert await redis.hkeys(keys.fanout_errors(1)) == [b"5-1"]
    assert worker.stats.applied == 1 and worker.stats.failed == 1
    groups, unread, _ = await inbox_view(Inbox(redis, settings.feeds), "ann")
    assert [(g["verb"], g["actors"]) for g in groups] == [("like", ["fan0"])] and unread == 1
