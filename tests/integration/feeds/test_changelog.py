"""Resume cursors against a real change log: replay after a cursor, refetch once it is trimmed
away or belongs to another epoch."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from redis.asyncio import Redis

from feeds import changelog
from feeds.changelog import Refetch, Replay
from feeds.inbox import Inbox
from feeds.items import ItemOp
from feeds.scripts import STATE
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.cursor import START, Cursor
from schemas.errors import Reason, Rejected

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def like_op(user: str, i: int) -> ItemOp:
    """A like of a new post each time: one new group, so exactly one change."""
    return ItemOp(user, f"l|p{i}|fan", "a", 1_000 + i, f"e{i}", "fan", f"like:p{i}:0", "like", f"p{i}")


async def logged(redis: Redis, inbox: Inbox, ops: list[ItemOp]) -> list[Cursor]:
    """Apply `ops` one call each; the cursor of each change, as a live client got it."""
    out = []
    for op in ops:
        await inbox.apply([op])
        out.append(await changelog.tail(redis, op.user))
    return out


async def test_before_the_log_exists_there_is_nothing_to_replay(redis: Redis) -> None:
    tail = await changelog.tail(redis, "kim")
    assert tail == START
    assert await changelog.read_after(redis, "kim", tail, 10) == Replay([])
    assert isinstance(await changelog.read_after(redis, "kim", Cursor("e1", 1), 10), Refetch)


async def test_read_after_returns_the_later_changes_in_order_in_pages(
    redis: Redis, settings: Settings
) -> None:
    inbox = Inbox(redis, settings.feeds)
    every = await logged(redis, inbox, [like_op("lou", i) for i in range(6)])
    assert [c.number for c in every] == list(range(1, 7))
    assert len({c.check for c in every}) == 6  # one check per script call
    assert [c.cursor for c in await _all(redis, "lou")] == every

    page = await changelog.read_after(redis, "lou", every[1], 3)
    assert isinstance(page, Replay)
    assert [c.cursor for c in page.changes] == every[2:5]
    assert [c.payload for c in page.changes] == [c.payload for c in (await _all(redis, "lou"))[2:5]]
    assert await changelog.read_after(redis, "lou", every[-1], 3) == Replay([])


async def _all(redis: Redis, user: str) -> list[changelog.Change]:
    replay = await changelog.read_after(redis, user, START, 1_000)
    assert isinstance(replay, Replay)
    return replay.changes


async def test_a_log_at_its_bound_is_trimmed_a_sixteenth_at_a_time(redis: Redis, settings: Settings) -> None:
    limits = dataclasses.replace(settings.feeds, max_changes=32)
    inbox = Inbox(redis, limits)
    seen, lengths = [], []
    for op in [like_op("tim", i) for i in range(60)]:
        seen += await logged(redis, inbox, [op])
        lengths.append(await redis.llen(keys.changelog("tim")))
    assert lengths[:34] == list(range(1, 35))  # up to a sixteenth past the bound...
    assert lengths[34:] == [32, 33, 34] * 8 + [32, 33]  # ...then back to it: one LTRIM per 3 changes
    # the 33 kept are changes 28..60: a cursor at 28 resumes, one at 27 (trimmed) refetches
    resumed = await changelog.read_after(redis, "tim", seen[27], 100)
    assert isinstance(resumed, Replay) and [c.cursor for c in resumed.changes] == seen[28:]
    assert await changelog.read_after(redis, "tim", seen[26], 100) == Refetch(seen[-1])


async def test_a_cursor_whose_change_was_trimmed_must_refetch(redis: Redis, settings: Settings) -> None:
    limits = dataclasses.replace(settings.feeds, max_changes=8)
    inbox = Inbox(redis, limits)
    seen = await logged(redis, inbox, [like_op("max", i) for i in range(13)])
    assert await redis.llen(keys.changelog("max")) == 8  # trimmed to max_changes
    tail = await changelog.tail(redis, "max")
    assert tail == seen[-1] and tail.number == 13
    assert await changelog.read_after(redis, "max", seen[0], 100) == Refetch(tail)
    assert await changelog.read_after(redis, "max", START, 100) == Refetch(tail)
    # the oldest change kept is the oldest resume point; the one before it was trimmed away, and
    # its check with it: nothing can tell it from a number reused after a loss
    assert await changelog.read_after(redis, "max", seen[4], 9) == Refetch(tail)
    resumed = await changelog.read_after(redis, "max", seen[5], 100)
    assert isinstance(resumed, Replay)
    assert [c.cursor for c in resumed.changes] == seen[6:]


async def test_a_cursor_of_another_epoch_must_refetch(redis: Redis, settings: Settings) -> None:
    inbox = Inbox(redis, settings.feeds)
    [old] = await logged(redis, inbox, [like_op("ned", 0)])
    await redis.delete(keys.changelog("ned"))
    await redis.hdel(keys.toggles("ned"), STATE)  # the log was lost
    await inbox.apply([like_op("ned", 1)])
    tail = await changelog.tail(redis, "ned")
    assert tail.epoch != old.epoch
    assert await changelog.read_after(redis, "ned", old, 10) == Refetch(tail)
    assert await changelog.read_after(redis, "ned", Cursor("nope", tail.number, tail.check), 10) == Refetch(
        tail
    )


@pytest.mark.parametrize("direct", [False, True], ids=["script", "direct"])
async def test_a_cursor_of_another_users_log_must_refetch(
    redis: Redis, settings: Settings, direct: bool
) -> None:
    """Logs one call starts get epochs of their own (schemas/layouts.py user_epoch): the same
    call's check and change number in two users' logs used to make one's cursor resume the
    other's log in silence."""
    inbox = Inbox(redis, settings.feeds, direct=direct)
    assert (
        await inbox.apply([like_op("amy", 0), like_op("amy", 1), like_op("ben", 0), like_op("ben", 1)])
        == [None] * 4
    )
    amy, ben = await changelog.tail(redis, "amy"), await changelog.tail(redis, "ben")
    assert (amy.number, amy.check) == (ben.number, ben.check) and amy.epoch != ben.epoch
    assert await changelog.read_after(redis, "amy", ben, 10) == Refetch(amy)
    assert await changelog.read_after(redis, "ben", Cursor(ben.epoch, 1, ben.check), 10) == Replay(
        (await _all(redis, "ben"))[1:]
    )


