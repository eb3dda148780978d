"""The cap's floor on a real redis-server (lua/common.lua below_floor): a group the inbox cap
drops takes its registers with it, and nothing at or below the newest group dropped enters the
inbox again, so a redelivery or a replay of what was dropped is "nothing to do" without them."""

from __future__ import annotations

import random

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from feeds import registers
from feeds.horizon import Registers
from feeds.inbox import Inbox
from feeds.items import ItemOp, plan
from feeds.limits import FeedLimits
from schemas import keys, layouts
from schemas.events import Event
from tests.unit.builders import DAY_S, at, comment, comment_deleted, follow, like, mention, unfollow, unlike

from .test_differential import USERS, events, product_views

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CAPPED = FeedLimits(max_groups=2, max_changes=50)


def ops_of(*history: Event, limits: FeedLimits = CAPPED) -> list[ItemOp]:
    return [op for event in history for op in plan(event, limits)]


async def shown(inbox: Inbox, user: str) -> list[tuple[str, int, list[str]]]:
    page = await inbox.page(user, None, 10)
    return [(g["id"], g["count"], g["actors"]) for g in map(orjson.loads, page.groups)]


def ms(seconds: float) -> int:
    return int(at(seconds).timestamp() * 1000)


async def test_a_dropped_group_takes_its_registers_and_nothing_below_it_comes_back(redis: Redis) -> None:
    inbox = Inbox(redis, CAPPED)
    items = keys.toggles("olga")
    first = ops_of(
        like("ana", t=1),
        like("bob", t=1.5),
        comment("cat", "c1", t=2),
        mention("dan", ("olga",), post="p2", t=3),
    )
    assert await inbox.apply(first) == [None] * len(first)
    likes = f"like:p1:{ms(0) // CAPPED.aggregation_window_ms}"
    assert [g for g, _, _ in await shown(inbox, "olga")] == ["mention:p2~dan", "comment:c1"]
    # the like group went with both registers; the floor is its newest actor's time
    assert await redis.hmget(items, ["l|p1|ana", "l|p1|bob"]) == [None, None]
    assert await registers.floor(redis, "olga") == (ms(1.5), likes)
    fields, logged = await redis.hlen(items), await redis.llen(keys.changelog("olga"))

    # redelivered, replayed one by one, late: nothing to do, nothing logged, no register back
    late = ops_of(like("eve", t=0.5), unlike("ana", t=1.2))
    for ops in (first, *([op] for op in first), late):
        assert await inbox.apply(ops) == [None] * len(ops)
    assert (await redis.hlen(items), await redis.llen(keys.changelog("olga"))) == (fields, logged)

    # new activity above the floor starts a group of its own: the dropped actors are not counted
    assert await inbox.apply(ops_of(like("fay", t=10))) == [None]
    assert await shown(inbox, "olga") == [(likes, 1, ["fay"]), ("mention:p2~dan", 1, ["dan"])]
    assert await redis.hexists(items, "c|c1") == 0  # the comment the like pushed out: gone with it
    assert await registers.floor(redis, "olga") == (ms(2), "comment:c1")

    # between the floor and the oldest group shown, at the cap: in and out at once, no register
    assert await inbox.apply(ops_of(comment("gus", "c2", t=2.5))) == [None]
    assert [g for g, _, _ in await shown(inbox, "olga")] == [likes, "mention:p2~dan"]
    assert await redis.hexists(items, "c|c2") == 0
    assert await registers.floor(redis, "olga") == (ms(2.5), "comment:c2")
    assert await redis.llen(keys.changelog("olga")) == logged + 4  # fay's upsert and c1's remove, c2's two


