"""The inbox scripts on a real redis-server: re-applying is a no-op and order does not matter."""

from __future__ import annotations

import random
from collections.abc import Sequence

import orjson
import pytest
from redis.asyncio import Redis

from feeds.inbox import ITEMS_PER_CALL, Inbox
from feeds.items import ItemOp, plan, retract
from feeds.limits import FeedLimits
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.cursor import Cursor
from schemas.events import Comment, CommentDeleted, Event, Follow, Like, Mention, Unfollow, Unlike

from ..views import at, inbox_view, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

USERS = ["hal", "ivy", "jo"]


def history() -> list[Event]:
    """Toggles resolved by event time, a retraction, aggregation and a mention, for three users."""
    return [
        *(Like(id=f"l{i}", actor=f"fan{i}", occurred_at=at(i), post="p1", owner="hal") for i in range(5)),
        Unlike(id="u1", actor="fan1", occurred_at=at(50), post="p1", owner="hal"),  # later: wins
        Unlike(id="u2", actor="fan2", occurred_at=at(-50), post="p1", owner="hal"),  # earlier: loses
        Follow(id="f1", actor="fan1", occurred_at=at(10), user="ivy"),
        Follow(id="f2", actor="fan2", occurred_at=at(11), user="ivy"),
        Unfollow(id="uf2", actor="fan2", occurred_at=at(12), user="ivy"),
        Comment(id="c1", actor="fan3", occurred_at=at(20), post="p1", owner="hal", comment="c1", text="hi"),
        Comment(id="c2", actor="fan4", occurred_at=at(21), post="p1", owner="hal", comment="c2", text="yo"),
        CommentDeleted(
            id="cd2", actor="fan4", occurred_at=at(15), post="p1", owner="hal", comment="c2", mentioned=["jo"]
        ),
        Mention(id="m1", actor="fan4", occurred_at=at(21), post="p1", users=["jo", "ivy"], comment="c2"),
        Mention(id="m2", actor="fan3", occurred_at=at(22), post="p1", users=["jo"], comment="c1"),
        # the post owner deletes someone else's comment, and with it the mention made in it
        Comment(id="c3", actor="fan2", occurred_at=at(30), post="p1", owner="hal", comment="c3", text="spam"),
        Mention(id="m3", actor="fan2", occurred_at=at(30), post="p1", users=["jo"], comment="c3"),
        CommentDeleted(
            id="cd3", actor="hal", occurred_at=at(31), post="p1", owner="hal", comment="c3", mentioned=["jo"]
        ),
    ]


def ops_of(events: Sequence[Event], limits: FeedLimits) -> list[ItemOp]:
    return [op for event in events for op in plan(event, limits)]


async def test_applying_the_same_ops_twice_changes_nothing(redis: Redis, settings: Settings) -> None:
    inbox = Inbox(redis, settings.feeds)
    ops = ops_of(history(), settings.feeds)
    assert await inbox.apply(ops) == [None] * len(ops)
    before = await snapshot(redis, inbox, USERS)

    assert await inbox.apply(ops) == [None] * len(ops)
    for op in ops:  # and one at a time, as single redeliveries
        assert await inbox.apply([op]) == [None]

    assert await snapshot(redis, inbox, USERS) == before


