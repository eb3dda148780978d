"""Inboxes on fakeredis: aggregation, idempotency, order independence, read state, paging, caps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from feeds import changelog
from feeds.inbox import Inbox
from feeds.items import plan
from feeds.limits import FeedLimits
from schemas import cursor
from schemas.events import Event
from tests.unit.builders import (
    DAY_S,
    comment,
    comment_deleted,
    follow,
    like,
    mention,
    unfollow,
    unlike,
)
from tests.unit.memory_redis import fake_redis

pytestmark = pytest.mark.anyio

LIMITS = FeedLimits()
Group = dict[str, Any]


async def apply(inbox: Inbox, events: Sequence[Event], limits: FeedLimits = LIMITS) -> None:
    ops = [op for event in events for op in plan(event, limits)]
    assert await inbox.apply(ops) == [None] * len(ops)


async def groups(inbox: Inbox, user: str) -> list[Group]:
    page = await inbox.page(user, None, 1_000)
    assert not page.more
    return [orjson.loads(g) for g in page.groups]


async def changes(redis: Redis, user: str) -> list[dict[str, Any]]:
    replay = await changelog.read_after(redis, user, cursor.START, 10_000)
    assert isinstance(replay, changelog.Replay)
    return [orjson.loads(c.payload) for c in replay.changes]


async def view(inbox: Inbox, user: str) -> tuple[list[Group], int]:
    shown, unread = await groups(inbox, user), await inbox.unread(user)
    assert unread == sum(not g["read"] for g in shown)  # the kept count agrees with the groups
    return shown, unread


async def test_likes_of_one_post_aggregate_into_one_group(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    await apply(inbox, [like(actor, t=i) for i, actor in enumerate(["ann", "bob", "cid", "dan", "eve"])])
    [group] = await groups(inbox, "olga")
    assert group["count"] == 5
    assert group["actors"] == ["eve", "dan", "cid"]  # the latest 3, newest first
    assert (group["verb"], group["post"], group["read"]) == ("like", "p1", False)
    assert group["last_at"] - group["first_at"] == 4_000
    assert await inbox.unread("olga") == 1
    assert [c["op"] for c in await changes(redis, "olga")] == ["upsert"] * 5
    assert (await changes(redis, "olga"))[-1]["group"] == group


async def test_the_empty_inbox(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    page = await inbox.page("nobody", None, 10)
    assert (page.groups, page.more, page.unread, page.next_before) == ([], False, 0, None)
    assert page.cursor == "-.0-0"
    assert await inbox.apply([]) == []


async def test_applying_the_same_ops_twice_changes_nothing(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    log: list[Event] = [
        like("bob", t=1),
        like("cid", t=2),
        unlike("bob", t=3),
        follow("bob", t=4),
        comment("cid", "c1", t=5),
        mention("bob", ("olga", "cid"), comment_id="c1", t=6),
    ]
    await apply(inbox, log)
    first = [await view(inbox, u) for u in ("olga", "cid")]
    logged = len(await changes(redis, "olga"))
    await apply(inbox, log)
    await apply(inbox, list(reversed(log)))
    assert [await view(inbox, u) for u in ("olga", "cid")] == first
    assert len(await changes(redis, "olga")) == logged  # nothing new to push either


@pytest.mark.parametrize("reverse", [False, True])
async def test_unlike_and_like_resolve_by_event_time_in_any_order(redis: Redis, reverse: bool) -> None:
    inbox = Inbox(redis, LIMITS)
    log: list[Event] = [like("bob", t=1), unlike("bob", t=2), like("cid", t=1), unlike("cid", t=2)]
    log += [like("cid", t=3)]  # cid liked again after unliking
    await apply(inbox, log[::-1] if reverse else log)
    [group] = await groups(inbox, "olga")
    assert (group["actors"], group["count"], group["last_at"]) == (["cid"], 1, like("cid", t=3).at_ms)
    assert await inbox.unread("olga") == 1


async def test_an_unlike_that_arrives_first_wins_over_its_older_like(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    await apply(inbox, [unlike("bob", t=2)])
    await apply(inbox, [like("bob", t=1)])
    assert await view(inbox, "olga") == ([], 0)
    assert await changes(redis, "olga") == []


async def test_unlike_removes_the_actor_and_an_emptied_group_disappears(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    await apply(inbox, [like("bob", t=1), like("cid", t=2), like("dan", post="p2", t=3)])
    assert await inbox.unread("olga") == 2
    await apply(inbox, [unlike("cid", t=4)])
    by_post = {g["post"]: g for g in await groups(inbox, "olga")}
    assert (by_post["p1"]["actors"], by_post["p1"]["count"]) == (["bob"], 1)
    assert by_post["p1"]["last_at"] == like("bob", t=1).at_ms  # the group's time follows its actors
    await apply(inbox, [unlike("bob", t=5)])
    assert [g["post"] for g in await groups(inbox, "olga")] == ["p2"]
    assert await inbox.unread("olga") == 1
    last = (await changes(redis, "olga"))[-1]
    assert (last["op"], last["id"], last["unread"]) == ("remove", by_post["p1"]["id"], 1)


@pytest.mark.parametrize("reverse", [False, True])
async def test_a_deleted_comment_never_shows_whatever_the_order(redis: Redis, reverse: bool) -> None:
    inbox = Inbox(redis, LIMITS)
    log: list[Event] = [
        comment("bob", "c1", t=1),
        mention("bob", ("cid",), comment_id="c1", t=1),
        comment_deleted("bob", "c1", t=2, mentioned=("cid",)),
    ]
    await apply(inbox, log[::-1] if reverse else log)
    assert await view(inbox, "olga") == ([], 0)
    assert await view(inbox, "cid") == ([], 0)
    await apply(inbox, log[:2])  # redelivered later: a deletion is for good
    assert await view(inbox, "olga") == ([], 0)
    assert await view(inbox, "cid") == ([], 0)


async def test_a_deletion_spares_other_comments_and_mentions(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    log: list[Event] = [
        comment("bob", "c1", t=1),
        comment("bob", "c2", t=2),
        mention("bob", ("cid",), t=3),  # in the post itself
        comment_deleted("bob", "c1", t=4, mentioned=("cid",)),
    ]
    await apply(inbox, log)
    assert [g["comment"] for g in await groups(inbox, "olga")] == ["c2"]
    assert [g["verb"] for g in await groups(inbox, "cid")] == ["mention"]


async def test_follows_group_by_window(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    await apply(inbox, [follow("bob", t=1), follow("cid", t=2), follow("dan", t=DAY_S)])
    assert [g["count"] for g in await groups(inbox, "olga")] == [1, 2]
    await apply(inbox, [unfollow("cid", t=3), unfollow("bob", t=0)])  # bob's unfollow is older
    assert [g["count"] for g in await groups(inbox, "olga")] == [1, 1]


async def test_mark_one_group_read(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    await apply(inbox, [like("bob", t=1), like("cid", post="p2", t=2)])
    older, newer = sorted(await groups(inbox, "olga"), key=lambda g: g["last_at"])
    assert await inbox.mark_read("olga", [older["id"], "no-such-group"]) == 1
    assert await inbox.unread("olga") == 1
    assert {g["id"]: g["read"] for g in await groups(inbox, "olga")} == {
        older["id"]: True,
        newer["id"]: False,
    }
    assert (await changes(redis, "olga"))[-1] == {
        "op": "read",
        "groups": [older["id"]],
        "unread": 1,
        "unseen": 2,
    }
    logged = len(await changes(redis, "olga"))
    assert await inbox.mark_read("olga", [older["id"]]) == 0
    assert len(await changes(redis, "olga")) == logged
    await apply(inbox, [like("dan", t=3)])  # new activity in a read group makes it unread again
    assert await inbox.unread("olga") == 2


async def test_mark_all_read(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    await apply(inbox, [like("bob", t=1), like("cid", post="p2", t=2), follow("dan", t=3)])
    assert await inbox.mark_read("olga", None) == 3
    assert await inbox.unread("olga") == 0
    assert all(g["read"] for g in await groups(inbox, "olga"))
    assert (await changes(redis, "olga"))[-1] == {"op": "read", "all": True, "unread": 0, "unseen": 3}
    logged = len(await changes(redis, "olga"))
    assert await inbox.mark_read("olga", None) == 0
    assert await inbox.mark_read("olga", []) == 0
    assert len(await changes(redis, "olga")) == logged
    await apply(inbox, [like("eve", t=0)])  # older than what was read: stays read
    assert await inbox.unread("olga") == 0
    await apply(inbox, [like("eve", post="p3", t=4)])
    assert await inbox.unread("olga") == 1


async def test_paging_returns_every_group_once_newest_first(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    # 11 groups; several share a time, so the page boundary falls inside runs of ties
    times = [1, 2, 2, 2, 2, 3, 4, 4, 5, 5, 5]
    await apply(inbox, [like("bob", post=f"p{i:02}", t=t) for i, t in enumerate(times)])
    expected = sorted(await groups(inbox, "olga"), key=lambda g: (g["last_at"], g["id"]), reverse=True)
    assert len(expected) == 11
    for size in (1, 2, 3, 4, 10, 11):
        seen: list[Group] = []
        before: str | None = None
        while True:
            page = await inbox.page("olga", before, size)
            assert len(page.groups) <= size
            seen += [orjson.loads(g) for g in page.groups]
            before = page.next_before
            if before is None:
                break
        assert [g["id"] for g in seen] == [g["id"] for g in expected], size
        assert page.unread == 11


async def test_the_page_cursor_resumes_the_change_log(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    await apply(inbox, [like("bob", t=1)])
    page = await inbox.page("olga", None, 10)
    assert page.cursor == str(await changelog.tail(redis, "olga"))
    await apply(inbox, [like("cid", t=2)])
    replay = await changelog.read_after(redis, "olga", cursor.Cursor.parse(page.cursor), 10)
    assert isinstance(replay, changelog.Replay)
    assert [orjson.loads(c.payload)["group"]["actors"] for c in replay.changes] == [["cid", "bob"]]


async def test_the_inbox_cap_drops_the_oldest_groups(redis: Redis) -> None:
    limits = FeedLimits(max_groups=3)
    inbox = Inbox(redis, limits)
    await apply(inbox, [like("bob", post=f"p{i}", t=i) for i in range(5)], limits)
    assert [g["post"] for g in await groups(inbox, "olga")] == ["p4", "p3", "p2"]
    assert await inbox.unread("olga") == 3
    await apply(inbox, [like("cid", post="p9", t=-1)], limits)  # arrives late, already too old
    assert [g["post"] for g in await groups(inbox, "olga")] == ["p4", "p3", "p2"]
    await apply(inbox, [like("cid", post="p3", t=9)], limits)  # activity moves a group up
    assert [g["post"] for g in await groups(inbox, "olga")] == ["p3", "p4", "p2"]
    assert await inbox.unread("olga") == 3


# -- order independence ------------------------------------------------------------------

USERS = ("u0", "u1", "u2", "u3")
OWNERS = {"p0": "u0", "p1": "u1"}
TIMES = (0, 1, 2, DAY_S)  # ties on purpose, and a second aggregation window

actors = st.sampled_from(USERS)
posts = st.sampled_from(sorted(OWNERS))
times = st.sampled_from(TIMES)
comment_ids = st.sampled_from(("c0", "c1"))


@st.composite
def events(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from(("like", "unlike", "follow", "unfollow", "comment", "deleted", "mention")))
    actor, post, t = draw(actors), draw(posts), draw(times)
    owner = OWNERS[post]
    # A comment id names one comment by one author (the contract); anyone may delete it.
    author = draw(actors) if kind == "deleted" else actor
    cid = f"{draw(comment_ids)}-{author}-{post}"
    match kind:
        case "like":
            return like(actor, post, owner, t)
        case "unlike":
            return unlike(actor, post, owner, t)
        case "follow":
            return follow(actor, draw(actors), t)
        case "unfollow":
            return unfollow(actor, draw(actors), t)
        case "comment":
            return comment(actor, cid, post, owner, t, text=f"text {t}")
        case "deleted":
            mentioned = tuple(draw(st.lists(actors, max_size=3)))
            return comment_deleted(actor, cid, post, owner, t, mentioned)
        case _:
            users = tuple(draw(st.lists(actors, min_size=1, max_size=3)))
            return mention(actor, users, post, draw(st.none() | st.just(cid)), t)


def unique_ids(log: list[Event]) -> list[Event]:
    """One id per event: the builders' ids repeat when the same action is drawn twice."""
    return [msgspec.structs.replace(e, id=f"{i:03}-{e.id}") for i, e in enumerate(log)]