@pytest.mark.parametrize("text", ["", "no-dot", ".1-0", "e.x-1", "e." + "9" * 70])
def test_a_malformed_cursor_is_rejected(text: str) -> None:
    with pytest.raises(Rejected) as raised:
        Cursor.parse(text)
    assert raised.value.reason is Reason.MALFORMED


async def test_a_cursor_past_the_end_of_the_log_must_refetch(redis: Redis, settings: Settings) -> None:
    inbox = Inbox(redis, settings.feeds)
    seen = await logged(redis, inbox, [like_op("ola", i) for i in range(3)])
    tail = seen[-1]
    for number in (tail.number + 1, tail.number + 1_000):
        for check in (tail.check, 0):
            ahead = Cursor(tail.epoch, number, check)
            assert await changelog.read_after(redis, "ola", ahead, 10) == Refetch(tail)


async def test_a_cursor_before_the_log_is_only_the_start(redis: Redis, settings: Settings) -> None:
    """`-` (before the log) is only ever handed out as -.0-0: a forged -.N-C is refused, with
    or without a log, instead of replaying from the start or echoing a cursor never issued."""
    assert await changelog.read_after(redis, "pia", Cursor("-", 5, 77), 10) == Refetch(START)
    assert await changelog.read_after(redis, "pia", Cursor("-", 0, 9), 10) == Refetch(START)
    seen = await logged(redis, Inbox(redis, settings.feeds), [like_op("pia", i) for i in range(2)])
    for forged in (Cursor("-", 5, 0), Cursor("-", 1, 0), Cursor("-", 0, seen[0].check)):
        assert await changelog.read_after(redis, "pia", forged, 10) == Refetch(seen[-1])
    replay = await changelog.read_after(redis, "pia", START, 10)
    assert isinstance(replay, Replay) and [c.cursor for c in replay.changes] == seen


async def test_a_number_reused_after_a_loss_must_refetch(redis: Redis, settings: Settings) -> None:
    """Redis lost the log's last change (an AOF with its tail cut): the next change reuses its
    number, under another check, and the cursor of the lost one names nothing."""
    inbox = Inbox(redis, settings.feeds)
    await logged(redis, inbox, [like_op("pia", 0)])
    before = await redis.hget(keys.toggles("pia"), STATE)
    [lost] = await logged(redis, inbox, [like_op("pia", 1)])
    await redis.rpop(keys.changelog("pia"))  # what the cut AOF leaves: the log and state as before
    await redis.hset(keys.toggles("pia"), STATE, before)
    [reused] = await logged(redis, inbox, [like_op("pia", 2)])
    assert (reused.epoch, reused.number) == (lost.epoch, lost.number) and reused.check != lost.check
    assert await changelog.read_after(redis, "pia", lost, 10) == Refetch(reused)
    assert await changelog.read_after(redis, "pia", reused, 10) == Replay([])


