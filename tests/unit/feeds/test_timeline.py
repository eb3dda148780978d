"""Authors' timelines on fakeredis: posts newest first, a deletion final in any order, the cap,
paging, and any permutation of a log (with duplicates) ending in the same timelines."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from feeds import ranked, timeline
from feeds.limits import FeedLimits
from feeds.timeline import Timelines
from schemas import keys
from schemas.events import Event, PostCreated, PostDeleted
from tests.unit.builders import at
from tests.unit.memory_redis import fake_redis

pytestmark = pytest.mark.anyio

LIMITS = FeedLimits(max_posts=5)
AUTHORS = ["ann", "bob"]


def created(author: str, post: str, t: float, text: str = "", eid: str = "") -> PostCreated:
    eid = eid or f"pc-{author}-{post}-{t}"
    return PostCreated(id=eid, actor=author, occurred_at=at(t), post=post, text=text or f"{post} at {t}")


def deleted(author: str, post: str, t: float) -> PostDeleted:
    return PostDeleted(id=f"pd-{author}-{post}-{t}", actor=author, occurred_at=at(t), post=post)


async def apply(redis: Redis, events: Sequence[Event], limits: FeedLimits = LIMITS) -> None:
    ops = [op for e in events for op in timeline.plan(e)]
    states = await Timelines(redis, limits).apply(ops)
    assert all(state in ("a", "x", "") for state in states), states


async def posts(redis: Redis, author: str, limits: FeedLimits = LIMITS) -> list[dict[str, object]]:
    page = await Timelines(redis, limits).page(author, None, 100)
    assert page.next_before is None and page.count == len(page.posts)
    return [orjson.loads(p) for p in page.posts]


async def test_posts_show_newest_first_with_their_record(redis: Redis) -> None:
    await apply(redis, [created("ann", "p1", 1, "hello"), created("ann", "p2", 2), created("bob", "q1", 3)])
    shown = await posts(redis, "ann")
    assert [p["id"] for p in shown] == ["p2", "p1"]
    assert shown[1] == {
        "id": "p1",
        "author": "ann",
        "kind": "text",
        "text": "hello",
        "visibility": "public",
        "at": shown[0]["at"] - 1_000,  # type: ignore[operator]
    }


@pytest.mark.parametrize("delete_first", [False, True])
async def test_a_deleted_post_never_shows_whatever_the_order(redis: Redis, delete_first: bool) -> None:
    log: list[Event] = [created("ann", "p1", 5), deleted("ann", "p1", 1)]
    await apply(redis, log[::-1] if delete_first else log)
    # even a later creation
    assert await Timelines(redis, LIMITS).apply(timeline.plan(created("ann", "p1", 9, eid="x"))) == ["x"]
    assert await posts(redis, "ann") == []


async def test_tombstones_are_kept_for_the_logs_retention_then_forgotten(redis: Redis) -> None:
    limits = FeedLimits(post_tombstone_ms=1_000)
    day = 86_400_000
    for n, post in enumerate(["p1", "p2"]):
        ops = timeline.plan(created("ann", post, 1), accepted_ms=day) + timeline.plan(
            deleted("ann", post, 2), accepted_ms=day + n
        )
        await Timelines(redis, limits).apply(ops)
    assert await redis.hlen(keys.post_records("ann")) == await redis.zcard(keys.post_tombstones("ann")) == 2
    # within the retention a late creation finds its tombstone
    late = timeline.plan(created("ann", "p1", 3, eid="late"), accepted_ms=day + 999)
    assert await Timelines(redis, limits).apply(late) == ["x"]
    # once the log no longer holds the deletion, any apply of the author forgets the tombstones
    later = timeline.plan(created("ann", "p3", 4), accepted_ms=day + 1_002)
    assert await Timelines(redis, limits).apply(later) == ["a"]
    assert await redis.hkeys(keys.post_records("ann")) == [b"p3"]
    assert await redis.zcard(keys.post_tombstones("ann")) == 0


async def test_a_newer_creation_of_a_live_post_replaces_its_record(redis: Redis) -> None:
    await apply(redis, [created("ann", "p1", 2, "second"), created("ann", "p1", 1, "first")])
    assert [p["text"] for p in await posts(redis, "ann")] == ["second"]


async def test_the_timeline_keeps_the_newest_posts(redis: Redis) -> None:
    await apply(redis, [created("ann", f"p{i}", i) for i in range(8)])
    assert [p["id"] for p in await posts(redis, "ann")] == ["p7", "p6", "p5", "p4", "p3"]
    # a late redelivery of a dropped post stays dropped
    assert await Timelines(redis, LIMITS).apply(timeline.plan(created("ann", "p0", 0))) == [""]
    assert len(await posts(redis, "ann")) == 5


async def test_paging_returns_every_post_once(redis: Redis) -> None:
    limits = FeedLimits(max_posts=100)
    await apply(redis, [created("ann", f"p{i:02}", i // 4) for i in range(20)], limits)
    seen: list[str] = []
    before = None
    while True:
        page = await Timelines(redis, limits).page("ann", before, 3)
        seen += [orjson.loads(p)["id"] for p in page.posts]
        if page.next_before is None:
            break
        before = ranked.parse_cursor(page.next_before)
    assert sorted(seen) == [f"p{i:02}" for i in range(20)] and len(seen) == 20


@st.composite
def two_deliveries(draw: st.DrawFn) -> tuple[list[Event], list[Event], int]:
    step = st.tuples(st.sampled_from(AUTHORS), st.integers(0, 6), st.booleans(), st.integers(0, 4))
    drawn = draw(st.lists(step, min_size=1, max_size=16))
    log: list[Event] = [
        msgspec.structs.replace((created(a, f"p{n}", t) if on else deleted(a, f"p{n}", t)), id=f"{i:03}")
        for i, (a, n, on, t) in enumerate(drawn)
    ]

    def delivery() -> list[Event]:
        again = draw(st.lists(st.sampled_from(log), max_size=4))
        shuffled: list[Event] = draw(st.permutations([*log, *again]))
        return shuffled

    return delivery(), delivery(), draw(st.integers(1, 5))


async def final_timelines(log: Sequence[Event], batch: int) -> list[list[dict[str, object]]]:
    redis = fake_redis()
    limits = FeedLimits(max_posts=100)  # the cap makes the outcome depend on order: off here
    try:
        for start in range(0, len(log), batch):
            await apply(redis, log[start : start + batch], limits)
        return [await posts(redis, a, limits) for a in AUTHORS]
    finally:
        await redis.aclose()


@settings(max_examples=60, deadline=None)
@given(two_deliveries())
async def test_any_order_with_any_duplicates_ends_in_the_same_timelines(
    deliveries: tuple[list[Event], list[Event], int],
) -> None:
    first, second, batch = deliveries
    assert await final_timelines(first, batch) == await final_timelines(second, 1)
