"""Preferences applied on fakeredis: what the fan-out holds back from an inbox (types off, mutes,
blocks either way; undo always passes) and what a home feed hides at read."""

from __future__ import annotations

import orjson
import pytest
from redis.asyncio import Redis

from feeds.home import HomeFeeds
from feeds.inbox import Inbox
from feeds.items import plan
from feeds.limits import FeedLimits
from feeds.preferences import PreferenceStore
from notifier.fanout.consumer import apply_events
from notifier.runtime.eventlog import LoggedEvent
from schemas import keys
from schemas.events import Event, PostCreated
from schemas.preferences import Preferences
from tests.unit.builders import at, comment, follow, like, unlike

pytestmark = pytest.mark.anyio

LIMITS = FeedLimits()


def ms(seconds: float) -> int:
    """The server's clock at a preference change, on the events' time line (builders.at)."""
    return int(at(seconds).timestamp() * 1000)


async def apply(redis: Redis, events: list[Event]) -> None:
    logged = [LoggedEvent(f"{i}-0".encode(), e, "posts", 0) for i, e in enumerate(events)]
    assert await apply_events(Inbox(redis, LIMITS), LIMITS, logged) == {}


async def verbs(redis: Redis, user: str) -> list[tuple[str, int]]:
    page = await Inbox(redis, LIMITS).page(user, None, 100)
    return sorted((g["verb"], g["count"]) for g in map(orjson.loads, page.groups))


async def test_a_type_turned_off_no_longer_reaches_the_inbox(redis: Redis) -> None:
    await PreferenceStore(redis).put("olga", Preferences(off=["like"]), ms(-1))
    await apply(redis, [like("ann"), follow("bob"), comment("cid", "c1")])
    assert await verbs(redis, "olga") == [("comment", 1), ("follow", 1)]


async def test_a_type_turned_back_on_lets_through_only_what_happened_outside_its_off_period(
    redis: Redis,
) -> None:
    """The off period is remembered: turning a type back on never brings back what happened
    while it was off, whether the event arrives late or the log is replayed."""
    store = PreferenceStore(redis)
    await apply(redis, [like("ann", t=1)])  # before the period: delivered
    await store.put("olga", Preferences(off=["like"]), ms(2))
    await apply(redis, [like("bob", t=3)])  # during it: dropped
    await store.put("olga", Preferences(off=[]), ms(4))
    assert await verbs(redis, "olga") == [("like", 1)]
    await apply(redis, [like("bob", t=3), like("cid", t=3.5)])  # a replay, a late one: still dropped
    assert await verbs(redis, "olga") == [("like", 1)]
    await apply(redis, [like("dan", t=5), like("ann", post="p2", t=1.5)])  # after it, before it
    assert await verbs(redis, "olga") == [("like", 1), ("like", 2)]
    assert await redis.hget(keys.hide_marks("olga"), "o:like") == f"{ms(2)}-{ms(4)}".encode()
    # off again: the period runs from its first start; on: it ends again
    await store.put("olga", Preferences(off=["like", "follow"]), ms(6))
    assert await redis.hget(keys.hide_marks("olga"), "o:like") == f"{ms(2)}-".encode()
    assert await redis.hget(keys.hide_marks("olga"), "o:follow") == f"{ms(6)}-".encode()
    await store.put("olga", Preferences(off=["follow"]), ms(7))
    assert await redis.hget(keys.hide_marks("olga"), "o:like") == f"{ms(2)}-{ms(7)}".encode()


async def test_a_muted_actor_no_longer_notifies_but_an_undo_still_applies(redis: Redis) -> None:
    store = PreferenceStore(redis)
    await apply(redis, [like("ann", t=1)])
    assert await store.relate("olga", "mutes", "ann", True, 0)
    assert not await store.relate("olga", "mutes", "ann", True, 0)  # idempotent
    await apply(redis, [like("ann", post="p2", t=2), comment("ann", "c1")])
    assert await verbs(redis, "olga") == [("like", 1)]
    await apply(redis, [unlike("ann", t=3)])  # taking back what did arrive passes
    assert await verbs(redis, "olga") == []


async def test_preferences_and_a_mute_of_one_user_both_hold_back(redis: Redis) -> None:
    store = PreferenceStore(redis)
    await store.put("olga", Preferences(off=["follow"]), ms(-1))
    await store.relate("olga", "mutes", "ann", True, 0)
    await apply(redis, [like("ann"), follow("bob"), like("bob"), comment("cid", "c1")])
    assert await verbs(redis, "olga") == [("comment", 1), ("like", 1)]  # bob's like, cid's comment


async def test_a_block_by_the_actor_holds_back_the_items_and_follows_of_a_user_with_no_state(
    redis: Redis,
) -> None:
    """The recipient never muted nor blocked anyone: the block's mark in their hash is what
    sends the gate to the relations."""
    await PreferenceStore(redis).relate("ann", "blocks", "olga", True, 0)
    await apply(redis, [like("ann"), follow("ann")])
    assert await verbs(redis, "olga") == []
    assert await redis.zcard(keys.followers("olga")) == 0


@pytest.mark.parametrize("blocker", ["olga", "ann"])
async def test_a_block_either_way_stops_notifications(redis: Redis, blocker: str) -> None:
    other = "ann" if blocker == "olga" else "olga"
    await PreferenceStore(redis).relate(blocker, "blocks", other, True, 0)
    await apply(redis, [like("ann"), follow("ann"), like("bob")])
    assert await verbs(redis, "olga") == [("like", 1)]  # bob's


async def test_keep_checks_only_what_would_newly_show(redis: Redis) -> None:
    store = PreferenceStore(redis)
    await store.relate("olga", "mutes", "ann", True, 0)
    ops = plan(like("ann"), LIMITS) + plan(unlike("ann"), LIMITS) + plan(like("bob"), LIMITS)
    assert (await store.keep(ops)).items == [False, True, True]
    assert (await store.keep([])).items == []


async def test_the_feed_hides_muted_and_blocked_authors(redis: Redis) -> None:
    posts: list[Event] = [
        PostCreated(id=f"p-{a}", actor=a, occurred_at=at(1), post=f"{a}-1") for a in ("ann", "bob", "cid")
    ]
    await apply(redis, [follow("olga", a) for a in ("ann", "bob", "cid")] + posts)
    feeds, store = HomeFeeds(redis, LIMITS), PreferenceStore(redis)

    async def authors() -> list[str]:
        return [orjson.loads(i)["author"] for i in (await feeds.page("olga", None, 10)).items]

    assert await authors() == ["cid", "bob", "ann"]
    await store.relate("olga", "mutes", "ann", True, 0)
    await store.relate("bob", "blocks", "olga", True, 0)
    assert await authors() == ["cid"]
    await store.relate("olga", "mutes", "ann", False, 0)
    assert await authors() == ["cid", "ann"]
