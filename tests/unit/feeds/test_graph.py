"""The follow graph on fakeredis: both sides kept from follow/unfollow in any order, paging, counts."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from feeds import graph, ranked
from feeds.graph import FollowGraph, FollowOp, Member
from feeds.inbox import Inbox
from feeds.items import plan
from feeds.limits import FeedLimits
from feeds.preferences import PreferenceStore
from notifier.fanout.consumer import apply_events
from notifier.runtime.eventlog import LoggedEvent
from schemas.events import Event
from schemas.preferences import Preferences
from tests.unit.builders import follow, unfollow
from tests.unit.memory_redis import fake_redis

pytestmark = pytest.mark.anyio

LIMITS = FeedLimits()
USERS = ["ann", "bob", "cid", "dan"]


async def apply(redis: Redis, events: Sequence[Event]) -> None:
    """What the fan-out does (notifier.fanout.consumer.apply_events): the inbox keeps the
    notifications, the graph both sides."""
    ops = [op for e in events for op in plan(e, LIMITS)]
    assert await Inbox(redis, LIMITS).apply(ops) == [None] * len(ops)
    follow_ops = [op for e in events for op in graph.plan(e)]
    states = await FollowGraph(redis).apply(follow_ops)
    assert all(state in ("a", "i") for state in states), states


async def everyone(redis: Redis, user: str, side: graph.Side) -> list[Member]:
    page = await FollowGraph(redis).page(user, side, None, 1_000)
    assert page.next_before is None and page.count == len(page.members)
    return page.members


async def edges(redis: Redis) -> tuple[set[tuple[str, str, int]], set[tuple[str, str, int]]]:
    """(follower, followed, since) as seen from the followers' side and from the following side."""
    by_followers = {(m.user, u, m.since_ms) for u in USERS for m in await everyone(redis, u, "followers")}
    by_following = {(u, m.user, m.since_ms) for u in USERS for m in await everyone(redis, u, "following")}
    return by_followers, by_following


async def test_follow_and_unfollow_keep_both_sides(redis: Redis) -> None:
    await apply(redis, [follow("bob", "ann", t=1), follow("cid", "ann", t=2), follow("bob", "dan", t=3)])
    assert [m.user for m in await everyone(redis, "ann", "followers")] == ["cid", "bob"]
    assert [m.user for m in await everyone(redis, "bob", "following")] == ["dan", "ann"]
    assert await FollowGraph(redis).counts("bob") == (0, 2)
    await apply(redis, [unfollow("bob", "ann", t=4)])
    assert [m.user for m in await everyone(redis, "ann", "followers")] == ["cid"]
    assert [m.user for m in await everyone(redis, "bob", "following")] == ["dan"]
    assert await FollowGraph(redis).counts("ann") == (1, 0)


async def test_an_unfollow_applied_before_its_older_follow_wins(redis: Redis) -> None:
    await apply(redis, [unfollow("bob", "ann", t=5), follow("bob", "ann", t=1)])
    assert await edges(redis) == (set(), set())
    await apply(redis, [follow("bob", "ann", t=6)])
    assert await FollowGraph(redis).counts("ann") == (1, 0)
    assert await FollowGraph(redis).counts("bob") == (0, 1)


async def test_following_oneself_is_ignored(redis: Redis) -> None:
    assert graph.plan(follow("ann", "ann")) == []
    await apply(redis, [follow("ann", "ann")])
    assert await FollowGraph(redis).counts("ann") == (0, 0)


async def test_a_retracted_follow_stays_gone(redis: Redis) -> None:
    g = FollowGraph(redis)
    states = await g.apply([FollowOp("bob", "ann", "a", 1_000, "e1"), FollowOp("bob", "ann", "x", 500, "e0")])
    assert states == ["a", "x"]
    assert await g.apply([FollowOp("bob", "ann", "a", 2_000, "e2")]) == ["x"]
    assert await g.counts("bob") == (0, 0)


