"""Change-log cursors: parsing, replay after a cursor, and Refetch when the gap is not retained."""

from __future__ import annotations

import orjson
import pytest
from redis.asyncio import Redis

from feeds import changelog
from feeds.changelog import Refetch, Replay
from feeds.inbox import Inbox
from feeds.items import plan
from feeds.limits import FeedLimits
from schemas import keys
from schemas.cursor import START, Cursor
from schemas.errors import Reason, Rejected
from tests.unit.builders import like, unlike

LIMITS = FeedLimits()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "abc.",
        ".1-0",
        "abc.x-1",
        "abc.1-x",
        "abc.1-2-3",
        "abc.-",
        "e." + "1" * 63,
        "e.²-0",
        "e.1-²",
        "e.1-0\n",
    ],
)
def test_bad_cursors_are_rejected_as_malformed(text: str) -> None:
    with pytest.raises(Rejected) as caught:
        Cursor.parse(text)
    assert (caught.value.reason, caught.value.pointer) == (Reason.MALFORMED, "/cursor")


@pytest.mark.parametrize(
    ("text", "cursor"),
    [
        ("a1b2.1700000000000-3", Cursor("a1b2", 1_700_000_000_000, 3)),
        ("a1b2.17-4294967296", Cursor("a1b2", 17, 4_294_967_296)),
        ("a1b2.17", Cursor("a1b2", 17)),
        ("-.0-0", START),
    ],
)
def test_cursors_parse(text: str, cursor: Cursor) -> None:
    assert Cursor.parse(text) == cursor
    assert Cursor.parse(str(cursor)) == cursor


def test_entry_ids_compare_numerically() -> None:
    assert changelog.entry_id(b"10-0") > changelog.entry_id("9-5")
    assert changelog.entry_id("9-10") > changelog.entry_id("9-9")


async def log_changes(redis: Redis, n: int) -> list[Cursor]:
    """`n` changes to olga's log (one like each) and the cursor of each."""
    inbox = Inbox(redis, LIMITS)
    for i in range(n):
        assert await inbox.apply(plan(like(f"fan{i}", post=f"p{i}", t=i), LIMITS)) == [None]
    replay = await changelog.read_after(redis, "olga", START, 10_000)
    assert isinstance(replay, Replay)
    return [c.cursor for c in replay.changes]


def posts(replay: Replay | Refetch) -> list[str]:
    assert isinstance(replay, Replay)
    return [orjson.loads(c.payload)["group"]["post"] for c in replay.changes]


@pytest.mark.anyio
async def test_read_after_a_cursor_returns_what_followed_it_in_order(redis: Redis) -> None:
    cursors = await log_changes(redis, 6)
    assert len(cursors) == 6 and len({c.epoch for c in cursors}) == 1
    assert posts(await changelog.read_after(redis, "olga", cursors[2], 100)) == ["p3", "p4", "p5"]
    assert posts(await changelog.read_after(redis, "olga", cursors[2], 2)) == ["p3", "p4"]
    assert posts(await changelog.read_after(redis, "olga", cursors[-1], 100)) == []
    tail = await changelog.tail(redis, "olga")
    assert tail == cursors[-1]


@pytest.mark.anyio
async def test_a_no_epoch_cursor_replays_everything_when_nothing_was_trimmed(redis: Redis) -> None:
    await log_changes(redis, 4)
    assert posts(await changelog.read_after(redis, "olga", START, 100)) == ["p0", "p1", "p2", "p3"]


@pytest.mark.anyio
async def test_before_the_log_exists(redis: Redis) -> None:
    assert await changelog.read_after(redis, "olga", START, 100) == Replay([])
    assert await changelog.tail(redis, "olga") == START
    stale = await changelog.read_after(redis, "olga", Cursor("lost-epoch", 5), 100)
    assert stale == Refetch(START)


@pytest.mark.anyio
async def test_another_epochs_cursor_must_refetch(redis: Redis) -> None:
    cursors = await log_changes(redis, 3)
    foreign = Cursor("not-" + cursors[0].epoch, cursors[0].number, cursors[0].check)
    assert await changelog.read_after(redis, "olga", foreign, 100) == Refetch(cursors[-1])