async def test_any_order_with_duplicates_converges_to_the_same_views(
    redis: Redis, settings: Settings
) -> None:
    ops = ops_of(history(), settings.feeds)
    inbox = Inbox(redis, settings.feeds)
    await inbox.apply(ops)
    expected = {user: await inbox_view(inbox, user) for user in USERS}
    hal = {g["verb"]: g for g in expected["hal"][0]}
    assert hal["like"]["count"] == 4  # fan1's later unlike won; fan2's earlier one did not
    assert "fan1" not in hal["like"]["actors"]
    assert [g["comment"] for g in expected["hal"][0] if g["verb"] == "comment"] == ["c1"]  # c2 and c3 deleted
    assert [g["verb"] for g in expected["ivy"][0]].count("follow") == 1
    assert [g["comment"] for g in expected["jo"][0]] == ["c1"]  # mentions in deleted comments are gone

    rng = random.Random(7)
    for _ in range(5):
        shuffled = ops + rng.sample(ops, len(ops) // 2)
        rng.shuffle(shuffled)
        await redis.flushall()
        for i in range(0, len(shuffled), 4):  # several batches, as redeliveries would come
            await inbox.apply(shuffled[i : i + 4])
        assert {user: await inbox_view(inbox, user) for user in USERS} == expected


async def test_an_item_that_fails_leaves_the_others_of_its_call_applied(
    redis: Redis, settings: Settings
) -> None:
    """Items share script calls (ITEMS_PER_CALL); a poisoned inbox fails only its own items."""
    inbox = Inbox(redis, settings.feeds)
    await redis.set(keys.inbox("eve"), "not a list")
    owners = ["hal", "eve", "ivy", "eve", "jo"]
    events = [
        Like(id=f"x{i}", actor="fan9", occurred_at=at(i), post=f"p{i}", owner=who)
        for i, who in enumerate(owners)
    ]
    ops = ops_of(events, settings.feeds)
    assert len(ops) <= ITEMS_PER_CALL

    errors = await inbox.apply(ops)

    assert [op.user for op, e in zip(ops, errors, strict=True) if e is not None] == ["eve", "eve"]
    assert all("WRONGTYPE" in str(e) for e in errors if e is not None)
    for user in ("hal", "ivy", "jo"):
        groups, unread, _ = await inbox_view(inbox, user)
        assert [(g["verb"], g["actors"]) for g in groups] == [("like", ["fan9"])] and unread == 1
    assert await redis.get(keys.inbox("eve")) == b"not a list"  # nothing half-applied to her


@pytest.mark.parametrize("poisoned_post", ["p1", "p3"], ids=["middle", "last"])
async def test_a_users_items_around_one_that_fails_are_applied_with_their_state(
    redis: Redis, settings: Settings, poisoned_post: str
) -> None:
    """A call reads a user's state with their first item and writes it with their last: an item
    of theirs that fails, in the middle or last, leaves the state of the others saved."""
    inbox = Inbox(redis, settings.feeds)
    ops = ops_of(
        [Like(id=f"x{i}", actor="fan9", occurred_at=at(i), post=f"p{i}", owner="eve") for i in range(4)],
        settings.feeds,
    )
    bad = next(op for op in ops if op.post == poisoned_post)
    await redis.set(keys.group_actors("eve", bad.group_id), "not a set")

    errors = await inbox.apply(ops)

    assert [op.post for op, e in zip(ops, errors, strict=True) if e is not None] == [poisoned_post]
    groups, unread, _ = await inbox_view(inbox, "eve")
    assert sorted(g["post"] for g in groups) == sorted({"p0", "p1", "p2", "p3"} - {poisoned_post})
    assert unread == 3 and await redis.llen(keys.changelog("eve")) == 3
    assert Cursor.parse((await inbox.page("eve", None, 10)).cursor).number == 3


async def test_ids_holding_colons_never_make_two_mentions_one_group(redis: Redis, settings: Settings) -> None:
    """Ids may hold ':': a mention in post `a` by `b:c`, one in post `a:b` by `c` and the mentions
    in comment `a:b:c` are three groups (their ids were all `mention:a:b:c`: one was lost from
    the view and the unread count kept a group nobody could mark read)."""
    inbox = Inbox(redis, settings.feeds)
    events = [
        Mention(id="m1", actor="b:c", occurred_at=at(1), post="a", users=["ivy"]),
        Mention(id="m2", actor="c", occurred_at=at(1), post="a:b", users=["ivy"]),
        Mention(id="m3", actor="kate", occurred_at=at(1), post="p", users=["ivy"], comment="a:b:c"),
    ]
    ops = ops_of(events, settings.feeds)
    assert await inbox.apply(ops) == [None] * 3
    page = await inbox.page("ivy", None, 10)
    assert sorted(orjson.loads(g)["id"] for g in page.groups) == [
        "mention:a:b:c",
        "mention:a:b~c",
        "mention:a~b:c",
    ]
    assert await inbox.unread("ivy") == 3
    await inbox.mark_read("ivy", ["mention:a~b:c", "mention:a:b~c"])
    assert await inbox.unread("ivy") == 1
    await inbox.mark_read("ivy", ["mention:a:b:c"])
    assert await inbox.unread("ivy") == 0


async def test_a_mention_in_a_post_read_under_its_former_id_stays_read(
    redis: Redis, settings: Settings
) -> None:
    """Before 2026-12-07 a mention in a post was `mention:POST:ACTOR` and read marks were kept
    under that id: after the upgrade the group still reads as read, marking it again changes
    nothing (the unread count is not taken down twice), and its removal takes both marks."""
    inbox = Inbox(redis, settings.feeds)
    mention = Mention(id="m1", actor="bob", occurred_at=at(1), post="p1", users=["ivy"])
    other = Mention(id="m2", actor="cy", occurred_at=at(2), post="p2", users=["ivy"])
    assert await inbox.apply(ops_of([mention, other], settings.feeds)) == [None, None]
    assert await inbox.mark_read("ivy", ["mention:p1~bob"]) == 1
    marks = keys.read_marks("ivy")
    at_ms = await redis.hget(marks, "mention:p1~bob")
    await redis.hdel(marks, "mention:p1~bob")
    await redis.hset(marks, "mention:p1:bob", at_ms)  # as the former version kept it
    page = await inbox.page("ivy", None, 10)
    read = {g["id"]: g["read"] for g in map(orjson.loads, page.groups)}
    assert read == {"mention:p1~bob": True, "mention:p2~cy": False}
    assert await inbox.unread("ivy") == 1
    assert await inbox.mark_read("ivy", ["mention:p1~bob"]) == 0
    assert await inbox.unread("ivy") == 1
    (recall,) = retract(mention, settings.feeds)  # a moderator's recall
    assert await inbox.apply([recall]) == [None]
    assert not await redis.hexists(marks, "mention:p1:bob") and await inbox.unread("ivy") == 1
