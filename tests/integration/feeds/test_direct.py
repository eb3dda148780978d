"""The fan-out's direct apply (feeds/direct.py) on a real redis-server: the items of users nobody
listens to are applied without the script; a listened user's go through the script and are
pushed; a write between its reads and its commit hands the batch to the script; a client that
subscribes in between is told to re-read the log; two batches of the worker for one user take
turns. The views always end as the script's would
(tests/integration/feeds/test_differential.py checks that on random histories)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis as sync_redis
from redis.asyncio import Redis

from feeds import changelog, direct
from feeds.inbox import Inbox
from feeds.items import ItemOp, plan
from feeds.limits import FeedLimits
from schemas import keys, layouts
from schemas.cursor import START
from schemas.events import Event
from tests.unit.builders import comment, follow, like

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

LIMITS = FeedLimits()


def ops_for(owner: str) -> list[ItemOp]:
    events: list[Event] = [
        like("ana", "p1", owner, 10),
        like("bo", "p1", owner, 11),
        follow("cy", owner, 12),
        comment("dee", "c1", "p1", owner, 13, text="nice"),
    ]
    return [op for e in events for op in plan(e, LIMITS)]


async def script_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def views(inbox: Inbox, user: str) -> tuple[list[Any], int, list[bytes]]:
    page = await inbox.page(user, None, 50)
    log = await changelog.read_after(inbox.redis, user, START, 100)
    assert isinstance(log, changelog.Replay)
    return [orjson.loads(g) for g in page.groups], page.unread, [c.payload for c in log.changes]


@pytest.fixture
def between(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Callable[[], None]]]:
    """Callables run once, after the direct apply's reads and before its commit."""
    hooks: list[Callable[[], None]] = []
    finish = direct._Apply.finish

    def finish_then(self: direct._Apply, shown: int) -> None:
        finish(self, shown)
        while hooks:
            hooks.pop()()

    monkeypatch.setattr(direct._Apply, "finish", finish_then)
    yield hooks


async def test_the_items_of_a_user_nobody_listens_to_are_applied_without_the_script(
    redis: Redis, redis_url: str
) -> None:
    control = Redis.from_url(redis_url.replace("/0", "/3"))
    try:
        await control.flushdb()
        await redis.config_resetstat()
        inbox = Inbox(redis, LIMITS, direct=True)
        assert await inbox.apply(ops_for("u1")) == [None] * 4
        assert await script_calls(redis) == 0
        scripted = Inbox(control, LIMITS, direct=False)
        assert await scripted.apply(ops_for("u1")) == [None] * 4
        groups, unread, log = await views(inbox, "u1")
        assert [g["verb"] for g in groups] == ["comment", "follow", "like"]
        assert groups[2]["count"] == 2 and unread == 3
        assert (groups, unread, log) == await views(scripted, "u1")
        # applied again (a redelivery): nothing changes, still without the script
        await redis.config_resetstat()
        assert await inbox.apply(ops_for("u1")) == [None] * 4
        assert await script_calls(redis) == 0
        assert await views(inbox, "u1") == (groups, unread, log)
    finally:
        await control.aclose()


async def test_a_listened_users_items_go_through_the_script_and_are_pushed(redis: Redis) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.user_channel("u1"))
    try:
        assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
        await redis.config_resetstat()
        inbox = Inbox(redis, LIMITS, direct=True)
        assert await inbox.apply(ops_for("u1")[:1]) == [None]
        assert await script_calls(redis) == 1
        message = await pubsub.get_message(timeout=5)
        assert message is not None
        change = changelog.published(message["data"])
        assert orjson.loads(change.payload)["group"]["verb"] == "like"
        # remembered for a while: the next item skips the direct apply's reads
        assert await inbox.apply(ops_for("u1")[1:2]) == [None]
        assert await script_calls(redis) == 2
        assert (await redis.info("commandstats")).get("cmdstat_watch", {}).get("calls") == 1
    finally:
        await pubsub.aclose()


async def test_a_write_between_the_reads_and_the_commit_hands_the_batch_to_the_script(
    redis: Redis, redis_url: str, between: list[Callable[[], None]]
) -> None:
    other = sync_redis.Redis.from_url(redis_url)
    between.append(lambda: other.hset(keys.toggles("u1"), "probe", "1"))
    try:
        await redis.config_resetstat()
        inbox = Inbox(redis, LIMITS, direct=True)
        assert await inbox.apply(ops_for("u1")) == [None] * 4
        assert not between  # the write was made
        assert await script_calls(redis) == 1  # the transaction was aborted: the script applied
        groups, unread, log = await views(inbox, "u1")
        assert len(groups) == 3 and unread == 3 and len(log) == 4
    finally:
        other.close()


