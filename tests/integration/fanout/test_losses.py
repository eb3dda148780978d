"""Losses and anomalies of the fan-out are never silent, on a real redis-server: entries deleted
from under the group are recorded as lost, a late (zombie) apply is counted, an error reply such
as NOPERM leaves the batch pending without ending the worker, and a cleared error leaves no trace."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence

import anyio
import pytest
from redis.asyncio import Redis

from feeds.inbox import Inbox
from notifier import admin
from notifier.fanout.consumer import FanoutWorker
from notifier.fanout.deadletter import LOST
from notifier.fanout.janitor import Janitor
from notifier.runtime import metrics
from notifier.runtime.eventlog import LoggedEvent
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.events import Like

from ..views import at, inbox_view, pending_total
from .test_consumer import append, likes_and_follows, make_worker, read_without_ack

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def likes(owner: str, n: int) -> list[Like]:
    """`n` likes of post p, each by its own fan, ids `OWNER-N`."""
    return [
        Like(id=f"{owner}-{i}", actor=f"fan{i}", occurred_at=at(i), post="p", owner=owner) for i in range(n)
    ]


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for a worker running in the background; it has no event to wait on."""
    with anyio.fail_after(10):  # `what` names the wait in the traceback
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def test_an_error_cleared_by_a_later_apply_leaves_no_record(redis: Redis, settings: Settings) -> None:
    like = Like(id="l-1", actor="fan0", occurred_at=at(0), post="post-1", owner="eve")
    await redis.set(keys.inbox("eve"), "not a list")  # the first apply fails: WRONGTYPE
    await append(redis, settings, [like])
    worker = make_worker(redis, settings, "w")
    await worker.drain()
    errors = [keys.fanout_errors(p) for p in range(settings.ingest.partitions)]
    assert worker.stats.failed == 1 and sum([await redis.hlen(k) for k in errors]) == 1
    await redis.delete(keys.inbox("eve"))
    for p in range(settings.ingest.partitions):
        await worker.reclaim(p, min_idle_ms=0)
    assert worker.stats.applied == 1 and await pending_total(redis, settings.ingest.partitions) == 0
    assert [await redis.hlen(k) for k in errors] == [0] * len(errors)