async def test_trimming_keeps_the_floor(redis: Redis) -> None:
    inbox = Inbox(redis, CAPPED)
    ops = ops_of(*(comment(f"fan{i}", f"c{i}", t=i) for i in range(4)))
    assert await inbox.apply(ops) == [None] * len(ops)
    floor = await registers.floor(redis, "olga")
    assert floor == (ms(1), "comment:c1")
    await Registers(redis, CAPPED).trim("olga", ms(DAY_S))
    mark = await redis.hget(keys.toggles("olga"), layouts.HORIZON_FIELD)
    assert mark is not None and layouts.decode_ms(mark) == ms(DAY_S)
    assert await registers.floor(redis, "olga") == floor
    assert await inbox.apply(ops_of(comment("fan0", "c0", t=0))) == [None]  # below both: nothing to do
    assert len(await shown(inbox, "olga")) == 2


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from((CAPPED, FeedLimits(max_groups=1, max_changes=50, shown_actors=1))),
    st.lists(events(), min_size=1, max_size=30),
    st.randoms(use_true_random=False),
)
async def test_past_the_cap_every_redelivery_changes_nothing(
    redis_url: str, limits: FeedLimits, log: list[Event], rng: random.Random
) -> None:
    """Whatever the cap dropped and refused, the whole log delivered again, in any order and
    batches, leaves every view, change log and register as it was."""
    redis = Redis.from_url(redis_url.replace("/0", "/3"))  # a db of its own: hypothesis reuses it
    try:
        await redis.flushdb()
        log = [msgspec.structs.replace(e, id=f"{i:03}-{e.id}") for i, e in enumerate(log)]
        inbox = Inbox(redis, limits)
        ops = ops_of(*log, limits=limits)
        assert await inbox.apply(ops) == [None] * len(ops)
        before = {u: await product_views(redis, inbox, u) for u in USERS}
        stored = {u: await redis.hgetall(keys.toggles(u)) for u in USERS}
        again = rng.sample(ops, len(ops))
        while again:
            n = rng.randint(1, 8)
            assert await inbox.apply(again[:n]) == [None] * len(again[:n])
            again = again[n:]
        assert {u: await product_views(redis, inbox, u) for u in USERS} == before
        assert {u: await redis.hgetall(keys.toggles(u)) for u in USERS} == stored
    finally:
        await redis.aclose()


@pytest.mark.parametrize("undone", ["like", "follow"])
@pytest.mark.parametrize("undo_first", [False, True], ids=["do-undo", "undo-do"])
async def test_an_undo_at_the_floors_millisecond_wins_in_either_order(
    redis: Redis, undone: str, undo_first: bool
) -> None:
    """An unlike carries no group: at the floor's time it is kept (its like, in a group above
    the floor's id at the same time, would be taken) and outranks its like whatever the order."""
    inbox = Inbox(redis, CAPPED)
    setup = ops_of(comment("cat", "c1", t=2), comment("dan", "c2", t=3), comment("eli", "c3", t=4))
    setup += ops_of(comment_deleted("eli", "c3", t=5))  # back under the cap, floor (2, comment:c1)
    assert await inbox.apply(setup) == [None] * len(setup)
    assert await registers.floor(redis, "olga") == (ms(2), "comment:c1")
    pair: list[Event]
    if undone == "like":
        pair = [like("eve", t=2, eid="e-1"), unlike("eve", t=2, eid="e-2")]
    else:
        pair = [follow("eve", t=2, eid="e-1"), unfollow("eve", t=2, eid="e-2")]
    for event in reversed(pair) if undo_first else pair:
        assert await inbox.apply(ops_of(event)) == [None]
    assert [g for g, _, _ in await shown(inbox, "olga")] == ["comment:c2"]


async def test_a_register_left_by_a_big_dropped_group_lets_nothing_below_the_floor_in(redis: Redis) -> None:
    """A group of DROP_MAX actors or more keeps their registers when the cap drops it (one drop
    holds Redis a bounded time); those registers decide nothing the floor does not: a re-like
    below the floor stays out, and an unlike changes nothing and logs nothing."""
    inbox = Inbox(redis, CAPPED)
    fans = [like(f"a{i:04}", t=1) for i in range(1024)]
    history = ops_of(*fans, comment("cat", "c1", t=5), comment("dan", "c2", t=6), comment("eli", "c3", t=7))
    assert await inbox.apply(history) == [None] * len(history)
    assert await redis.hexists(keys.toggles("olga"), "l|p1|a0000")  # kept: the group was big
    assert await registers.floor(redis, "olga") == (ms(5), "comment:c1")
    logged = await redis.llen(keys.changelog("olga"))

    late = ops_of(like("a0000", t=3, eid="again"), unlike("a0001", t=8))
    assert await inbox.apply(late) == [None, None]
    assert [g for g, _, _ in await shown(inbox, "olga")] == ["comment:c3", "comment:c2"]
    assert await redis.llen(keys.changelog("olga")) == logged