async def test_a_client_subscribing_between_the_reads_and_the_commit_is_told_to_resync(
    redis: Redis, redis_url: str, between: list[Callable[[], None]]
) -> None:
    other = sync_redis.Redis.from_url(redis_url)
    pubsub = other.pubsub()

    def subscribe() -> None:
        pubsub.subscribe(keys.user_channel("u1"))
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"

    between.append(subscribe)
    try:
        inbox = Inbox(redis, LIMITS, direct=True)
        assert await inbox.apply(ops_for("u1")) == [None] * 4
        message = pubsub.get_message(timeout=5)
        assert message is not None and message["data"] == layouts.RESYNC_MESSAGE.encode()
        with pytest.raises(ValueError):  # the gateway's hub resyncs on what is not a change
            changelog.published(message["data"])
        _, _, log = await views(inbox, "u1")
        assert len(log) == 4  # logged, for the resync to find
    finally:
        pubsub.close()
        other.close()


async def test_a_user_written_elsewhere_since_the_worker_remembered_them_is_read_again(
    redis: Redis, redis_url: str
) -> None:
    control = Redis.from_url(redis_url.replace("/0", "/3"))  # the same server's commandstats
    try:
        await control.flushdb()
        inbox, scripted = Inbox(redis, LIMITS, direct=True), Inbox(control, LIMITS, direct=False)
        first, second, third, fourth = ops_for("u1")
        for views_of in (inbox, scripted):
            assert await views_of.apply([first]) == [None]
            assert await views_of.mark_read("u1", None) == 1  # the API writes the state
        assert inbox.take_direct_stats() == {"direct": 1}
        assert await scripted.apply([second, third, fourth]) == [None] * 3
        await redis.config_resetstat()
        assert await inbox.apply([second]) == [None]
        # what the worker remembered is stale: the script applied the item
        assert inbox.take_direct_stats() == {"written elsewhere": 1}
        assert await script_calls(redis) == 1
        # read again, then remembered: the next item reads only the registers and state
        await redis.config_resetstat()
        assert await inbox.apply([third]) == [None]
        assert await inbox.apply([fourth]) == [None]
        assert inbox.take_direct_stats() == {"direct": 2}
        stats = await redis.info("commandstats")
        assert stats["cmdstat_lrange"]["calls"] == 1 and stats["cmdstat_hmget"]["calls"] == 2
        assert await script_calls(redis) == 0
        assert await views(inbox, "u1") == await views(scripted, "u1")
    finally:
        await control.aclose()


async def test_two_batches_of_the_worker_for_one_user_take_turns_instead_of_conflicting(
    redis: Redis, redis_url: str
) -> None:
    """Batches of several partitions are applied at once: the second to reach a user its first
    is applying waits for that user (its other users go on), instead of WATCHing the same key,
    losing at EXEC and handing the user to the script."""
    control = Redis.from_url(redis_url.replace("/0", "/3"))
    try:
        await control.flushdb()
        inbox, scripted = Inbox(redis, LIMITS, direct=True), Inbox(control, LIMITS, direct=False)
        first, second, third, fourth = ops_for("u1")
        batches = [[first, second, ops_for("u2")[0]], [third, fourth, ops_for("u3")[0]]]
        await asyncio.gather(redis.ping(), redis.ping())  # two pooled connections, as a busy worker has
        await redis.config_resetstat()
        assert await asyncio.gather(*(inbox.apply(b) for b in batches)) == [[None] * 3] * 2
        assert inbox.take_direct_stats() == {"direct": 6}
        assert await script_calls(redis) == 0
        for batch in batches:
            assert await scripted.apply(batch) == [None] * 3
        for user in ("u1", "u2", "u3"):
            assert await views(inbox, user) == await views(scripted, user)
    finally:
        await control.aclose()


async def test_a_trim_of_the_change_log_goes_to_the_script_which_keeps_a_burst_whole(
    redis: Redis, redis_url: str
) -> None:
    """A session told of a burst (layouts.BURST_FIELD) re-reads it from the log: the direct apply
    does not read that field, so the change that would trim the log is the script's."""
    control = Redis.from_url(redis_url.replace("/0", "/3"))
    try:
        await control.flushdb()
        limits = FeedLimits(max_changes=16)  # trimmed past 17 changes
        inbox, scripted = Inbox(redis, limits, direct=True), Inbox(control, limits, direct=False)
        for views_of in (inbox, scripted):
            for n in range(4):
                assert await views_of.apply(plan(like(f"a{n}", f"p{n}", "u1", 10 + n), limits)) == [None]
            # changes 2..4 were a burst (lua/feed_push.lua writes this after a quiet burst)
            await views_of.redis.hset(keys.toggles("u1"), layouts.BURST_FIELD, "2 4")
            for n in range(4, 18):
                assert await views_of.apply(plan(like(f"a{n}", f"p{n}", "u1", 10 + n), limits)) == [None]
        stats = inbox.take_direct_stats()
        assert stats == {"direct": 17, "trim": 1}, stats
        # 18 changes: the burst's first (2) is kept, not the last 16 only
        assert await redis.llen(keys.changelog("u1")) == await control.llen(keys.changelog("u1")) == 17
        pages = [await views_of.page("u1", None, 50) for views_of in (inbox, scripted)]
        assert pages[0].groups == pages[1].groups and len(pages[0].groups) == 18
    finally:
        await control.aclose()