@pytest.mark.anyio
async def test_a_cursor_trimmed_past_must_refetch(redis: Redis) -> None:
    limits = FeedLimits(max_changes=8)
    inbox = Inbox(redis, limits)
    seen: list[Cursor] = []  # what a live client would hold after each change
    for i in range(15):
        assert await inbox.apply(plan(like(f"fan{i}", post=f"p{i}", t=i), limits)) == [None]
        seen.append(await changelog.tail(redis, "olga"))
    assert [c.number for c in seen] == list(range(1, 16))  # change n is `EPOCH.n-CHECK`
    assert await redis.llen(keys.changelog("olga")) == 8  # the last max_changes are kept
    tail = seen[-1]
    assert await changelog.read_after(redis, "olga", seen[0], 100) == Refetch(tail)
    assert await changelog.read_after(redis, "olga", START, 100) == Refetch(tail)
    # the oldest change kept is the oldest cursor that resumes: one trimmed away names nothing
    replay = await changelog.read_after(redis, "olga", seen[7], 100)
    assert isinstance(replay, Replay)
    assert [c.cursor for c in replay.changes] == seen[8:]
    assert await changelog.read_after(redis, "olga", seen[6], 100) == Refetch(tail)


@pytest.mark.anyio
async def test_a_replay_renders_each_change_from_the_current_group(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    for event in (like("bob", t=1), like("cid", t=2), like("dan", post="p2", t=3)):
        assert await inbox.apply(plan(event, LIMITS)) == [None]
    replay = await changelog.read_after(redis, "olga", START, 100)
    assert isinstance(replay, Replay)
    got = [orjson.loads(c.payload) for c in replay.changes]
    # the log keeps the unread count after each change; the group is rendered as it is now
    assert [(c["op"], c["unread"], c["group"]["post"], c["group"]["count"]) for c in got] == [
        ("upsert", 1, "p1", 2),
        ("upsert", 1, "p1", 2),
        ("upsert", 2, "p2", 1),
    ]
    assert await inbox.mark_read("olga", [got[0]["group"]["id"]]) == 1
    for undo in (unlike("bob", t=4), unlike("cid", t=5)):
        assert await inbox.apply(plan(undo, LIMITS)) == [None]
    replay = await changelog.read_after(redis, "olga", START, 100)
    assert isinstance(replay, Replay)
    got = [orjson.loads(c.payload) for c in replay.changes]
    gone = {"op": "remove", "id": got[0]["id"], "unseen": 1}  # unseen: as of the replay (p2 left)
    # changes to a group removed since replay as its removal (a later change says so anyway)
    assert got == [
        {**gone, "unread": 1},
        {**gone, "unread": 1},
        {"op": "upsert", "unread": 2, "unseen": 1, "group": got[2]["group"]},
        {"op": "read", "unread": 1, "unseen": 1, "groups": [gone["id"]]},
        {**gone, "unread": 1},
        {**gone, "unread": 1},
    ]
    assert got[2]["group"]["post"] == "p2" and not got[2]["group"]["read"]


@pytest.mark.anyio
async def test_live_push_carries_each_change_as_it_happened(redis: Redis) -> None:
    inbox = Inbox(redis, LIMITS)
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(keys.user_channel("olga"))
        await pubsub.get_message(timeout=1)  # the subscription's confirmation
        for event in (like("bob", t=1), like("cid", t=2)):
            assert await inbox.apply(plan(event, LIMITS)) == [None]
        pushed = [await pubsub.get_message(timeout=1) for _ in range(2)]
    tail = await changelog.tail(redis, "olga")
    live = [changelog.published(m["data"].decode()) for m in pushed if m]
    assert [c.cursor.number for c in live] == [1, 2] and live[-1].cursor == tail
    assert [orjson.loads(c.payload)["group"]["actors"] for c in live] == [["bob"], ["cid", "bob"]]


@pytest.mark.anyio
async def test_a_replay_shows_as_many_actors_as_the_writer(redis: Redis) -> None:
    limits = FeedLimits(shown_actors=5)
    inbox = Inbox(redis, limits)
    for i in range(6):
        assert await inbox.apply(plan(like(f"fan{i}", t=i), limits)) == [None]
    replay = await changelog.read_after(redis, "olga", START, 100)
    assert isinstance(replay, Replay)
    assert orjson.loads(replay.changes[-1].payload)["group"]["actors"] == [f"fan{i}" for i in range(5, 0, -1)]


def test_a_published_change_reads_with_its_push_tag() -> None:
    cursor = Cursor("e1", 7, 9_000_000)
    for tag, accepted_ms, traceparent in (("", "", ""), (changelog.push_tag(1_700), "1700", "")):
        live = changelog.published(f"e1 7 9000000{tag} " + '{"op":"read","all":true}')
        assert (live.cursor, live.accepted_ms, live.traceparent) == (cursor, accepted_ms, traceparent)
    traced = changelog.published("e1 7 9000000" + changelog.push_tag(1_700, "00-ab-cd-01") + " {}")
    assert (traced.accepted_ms, traced.traceparent, traced.payload) == ("1700", "00-ab-cd-01", "{}")
