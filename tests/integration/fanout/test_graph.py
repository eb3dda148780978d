"""The follow graph and home feeds kept by the fan-out on a real redis-server: both sides agree
across partitions, redelivery changes nothing, a batch's sides share a script call and fail
alone, a failed graph write leaves its event pending, a fresh replay rebuilds the graph and the
feeds, and a push to the threshold's worth of followers goes in short slices."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from feeds import timeline
from feeds.graph import FollowGraph, FollowOp
from feeds.home import HomeFeeds
from feeds.timeline import Timelines
from notifier.fanout.replay import replay
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.events import Event, Follow, PostCreated, PostDeleted, Unfollow

from ..views import at, pending_total
from .test_consumer import append, make_worker

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

USERS = [f"user{i}" for i in range(6)]


def graph_log() -> list[Event]:
    """Everyone follows everyone after them; then the even ones unfollow user5 (older follows
    of it arrive later in the log: last writer wins by event time, not by position)."""
    events: list[Event] = [
        Unfollow(id=f"unf-{a}", actor=a, occurred_at=at(50), user="user5") for a in USERS[:5:2]
    ]
    events += [
        Follow(id=f"f-{a}-{b}", actor=a, occurred_at=at(i + j), user=b)
        for i, a in enumerate(USERS)
        for j, b in enumerate(USERS)
        if i < j
    ]
    return events


async def edges(redis: Redis) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    g = FollowGraph(redis)
    by_followers, by_following = set(), set()
    for user in USERS:
        page = await g.page(user, "followers", None, 100)
        by_followers |= {(m.user, user) for m in page.members}
        page = await g.page(user, "following", None, 100)
        by_following |= {(user, m.user) for m in page.members}
    return by_followers, by_following


EXPECTED = {(a, b) for i, a in enumerate(USERS) for b in USERS[i + 1 :]} - {
    ("user0", "user5"),
    ("user2", "user5"),
    ("user4", "user5"),
}


async def test_the_fan_out_keeps_both_sides_and_redelivery_changes_nothing(
    redis: Redis, settings: Settings
) -> None:
    events = graph_log()
    await append(redis, settings, events)
    worker = make_worker(redis, settings, "w")
    assert await worker.drain() == len(events)
    assert await edges(redis) == (EXPECTED, EXPECTED)
    assert await FollowGraph(redis).counts("user5") == (2, 0)
    assert await FollowGraph(redis).counts("user0") == (0, 4)

    for p in range(settings.ingest.partitions):
        await redis.xgroup_setid(keys.events(p), keys.FANOUT_GROUP, "0")
    assert await worker.drain() == len(events)
    assert await edges(redis) == (EXPECTED, EXPECTED)
    assert await pending_total(redis, settings.ingest.partitions) == 0


async def test_a_batchs_sides_share_one_call_and_a_side_that_fails_fails_alone(redis: Redis) -> None:
    await redis.set(keys.following("ann"), "not a sorted set")
    ops = [
        FollowOp("ann", "bob", "a", 1, "f-1"),
        FollowOp("cat", "dan", "a", 2, "f-2"),
        FollowOp("eve", "dan", "a", 3, "f-3"),
        FollowOp("cat", "dan", "i", 4, "u-2"),
    ]
    graph = FollowGraph(redis)
    assert await graph.apply([FollowOp("ivy", "jon", "a", 1, "f-0")]) == ["a"]  # the script loaded
    calls = (await redis.info("commandstats"))["cmdstat_evalsha"]["calls"]
    states = await graph.apply(ops)
    assert (await redis.info("commandstats"))["cmdstat_evalsha"]["calls"] == calls + 1
    assert isinstance(states[0], ResponseError) and "WRONGTYPE" in str(states[0])
    assert states[1:] == ["a", "a", "i"]  # each op's state once applied, in order
    assert await graph.counts("bob") == (1, 0)  # ann's following failed, bob's followers did not
    assert await graph.counts("dan") == (1, 0)
    assert await graph.counts("cat") == (0, 0)
    assert await graph.counts("eve") == (0, 1)


async def test_a_failed_graph_write_leaves_the_event_pending_until_it_applies(
    redis: Redis, settings: Settings
) -> None:
    await redis.set(keys.following("ann"), "not a sorted set")
    await append(redis, settings, [Follow(id="f-1", actor="ann", occurred_at=at(1), user="bob")])
    worker = make_worker(redis, settings, "w")
    await worker.drain()
    assert worker.stats.failed == 1
    assert await pending_total(redis, settings.ingest.partitions) == 1
    await redis.delete(keys.following("ann"))
    for p in range(settings.ingest.partitions):
        await worker.reclaim(p, min_idle_ms=0)
    assert await pending_total(redis, settings.ingest.partitions) == 0
    assert await FollowGraph(redis).counts("ann") == (0, 1)
    assert await FollowGraph(redis).counts("bob") == (1, 0)


async def test_a_fresh_replay_rebuilds_the_graph(redis: Redis, settings: Settings) -> None:
    await append(redis, settings, graph_log())
    await make_worker(redis, settings, "w").drain()
    stats = await replay(redis, partitions=settings.ingest.partitions, limits=settings.feeds, fresh=True)
    assert stats.failed == 0
    assert await edges(redis) == (EXPECTED, EXPECTED)


async def test_a_fresh_replay_rebuilds_the_home_feeds(redis: Redis, settings: Settings) -> None:
    posts: list[Event] = [
        PostCreated(id=f"pc-{a}-{n}", actor=a, occurred_at=at(60 + n), post=f"{a}-p{n}")
        for a in USERS
        for n in range(3)
    ]
    posts.append(PostDeleted(id="pd", actor="user1", occurred_at=at(99), post="user1-p0"))
    await append(redis, settings, graph_log() + posts)
    await make_worker(redis, settings, "w").drain()
    feeds = HomeFeeds(redis, settings.feeds)
    before = [(await feeds.page(u, None, 100)).items for u in USERS]
    assert (len(before[0]), before[5]) == (11, [])  # user0 follows user1-4 (3 posts each, one gone)
    await replay(redis, partitions=settings.ingest.partitions, limits=settings.feeds, fresh=True)
    assert [(await feeds.page(u, None, 100)).items for u in USERS] == before


async def test_a_push_to_the_threshold_of_followers_goes_in_slices_each_a_fraction_of_the_reclaim_idle_time(
    redis: Redis, settings: Settings
) -> None:
    followers = settings.feeds.celebrity_followers - 1
    await redis.zadd(keys.followers("big"), {f"fan{i}": i for i in range(followers)})
    created = PostCreated(id="pc", actor="big", occurred_at=at(1), post="p1")
    await Timelines(redis, settings.feeds).apply(timeline.plan(created))
    feeds = HomeFeeds(redis, settings.feeds)
    slices_ms: list[float] = []
    done = False
    while not done:
        started = time.perf_counter()
        done = await feeds.publish("big", "p1")
        slices_ms.append((time.perf_counter() - started) * 1000)
    chunks = -(-followers // settings.feeds.push_chunk)
    assert len(slices_ms) == -(-chunks // settings.feeds.push_slice)
    assert await redis.zcard(keys.home("fan0")) == await redis.zcard(keys.home(f"fan{followers - 1}")) == 1
    assert not await redis.exists(keys.feed_pushes("big"))  # the position is gone once done
    # the default reclaim idle time is 30 s: a slice stays far below it even on a loaded shared
    # machine (a slice holds push_slice x push_chunk followers)
    assert max(slices_ms) < 3_000, slices_ms
