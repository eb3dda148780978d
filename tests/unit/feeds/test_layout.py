"""The compact inbox layout (one record per group in a list, registers with the user's state in
one hash): every kind of group reads back as it was written, whatever its text and time; the
inbox stays newest first whatever the arrival order; like groups move, drop and come back."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from feeds.inbox import Inbox
from feeds.items import ItemOp, plan
from feeds.limits import FeedLimits
from schemas import keys
from schemas.events import Comment, Event, Follow, Like, Mention
from tests.unit.builders import DAY_S, follow, like, unlike
from tests.unit.memory_redis import fake_redis

pytestmark = pytest.mark.anyio

LIMITS = FeedLimits()
AWKWARD_TEXTS = [
    "",
    "a|b||c",
    'quote " back\\\\slash / slash',
    "line\nbreak\ttab",
    "é ü 漢字 🎉",
    "\x00\x01",
    "x" * 2000,
]
INSTANTS = [
    datetime(1, 1, 1, tzinfo=UTC),  # before 1970: negative times
    datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2026, 11, 26, 10, 0, 0, 123000, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
]

MENTION: dict[str, Any] = {
    "id": "m1",
    "actor": "bob",
    "occurred_at": INSTANTS[3],
    "post": "p1",
    "users": ["olga"],
    "comment": "c1",
    "text": "hi",
}


async def groups(inbox: Inbox, user: str) -> list[dict[str, Any]]:
    page = await inbox.page(user, None, 100)
    return [orjson.loads(g) for g in page.groups]


async def apply(inbox: Inbox, *events: Event, limits: FeedLimits = LIMITS) -> None:
    ops = [op for event in events for op in plan(event, limits)]
    assert await inbox.apply(ops) == [None] * len(ops)


@pytest.mark.parametrize("text", AWKWARD_TEXTS, ids=range(len(AWKWARD_TEXTS)))
@pytest.mark.parametrize("at", INSTANTS, ids=lambda d: str(d.year))
async def test_every_kind_of_group_reads_back_as_written(redis: Redis, text: str, at: datetime) -> None:
    inbox = Inbox(redis, LIMITS)
    ms = int(at.timestamp() * 1000)
    common: dict[str, Any] = {"actor": "a:b@c.d_e-f", "occurred_at": at}
    await apply(
        inbox,
        Comment(id="e1", **common, post="p:1", owner="olga", comment="c:1", text=text),
        Mention(id="e2", **common, post="p:1", users=["olga"], comment="c:2", text=text),
        Mention(id="e3", **common, post="p:1", users=["olga"], text=text),
        Like(id="e4", **common, post="p:1", owner="olga"),
        Follow(id="e5", **common, user="olga"),
    )
    window = ms // LIMITS.aggregation_window_ms
    one = {"actors": ["a:b@c.d_e-f"], "count": 1, "first_at": ms, "last_at": ms, "read": ms <= 0}
    with_text = {"text": text} if text else {}
    expected = [
        {"id": "comment:c:1", "verb": "comment", "post": "p:1", "comment": "c:1", **with_text, **one},
        {"id": "mention:c:2", "verb": "mention", "post": "p:1", "comment": "c:2", **with_text, **one},
        {"id": "mention:p:1~a:b@c.d_e-f", "verb": "mention", "post": "p:1", **with_text, **one},
        {"id": f"like:p:1:{window}", "verb": "like", "post": "p:1", **one},
        {"id": f"follow:{window}", "verb": "follow", **one},
    ]
    got = await groups(inbox, "olga")
    assert sorted(got, key=lambda g: str(g["id"])) == sorted(expected, key=lambda g: str(g["id"]))


async def test_a_later_event_for_a_comment_keeps_what_it_leaves_out(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    first = Mention(
        id="e1", actor="bob", occurred_at=INSTANTS[3], post="p1", users=["olga"], comment="c1", text="hi"
    )
    edit = Mention(id="e2", actor="bob", occurred_at=INSTANTS[4], post="p1", users=["olga"], comment="c1")
    await apply(inbox, first, edit)
    [group] = await groups(inbox, "olga")
    assert (group["text"], group["last_at"]) == ("hi", edit.at_ms)
    assert await inbox.unread("olga") == 1


async def test_a_like_in_a_later_window_moves_its_actor_to_that_windows_group(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    await apply(inbox, like("bob", t=0), like("cid", t=1), like("bob", t=DAY_S))
    by_count = {g["count"]: g for g in await groups(inbox, "olga")}
    assert by_count[1]["actors"] == ["cid"] and by_count[1]["last_at"] == like("cid", t=1).at_ms
    await apply(inbox, unlike("bob", t=DAY_S + 1))  # the register knows which group bob is in now
    [group] = await groups(inbox, "olga")
    assert group["actors"] == ["cid"]
    assert await inbox.unread("olga") == 1


async def test_the_cap_drops_like_groups_with_their_actors_and_new_activity_brings_one_back(
    redis: Redis,
) -> None:
    limits = FeedLimits(max_groups=2)
    inbox = Inbox(redis, limits)
    await apply(inbox, like("bob", post="p0", t=0), like("cid", post="p0", t=1), limits=limits)
    await apply(inbox, like("bob", post="p1", t=2), like("bob", post="p2", t=3), limits=limits)
    assert [g["post"] for g in await groups(inbox, "olga")] == ["p2", "p1"]
    gone = f"like:p0:{like('bob', t=0).at_ms // limits.aggregation_window_ms}"
    assert not await redis.exists(keys.group_actors("olga", gone))
    await apply(inbox, unlike("cid", post="p0", t=4), limits=limits)  # nothing left to undo
    await apply(inbox, like("dan", post="p0", t=5), limits=limits)
    shown = await groups(inbox, "olga")
    assert [(g["post"], g["actors"]) for g in shown] == [("p0", ["dan"]), ("p2", ["bob"])]
    assert await inbox.unread("olga") == 2


@pytest.mark.parametrize("poisoned", [keys.changelog, keys.inbox, keys.read_marks], ids=lambda k: k("u")[:2])
async def test_an_item_whose_script_failed_is_applied_whole_by_its_redelivery(
    redis: Redis, poisoned: Callable[[str], str]
) -> None:
    inbox = Inbox(redis, LIMITS)
    ops = [*plan(like("bob", t=1), LIMITS), *plan(Mention(**MENTION), LIMITS), *plan(follow("cid"), LIMITS)]
    await redis.set(poisoned("olga"), "a string")  # every apply for olga fails: WRONGTYPE
    assert all(isinstance(e, Exception) for e in await inbox.apply(ops))
    await redis.delete(poisoned("olga"))
    assert await inbox.apply(ops) == [None] * 3
    assert await inbox.apply(ops) == [None] * 3
    assert sorted(g["verb"] for g in await groups(inbox, "olga")) == ["follow", "like", "mention"]
    assert await inbox.unread("olga") == 3
    assert await redis.llen(keys.changelog("olga")) == 3


# -- order --------------------------------------------------------------------------------


def like_op(post: int, t: int) -> ItemOp:
    return ItemOp("olga", f"l|p{post}|bob", "a", t, f"e{post}", "bob", f"like:p{post}:0", "like", f"p{post}")


@st.composite
def arrivals(draw: st.DrawFn) -> list[ItemOp]:
    """Likes of new posts (one group each) at a few times (many ties), in any arrival order.

    Drawn up front, not inside the async test, so hypothesis never stops a running event loop."""
    times = draw(st.lists(st.integers(0, 6), min_size=1, max_size=40))
    shuffled: list[ItemOp] = draw(st.permutations([like_op(post, t) for post, t in enumerate(times)]))
    return shuffled


@settings(max_examples=40, deadline=None)
@given(arrivals())
async def test_the_inbox_is_newest_first_whatever_the_arrival_order(ops: list[ItemOp]) -> None:
    redis = fake_redis()
    try:
        inbox = Inbox(redis, LIMITS)
        for op in ops:
            assert await inbox.apply([op]) == [None]
        shown = await groups(inbox, "olga")
        paged: list[dict[str, Any]] = []
        before = None
        for _ in itertools.count():
            page = await inbox.page("olga", before, 3)
            paged += [orjson.loads(g) for g in page.groups]
            before = page.next_before
            if before is None:
                break
    finally:
        await redis.aclose()
    expected = sorted(((op.at_ms, op.group_id) for op in ops), reverse=True)
    assert [(g["last_at"], g["id"]) for g in shown] == expected
    assert paged == shown


async def test_a_like_group_with_many_actors_shows_the_newest_and_counts_them_all(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    fans = [f"fan{i:02}" for i in range(20)]  # more than a script reads of a set at once
    await apply(inbox, *(like(fan, t=i) for i, fan in enumerate(fans)))
    [group] = await groups(inbox, "olga")
    assert (group["count"], group["actors"]) == (20, ["fan19", "fan18", "fan17"])
    assert (group["first_at"], group["last_at"]) == (like("x", t=0).at_ms, like("x", t=19).at_ms)
    await apply(inbox, *(unlike(fan, t=30 + i) for i, fan in enumerate(fans[2:18])))
    [group] = await groups(inbox, "olga")
    assert (group["count"], group["actors"]) == (4, ["fan19", "fan18", "fan01"])
    assert (group["first_at"], group["last_at"]) == (like("x", t=0).at_ms, like("x", t=19).at_ms)


async def test_a_group_showing_one_actor_still_knows_its_time_before_a_change(redis: Redis) -> None:
    limits = FeedLimits(shown_actors=1)
    inbox = Inbox(redis, limits)
    await apply(inbox, like("bob", t=1), like("cid", t=2), like("cid", t=3), limits=limits)
    [group] = await groups(inbox, "olga")
    assert (group["actors"], group["count"], group["last_at"]) == (["cid"], 2, like("x", t=3).at_ms)
    await apply(inbox, unlike("cid", t=4), limits=limits)
    [group] = await groups(inbox, "olga")
    assert (group["actors"], group["count"], group["last_at"]) == (["bob"], 1, like("x", t=1).at_ms)
    assert await redis.llen(keys.inbox("olga")) == 1