async def test_paging_returns_every_member_once_newest_first_through_ties(redis: Redis) -> None:
    # twelve followers, three of them in each second (ties on the score)
    await apply(redis, [follow(f"u{i:02}", "ann", t=i // 3) for i in range(12)])
    g = FollowGraph(redis)
    seen: list[Member] = []
    before = None
    while True:
        page = await g.page("ann", "followers", before, 5)
        assert page.count == 12
        seen += page.members
        if page.next_before is None:
            break
        before = ranked.parse_cursor(page.next_before)
    assert len(seen) == 12 and len({m.user for m in seen}) == 12
    assert seen == sorted(seen, key=lambda m: (m.since_ms, m.user), reverse=True)


@pytest.mark.parametrize("bad", ["", "12", "x:bob", ":bob", "-1:bob", "1:" + "x" * 300])
def test_a_cursor_that_is_not_one_is_refused(bad: str) -> None:
    assert ranked.parse_cursor(bad) is None


@st.composite
def two_deliveries(draw: st.DrawFn) -> tuple[list[Event], list[Event], int]:
    """A log of follows and unfollows among USERS delivered twice, shuffled with redeliveries."""
    step = st.tuples(st.sampled_from(USERS), st.sampled_from(USERS), st.booleans(), st.integers(0, 4))
    drawn = draw(st.lists(step, min_size=1, max_size=14))
    log: list[Event] = [
        msgspec.structs.replace((follow if on else unfollow)(a, b, t), id=f"{i:03}")
        for i, (a, b, on, t) in enumerate(drawn)
    ]

    def delivery() -> list[Event]:
        again = draw(st.lists(st.sampled_from(log), max_size=4))
        shuffled: list[Event] = draw(st.permutations([*log, *again]))
        return shuffled

    return delivery(), delivery(), draw(st.integers(1, 5))


async def final_edges(log: Sequence[Event], batch: int) -> set[tuple[str, str, int]]:
    redis = fake_redis()
    try:
        for start in range(0, len(log), batch):
            await apply(redis, log[start : start + batch])
        by_followers, by_following = await edges(redis)
        assert by_followers == by_following  # the two sides agree
        return by_followers
    finally:
        await redis.aclose()


@settings(max_examples=60, deadline=None)
@given(two_deliveries())
async def test_any_order_with_any_duplicates_ends_in_the_same_graph(
    deliveries: tuple[list[Event], list[Event], int],
) -> None:
    first, second, batch = deliveries
    assert await final_edges(first, batch) == await final_edges(second, 1)


Step = tuple[str, str, str, int]  # (what, follower, followed, time)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["follow", "unfollow", "mute", "unmute", "off", "on"]),
            st.sampled_from(USERS),
            st.sampled_from(USERS),
            st.integers(0, 4),
        ),
        min_size=1,
        max_size=12,
    )
)
async def test_follows_and_mutes_or_off_in_any_order_keep_both_sides_agreeing(steps: list[Step]) -> None:
    # a follow whose notification a mute or `off: follow` drops still counts as a follower
    # (it used to be missing from fo: while fg: had it: the inbox's apply kept fo:)
    redis = fake_redis()
    prefs = PreferenceStore(redis)
    try:
        for n, (what, a, b, t) in enumerate(steps):
            if what in ("follow", "unfollow"):
                event = (follow if what == "follow" else unfollow)(a, b, t)
                logged = LoggedEvent(f"{n}-0".encode(), msgspec.structs.replace(event, id=f"e{n:03}"), "", 0)
                assert await apply_events(Inbox(redis, LIMITS), LIMITS, [logged]) == {}
            elif what in ("mute", "unmute") and a != b:  # the followed user mutes the follower
                await prefs.relate(b, "mutes", a, what == "mute", 1_000 * t)
            elif what in ("off", "on"):
                await prefs.put(b, Preferences(off=["follow"] if what == "off" else []), 1_000 * t)
        by_followers, by_following = await edges(redis)
        assert by_followers == by_following
    finally:
        await redis.aclose()
