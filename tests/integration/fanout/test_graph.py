"""The follow graph kept by the fan-out on a real redis-server: both sides agree across
partitions, redelivery changes nothing, a failed graph write leaves its event pending, and a
fresh replay rebuilds the graph."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from feeds.graph import FollowGraph
from notifier.fanout.replay import replay
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.events import Event, Follow, Unfollow

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