async def final_views(log: Sequence[Event], batch: int) -> list[tuple[list[Group], int]]:
    redis = fake_redis()
    try:
        inbox = Inbox(redis, LIMITS)
        for start in range(0, len(log), batch):
            await apply(inbox, log[start : start + batch])
        return [await view(inbox, user) for user in USERS]
    finally:
        await redis.aclose()


@st.composite
def two_deliveries(draw: st.DrawFn) -> tuple[list[Event], list[Event], int]:
    """One log delivered twice: each time shuffled, with some events redelivered; a batch size.

    Drawn up front, not inside the async test, so hypothesis never stops a running event loop."""
    log = draw(st.lists(events(), min_size=1, max_size=14).map(unique_ids))

    def delivery() -> list[Event]:
        again = draw(st.lists(st.sampled_from(log), max_size=4))
        shuffled: list[Event] = draw(st.permutations([*log, *again]))
        return shuffled

    return delivery(), delivery(), draw(st.integers(1, 5))


@settings(max_examples=60, deadline=None)
@given(two_deliveries())
async def test_any_order_with_any_duplicates_ends_in_the_same_views(
    deliveries: tuple[list[Event], list[Event], int],
) -> None:
    first, second, batch = deliveries
    assert await final_views(first, batch) == await final_views(second, 1)
