"""Home feeds on fakeredis, through the fan-out's apply: pushed below the celebrity threshold,
merged at read from it on, crossing it either way, deletion and unfollow in any order, chunked
pushes, paging; and any permutation of a log (with duplicates) showing every user exactly the live
posts of the authors they follow."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from feeds import changelog, home, ranked, scripts
from feeds.home import HomeFeeds
from feeds.inbox import Inbox
from feeds.limits import FeedLimits
from feeds.preferences import PreferenceStore
from notifier.fanout.consumer import apply_events
from notifier.runtime.eventlog import LoggedEvent
from schemas import cursor, keys
from schemas.events import Event, PostCreated, PostDeleted
from tests.unit.builders import at, follow, unfollow
from tests.unit.memory_redis import fake_redis

pytestmark = pytest.mark.anyio

LIMITS = FeedLimits(celebrity_followers=3)
USERS = ["ann", "bob", "cid", "dan"]


def post(author: str, post_id: str, t: float) -> PostCreated:
    return PostCreated(id=f"pc-{author}-{post_id}-{t}", actor=author, occurred_at=at(t), post=post_id)


def delete(author: str, post_id: str, t: float) -> PostDeleted:
    return PostDeleted(id=f"pd-{author}-{post_id}-{t}", actor=author, occurred_at=at(t), post=post_id)


async def apply(redis: Redis, events: Sequence[Event], limits: FeedLimits = LIMITS) -> None:
    logged = [LoggedEvent(f"{i}-0".encode(), e, "posts", 0) for i, e in enumerate(events)]
    assert await apply_events(Inbox(redis, limits), limits, logged) == {}


async def feed(redis: Redis, user: str, limits: FeedLimits = LIMITS) -> list[str]:
    """The whole feed, page after page (2 a page), as AUTHOR|POST."""
    shown: list[str] = []
    before = None
    while True:
        page = await HomeFeeds(redis, limits).page(user, before, 2)
        shown += [home.member(r["author"], r["id"]) for r in map(orjson.loads, page.items)]
        if page.next_before is None:
            return shown
        before = ranked.parse_cursor(page.next_before)


async def test_a_post_is_pushed_to_the_authors_followers(redis: Redis) -> None:
    await apply(redis, [follow("ann", "star", t=0), post("star", "p1", 1), post("star", "p2", 2)])
    assert await feed(redis, "ann") == ["star|p2", "star|p1"]
    assert await redis.zcard(keys.home("ann")) == 2  # pushed, not merged
    assert not await redis.sismember(keys.pulled_authors("star"), "star")
    assert await feed(redis, "bob") == []


async def test_a_follow_after_the_post_backfills_it(redis: Redis) -> None:
    await apply(redis, [post("star", "p1", 1)])
    await apply(redis, [follow("ann", "star", t=0)])
    assert await feed(redis, "ann") == ["star|p1"]


@pytest.mark.parametrize("reverse", [False, True])
async def test_a_deletion_hides_the_post_in_either_order(redis: Redis, reverse: bool) -> None:
    await apply(redis, [follow("ann", "star", t=0)])
    log: list[Event] = [post("star", "p1", 1), delete("star", "p1", 2)]
    await apply(redis, log[::-1] if reverse else log)
    assert await feed(redis, "ann") == []
    assert await redis.zcard(keys.home("ann")) == 0  # and the pushed entry is gone


async def test_an_unfollow_hides_the_authors_posts_and_a_new_follow_brings_them_back(redis: Redis) -> None:
    await apply(redis, [follow("ann", "star", t=0), post("star", "p1", 1), post("bob", "q1", 1)])
    await apply(redis, [follow("ann", "bob", t=0)])
    await apply(redis, [unfollow("ann", "star", t=5)])
    assert await feed(redis, "ann") == ["bob|q1"]
    assert await redis.zcard(keys.home("ann")) == 1
    await apply(redis, [follow("ann", "star", t=3)])  # older than the unfollow: no effect
    assert await feed(redis, "ann") == ["bob|q1"]
    await apply(redis, [follow("ann", "star", t=9)])
    assert await feed(redis, "ann") == ["star|p1", "bob|q1"]


async def test_crossing_the_threshold_either_way_loses_no_post(redis: Redis) -> None:
    await apply(redis, [follow(u, "star", t=0) for u in ("ann", "bob")] + [post("star", "p1", 1)])
    assert not await redis.sismember(keys.pulled_authors("star"), "star")  # 2 < 3: pushed
    await apply(redis, [follow("cid", "star", t=0), post("star", "p2", 2)])
    assert await redis.sismember(keys.pulled_authors("star"), "star")  # 3: read-merged
    assert await redis.zscore(keys.home("ann"), "star|p2") is None
    for user in ("ann", "bob", "cid"):
        assert await feed(redis, user) == ["star|p2", "star|p1"]
    await apply(redis, [unfollow("cid", "star", t=3), post("star", "p3", 4)])  # back below: pushed
    assert await redis.zscore(keys.home("ann"), "star|p3") is not None
    assert await feed(redis, "ann") == ["star|p3", "star|p2", "star|p1"]
    assert await feed(redis, "cid") == []


async def test_a_fan_out_goes_in_chunks_and_reaches_every_follower(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    fans = [f"fan{i}" for i in range(7)]
    # followers tied on their follow time, so a chunk boundary falls inside a tie
    await apply(redis, [follow(f, "star", t=i // 3) for i, f in enumerate(fans)], FeedLimits())
    calls = 0
    real = scripts.run_commands

    async def counting(*args: object) -> object:
        nonlocal calls
        calls += 1
        return await real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(home, "run_commands", counting)
    await apply(redis, [post("star", "p1", 5)], FeedLimits(push_chunk=2, push_slice=1))
    assert calls == 4  # 7 followers, 2 a round trip
    for f in fans:
        assert await feed(redis, f, FeedLimits()) == ["star|p1"]


async def test_the_feed_keeps_the_newest_posts(redis: Redis) -> None:
    limits = FeedLimits(max_home=3)
    await apply(redis, [follow("ann", "star", t=0)] + [post("star", f"p{i}", i) for i in range(1, 6)], limits)
    assert await redis.zcard(keys.home("ann")) == 3
    assert await feed(redis, "ann", limits) == ["star|p5", "star|p4", "star|p3"]


AUTHORS = ["ann", "bob"]


@st.composite
def two_deliveries(draw: st.DrawFn) -> tuple[list[Event], list[Event], int]:
    """Follows among USERS of AUTHORS, posts and deletions by AUTHORS, delivered twice."""
    graph_step = st.tuples(
        st.just("g"), st.sampled_from(USERS), st.sampled_from(AUTHORS), st.booleans(), st.integers(0, 4)
    )
    post_step = st.tuples(
        st.just("p"), st.sampled_from(AUTHORS), st.integers(0, 3), st.booleans(), st.integers(0, 4)
    )
    drawn = draw(st.lists(graph_step | post_step, min_size=1, max_size=16))
    log: list[Event] = []
    for i, (kind, a, b, on, t) in enumerate(drawn):
        if kind == "g":
            event: Event = (follow if on else unfollow)(str(a), str(b), t)
        else:
            event = post(str(a), f"p{b}", t) if on else delete(str(a), f"p{b}", t)
        log.append(msgspec.structs.replace(event, id=f"{i:03}"))

    def delivery() -> list[Event]:
        again = draw(st.lists(st.sampled_from(log), max_size=4))
        shuffled: list[Event] = draw(st.permutations([*log, *again]))
        return shuffled

    return delivery(), delivery(), draw(st.integers(1, 5))


async def final_feeds(log: Sequence[Event], batch: int) -> list[list[str]]:
    redis = fake_redis()
    limits = FeedLimits(celebrity_followers=2)  # authors cross it both ways as the log goes
    try:
        for start in range(0, len(log), batch):
            await apply(redis, log[start : start + batch], limits)
        feeds = [await feed(redis, u, limits) for u in USERS]
        for user, shown in zip(USERS, feeds, strict=True):  # exactly the followed authors' live posts
            followed = {m.decode() for m in await redis.zrange(keys.following(user), 0, -1)}
            live = [
                (int(at), home.member(a, p.decode()))
                for a in followed
                for p, at in await redis.zrange(keys.timeline(a), 0, -1, withscores=True)
            ]
            assert shown == [m for _, m in sorted(live, reverse=True)]
        return feeds
    finally:
        await redis.aclose()


@settings(max_examples=60, deadline=None)
@given(two_deliveries())
async def test_any_order_with_any_duplicates_shows_the_same_feeds(
    deliveries: tuple[list[Event], list[Event], int],
) -> None:
    first, second, batch = deliveries
    assert await final_feeds(first, batch) == await final_feeds(second, 1)


async def test_a_pushed_post_sits_at_its_newest_creations_time_whatever_the_order(redis: Redis) -> None:
    # regression: an older creation applied last re-pushed the post at the older time
    await apply(redis, [follow("ann", "star", t=0), post("star", "p0", 5), post("star", "p1", 3)])
    await apply(redis, [post("star", "p0", 1)])
    assert await feed(redis, "ann") == ["star|p0", "star|p1"]
    assert await redis.zscore(keys.home("ann"), "star|p0") == await redis.zscore(keys.timeline("star"), "p0")


async def test_a_post_is_not_pushed_to_a_follower_who_mutes_its_author(redis: Redis) -> None:
    await apply(redis, [follow("ann", "star", t=0), follow("bob", "star", t=0)])
    await PreferenceStore(redis).relate("ann", "mutes", "star", True, 1)
    await apply(redis, [post("star", "p1", 5)])
    assert await redis.zscore(keys.home("ann"), "star|p1") is None  # nor logged for live push
    assert await redis.zscore(keys.home("bob"), "star|p1") is not None


async def test_a_post_made_while_its_author_was_muted_is_not_pushed_after_the_unmute(redis: Redis) -> None:
    # the hide mark (preferences.hidden_until), not only the current mute: a late or redelivered
    # post from during the mute stays out of the feed, a newer one goes in; the back-fill too
    prefs = PreferenceStore(redis)
    await apply(redis, [follow("ann", "star", t=0)])
    await prefs.relate("ann", "mutes", "star", True, int(at(2).timestamp() * 1000))
    await prefs.relate("ann", "mutes", "star", False, int(at(4).timestamp() * 1000))
    await apply(redis, [post("star", "during", 3), post("star", "after", 5)])
    assert await redis.zscore(keys.home("ann"), "star|during") is None
    assert await feed(redis, "ann") == ["star|after"]
    await apply(redis, [unfollow("ann", "star", t=6), follow("ann", "star", t=7)])  # back-fills
    assert await redis.zscore(keys.home("ann"), "star|during") is None


async def test_a_push_stops_once_its_post_is_deleted_between_two_chunks(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the deletion lands while the push is between chunks: the next chunk's call finds the
    # tombstone and pushes nothing, so no follower gets the add after the deletion's remove
    limits = FeedLimits(push_chunk=2, push_slice=10)
    fans = [f"fan{i}" for i in range(6)]
    await apply(redis, [follow(f, "star", t=0) for f in fans], limits)
    real = HomeFeeds._change
    calls = 0

    async def deleted_after_the_first_chunk(
        self: HomeFeeds, changes: Sequence[home.Change], tag: str = "", post_ref: home.Post | None = None
    ) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            await apply(redis, [delete("star", "p1", 6)], limits)  # its clean-up runs here too
        return await real(self, changes, tag, post_ref)

    monkeypatch.setattr(HomeFeeds, "_change", deleted_after_the_first_chunk)
    await apply(redis, [post("star", "p1", 5)], limits)
    reached = [f for f in fans if await redis.zscore(keys.home(f), "star|p1") is not None]
    assert reached == []  # the first chunk's two were taken out again by the clean-up
    assert not await redis.exists(keys.feed_pushes("star"))
    logged = []
    for f in fans:  # the first chunk's two: pushed, then removed; the others: nothing at all
        replay = await changelog.read_after(redis, f, cursor.START, 100)
        assert isinstance(replay, changelog.Replay)
        logged.append(len(replay.changes))
    assert sorted(logged) == [0, 0, 0, 0, 2, 2]


async def test_a_chunk_is_one_call_per_master(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    fans = [f"fan{i}" for i in range(7)]
    await apply(redis, [follow(f, "star", t=0) for f in fans], FeedLimits())
    sizes: list[int] = []
    real = scripts.run_commands

    async def counting(redis: Redis, scripts: object, commands: Sequence[object]) -> object:
        sizes.append(len(commands))
        return await real(redis, scripts, commands)  # type: ignore[arg-type]

    monkeypatch.setattr(home, "run_commands", counting)
    await apply(redis, [post("star", "p1", 5)], FeedLimits(push_chunk=5, push_slice=1))
    assert sizes == [1, 1]  # 7 followers in chunks of 5: one feed_push call each (one Redis)
    for f in fans:
        assert await feed(redis, f, FeedLimits()) == ["star|p1"]