async def test_pending_entries_deleted_from_the_log_are_recorded_as_lost(
    redis: Redis, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    partitions = settings.ingest.partitions
    await append(redis, settings, likes_and_follows("ola", 4, 2))
    crashed = await read_without_ack(redis, settings, "crashed")  # another worker's, then reclaimed
    later = [
        Like(id=f"later-{i}", actor=f"fan{i}", occurred_at=at(i), post="p", owner="pia") for i in range(2)
    ]
    await append(redis, settings, later)
    own = []  # this worker's own history when it restarts
    for p in range(partitions):
        reply = await redis.xreadgroup(keys.FANOUT_GROUP, "w", {keys.events(p): ">"}, count=100)
        own += [(p, entry_id) for entry_id, _ in (reply[0][1] if reply else [])]
    deleted = [(p, entry_id) for p, entry_id, _ in crashed[:2]] + own[:1]
    for p, entry_id in deleted:  # an operator's XDEL (or an XTRIM past them)
        await redis.xdel(keys.events(p), entry_id)

    worker = make_worker(redis, settings, "w")
    await worker.drain()  # its history: XREADGROUP 0 answers the deleted entry with no fields
    for p in range(partitions):
        await worker.reclaim(p, min_idle_ms=0)  # XAUTOCLAIM names the other deleted entries
    assert worker.stats.lost == 3
    letters = [f for p in range(partitions) for _, f in await redis.xrange(keys.dead_letters(p))]
    assert sorted(f[b"orig"] for f in letters) == sorted(entry_id for _, entry_id in deleted)
    assert all(f[b"error"].decode().startswith(LOST) for f in letters)
    assert await pending_total(redis, partitions) == 0
    assert worker.stats.applied == len(crashed) + len(own) - 3

    # `notifier dlq`: listed; a redrive has no event to append and says so; a drop clears it
    p = deleted[0][0]
    [(letter_id, letter)] = await redis.xrange(keys.dead_letters(p), count=1)
    ref = f"{p}/{letter_id.decode()}"
    for verb, code, expected in [("redrive", 1, '"error":"no_event"'), ("drop", 0, '"dropped":true')]:
        args = argparse.Namespace(command="dlq", verb=verb, ref=ref, reason="lost: known")
        assert await admin.run_command(args, settings) == code
        assert expected in capsys.readouterr().out
    assert [f[b"orig"] for _, f in await redis.xrange(keys.dropped_letters(p))] == [letter[b"orig"]]


async def test_a_hopeless_entry_deleted_from_the_log_is_recorded_as_lost(
    redis: Redis, settings: Settings
) -> None:
    like = Like(id="l-1", actor="fan0", occurred_at=at(0), post="post-1", owner="eve")
    await redis.set(keys.inbox("eve"), "not a list")  # every apply fails: WRONGTYPE
    await append(redis, settings, [like])
    worker = make_worker(redis, settings, "w")
    await worker.drain()
    partitions = range(settings.ingest.partitions)
    for _ in range(settings.fanout.max_deliveries - 1):
        for p in partitions:
            await worker.reclaim(p, min_idle_ms=0)
    [(p, entry_id)] = [(p, e) for p in partitions for e, _ in await redis.xrange(keys.events(p))]
    await redis.xdel(keys.events(p), entry_id)  # delivered the most times, then deleted
    await worker.reclaim(p, min_idle_ms=0)
    assert (worker.stats.lost, worker.stats.dead_lettered) == (1, 0)
    [(_, letter)] = await redis.xrange(keys.dead_letters(p))
    assert letter[b"orig"] == entry_id and letter[b"error"].decode().startswith(LOST)
    assert await pending_total(redis, settings.ingest.partitions) == 0


class Freeze:
    """A Screen that stops the first batch it sees until thawed (a worker frozen mid-batch)."""

    def __init__(self) -> None:
        self.frozen = anyio.Event()
        self.thaw = anyio.Event()

    async def screen(self, events: Sequence[LoggedEvent]) -> list[LoggedEvent]:
        if not self.frozen.is_set():
            self.frozen.set()
            await self.thaw.wait()
        return list(events)


async def test_a_worker_waking_after_its_batch_was_reclaimed_counts_stale_acks(
    redis: Redis, settings: Settings
) -> None:
    freeze = Freeze()
    one = dataclasses.replace(settings.ingest, partitions=1)
    zombie = FanoutWorker(
        redis, settings.fanout, partitions=1, limits=settings.feeds, consumer="zombie", screen=freeze
    )
    await append(redis, dataclasses.replace(settings, ingest=one), likes_and_follows("ola", 3, 0))
    other = make_worker(redis, dataclasses.replace(settings, ingest=one), "other")
    async with anyio.create_task_group() as tg:
        tg.start_soon(zombie.drain)
        await freeze.frozen.wait()
        assert await other.reclaim(0, min_idle_ms=0) == 3  # the zombie's batch, past min-idle
        freeze.thaw.set()
    assert (zombie.stats.stale_acks, zombie.stats.late_batches) == (3, 1)
    assert other.stats.stale_acks == 0 and await pending_total(redis, 1) == 0
    groups, _, _ = await inbox_view(Inbox(redis, settings.feeds), "ola")
    assert groups[0]["count"] == 3  # the late apply changed nothing


async def test_an_error_reply_on_ack_leaves_the_batch_pending_and_the_worker_alive(
    redis: Redis, settings: Settings, redis_url: str
) -> None:
    user = "fanout-acl-test"
    await redis.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-xack")
    fanout = dataclasses.replace(settings.fanout, claim_interval_ms=50, min_idle_ms=50)
    limited = Redis.from_url(redis_url.replace("redis://", f"redis://{user}:pw@"))
    worker = FanoutWorker(redis=limited, settings=fanout, partitions=1, limits=settings.feeds, consumer="w")
    one = dataclasses.replace(settings.ingest, partitions=1)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(worker.run)
            await append(redis, dataclasses.replace(settings, ingest=one), likes_and_follows("ola", 2, 0))
            await until(lambda: worker.stats.redis_errors >= 2, "NOPERM counted (and retried)")
            assert await pending_total(redis, 1) == 2  # applied, but not acknowledged: still pending
            await redis.execute_command("ACL", "SETUSER", user, "+xack")
            await until(lambda: worker.stats.applied >= 2 and worker.stats.redis_errors < 99, "recovered")
            with anyio.fail_after(10):
                while await pending_total(redis, 1):  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            worker.stop()
    finally:
        await limited.aclose()
        await redis.execute_command("ACL", "DELUSER", user)
    groups, _, _ = await inbox_view(Inbox(redis, settings.feeds), "ola")
    assert groups[0]["count"] == 2


async def test_unread_entries_deleted_from_the_log_are_reported_once(
    redis: Redis, settings: Settings
) -> None:
    """An operator's XTRIM MAXLEN (or XDEL) of entries the fan-out never read: they were lost
    without a word (and the lag gauge showed 0); now one dead letter, an ERROR line and the
    lost counter say how many, once, whichever worker's janitor finds it."""
    one = dataclasses.replace(settings, ingest=dataclasses.replace(settings.ingest, partitions=1))
    stream = keys.events(0)

    await append(redis, one, likes("ola", 2))
    worker = FanoutWorker(redis=redis, settings=one.fanout, partitions=1, limits=one.feeds, consumer="w")
    await worker.drain()  # the group has read both
    await append(redis, one, likes("pia", 5))  # five nobody reads
    janitor, other = (Janitor(redis, one.fanout, partitions=1) for _ in range(2))
    assert await janitor.report_gap(0) is None
    counted = metrics.Metrics()
    metrics.use(counted)
    try:
        await redis.xtrim(stream, maxlen=0, approximate=False)
        gap = await janitor.report_gap(0)
        assert gap is not None and gap.lost == 5, gap
        assert await other.report_gap(0) is None  # reported once
    finally:
        metrics.use(metrics.DISABLED)
    assert counted.registry.get_sample_value("notifier_fanout_lost_total") == 5
    (letter,) = await redis.xrange(keys.dead_letters(0))
    assert letter[1][b"error"].startswith(f"{LOST}: 5 entries deleted from the event log".encode()), letter
    # an XDEL of one unread entry in the middle: Redis tells how many once the group read past it
    await append(redis, one, likes("quin", 3))
    middle = (await redis.xrange(stream))[1][0]
    await redis.xdel(stream, middle)
    await worker.drain()
    gap = await other.report_gap(0)
    assert gap is not None and gap.lost == 1, gap
    # the janitor's own trims take only what was read, and a group made after deletions
    # (recreated from the log's start) owes nothing for them
    await worker.drain()
    await janitor.trim(0, now_ms=2**50)
    assert await janitor.report_gap(0) is None
    await redis.xgroup_destroy(stream, keys.FANOUT_GROUP)
    await worker.drain()
    assert await janitor.report_gap(0) is None
    assert len(await redis.xrange(keys.dead_letters(0))) == 2


async def test_an_upgraded_log_and_a_worker_that_does_not_count_are_no_loss(
    redis: Redis, settings: Settings
) -> None:
    """A group made by a version before the count (upgrading), and a worker of that version
    acknowledging beside this one (a rolling upgrade), leave acknowledged entries out of
    `fanout-done`: they are no loss. The janitor reported them as lost."""
    fanout = dataclasses.replace(settings.fanout, maintenance_interval_ms=100)  # active: idle < 200 ms
    one = dataclasses.replace(
        settings, ingest=dataclasses.replace(settings.ingest, partitions=1), fanout=fanout
    )
    stream = keys.events(0)

    # as the former version left it: a group, entries read and acknowledged, no count
    await append(redis, one, likes("ola", 3))
    await redis.xgroup_create(stream, keys.FANOUT_GROUP, id="0")
    old = await redis.xreadgroup(keys.FANOUT_GROUP, "old-worker", {stream: ">"})
    await redis.xack(stream, keys.FANOUT_GROUP, *[i for i, _ in old[0][1]])
    await append(redis, one, likes("pia", 2))
    worker = FanoutWorker(redis=redis, settings=one.fanout, partitions=1, limits=one.feeds, consumer="new")
    await worker.drain()  # acknowledges (and counts) before the janitor's first round
    janitor = Janitor(redis, one.fanout, partitions=1)
    assert await janitor.report_gap(0) is None
    # the old worker, still running, takes and acknowledges more: not counted, not a loss
    await append(redis, one, likes("quin", 4))
    more = await redis.xreadgroup(keys.FANOUT_GROUP, "old-worker", {stream: ">"})
    await redis.xack(stream, keys.FANOUT_GROUP, *[i for i, _ in more[0][1]])
    assert await janitor.report_gap(0) is None

    async def old_idle_ms() -> int:
        consumers = await redis.xinfo_consumers(stream, keys.FANOUT_GROUP)
        return int(next(c["idle"] for c in consumers if c["name"] == b"old-worker"))

    with anyio.fail_after(5):  # the old worker stops: once it has been idle two rounds, losses count
        while await old_idle_ms() < 200:  # noqa: ASYNC110 (Redis's clock: nothing to wait on)
            await anyio.sleep(0.05)
    assert await janitor.report_gap(0) is None
    await append(redis, one, likes("rae", 3))
    await redis.xtrim(stream, maxlen=0, approximate=False)
    gap = await janitor.report_gap(0)
    assert gap is not None and gap.lost == 3, gap