async def test_a_cursor_from_before_checks_resumes_only_a_change_logged_before_them(
    redis: Redis, settings: Settings
) -> None:
    """Log entries written before checks carry none; an old `EPOCH.N-0` cursor still resumes
    from such a change, and gets refetch for a change logged since (a check it cannot know)."""
    inbox = Inbox(redis, settings.feeds)
    seen = await logged(redis, inbox, [like_op("quin", i) for i in range(3)])
    log_key = keys.changelog("quin")
    for i, entry in enumerate(await redis.lrange(log_key, 0, 1)):  # the first two, as logged before
        await redis.lset(log_key, i, entry[3:])  # without the check's 3 bytes
    old = Cursor(seen[0].epoch, 1)
    assert str(old) == f"{seen[0].epoch}.1-0"
    replay = await changelog.read_after(redis, "quin", old, 10)
    assert isinstance(replay, Replay)
    assert [c.cursor for c in replay.changes] == [Cursor(old.epoch, 2), seen[2]]
    assert await changelog.read_after(redis, "quin", Cursor(old.epoch, 3), 10) == Refetch(seen[2])


async def test_past_the_cap_a_new_group_is_one_live_frame_carrying_what_it_dropped(redis: Redis) -> None:
    """The log keeps the upsert and the remove (a replay sends both); live push sends one."""
    inbox = Inbox(redis, dataclasses.replace(Settings().feeds, max_groups=2))
    await inbox.apply([like_op("max", 1), like_op("max", 2)])
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.user_channel("max"))
    try:
        assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
        await inbox.apply([like_op("max", 3), like_op("max", 4)])
        frames: list[changelog.Live] = []
        while len(frames) < 2:
            message = await pubsub.get_message(timeout=5)
            assert message is not None, frames
            frames.append(changelog.published(message["data"].decode()))
        assert await pubsub.get_message(timeout=0.2) is None  # nothing else: one frame per new group
    finally:
        await pubsub.aclose()
    assert [f.cursor.number for f in frames] == [4, 6]  # each under its remove's number
    payloads = [orjson.loads(f.payload) for f in frames]
    assert [(p["op"], p["group"]["id"], p["dropped"], p["unread"]) for p in payloads] == [
        ("upsert", "like:p3:0", ["like:p1:0"], 2),
        ("upsert", "like:p4:0", ["like:p2:0"], 2),
    ]
    replay = await changelog.read_after(redis, "max", START, 100)
    assert isinstance(replay, Replay)
    # rendered as the views are now: the dropped groups' upserts come as removes
    ops = ["remove", "remove", "upsert", "remove", "upsert", "remove"]
    assert [orjson.loads(c.payload)["op"] for c in replay.changes] == ops


async def test_a_change_logged_under_a_mention_in_a_posts_former_id_gets_refetch(
    redis: Redis, settings: Settings
) -> None:
    """Before 2026-12-07 a mention in a post was `mention:POST:ACTOR`, and the log names its
    changes so. Resuming across them was rendered as the group's removal (the log's id named no
    group): the client lost it. It is told to refetch; marking it read by that id still works."""
    inbox = Inbox(redis, settings.feeds)
    mention = ItemOp(
        "olga", "m|p:p1|bob", "a", 1_000, "e1", "bob", "mention:p1~bob", "mention", "p1", "", "hi"
    )
    before = await changelog.tail(redis, "olga")
    [cursor] = await logged(redis, inbox, [mention])
    log = keys.changelog("olga")
    entry = (await redis.lrange(log, -1, -1))[0]
    await redis.lset(log, -1, entry.replace(b"mp1~bob", b"mp1:bob"))  # as the former version logged it
    assert await changelog.read_after(redis, "olga", before, 10) == Refetch(cursor)
    assert await changelog.read_after(redis, "olga", cursor, 10) == Replay([])
    assert await inbox.mark_read("olga", ["mention:p1:bob"]) == 1  # the former id, from a client of then
    assert await inbox.unread("olga") == 0
