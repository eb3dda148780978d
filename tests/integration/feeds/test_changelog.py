"""Resume cursors against a real change log: replay after a cursor, refetch once it is trimmed
away or belongs to another epoch."""

from __future__ import annotations

import dataclasses

import pytest
from redis.asyncio import Redis

from feeds import changelog
from feeds.changelog import NO_EPOCH, Cursor, Refetch, Replay
from feeds.inbox import Inbox
from feeds.items import ItemOp
from feeds.scripts import STATE
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.errors import Reason, Rejected

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def like_op(user: str, i: int) -> ItemOp:
    """A like of a new post each time: one new group, so exactly one change."""
    return ItemOp(user, f"l|p{i}|fan", "a", 1_000 + i, f"e{i}", "fan", f"like:p{i}:0", "like", f"p{i}")


async def cursors(redis: Redis, user: str) -> list[Cursor]:
    """The cursor of every change the log still holds (the last `length` of them, numbered from 1)."""
    tail = await changelog.tail(redis, user)
    kept = await redis.llen(keys.changelog(user))
    return [Cursor(tail.epoch, (n, 0)) for n in range(tail.entry[0] - kept + 1, tail.entry[0] + 1)]


async def test_before_the_log_exists_there_is_nothing_to_replay(redis: Redis) -> None:
    tail = await changelog.tail(redis, "kim")
    assert tail == Cursor(NO_EPOCH, (0, 0))
    assert await changelog.read_after(redis, "kim", tail, 10) == Replay([])
    assert isinstance(await changelog.read_after(redis, "kim", Cursor("e1", (1, 0)), 10), Refetch)


async def test_read_after_returns_the_later_changes_in_order_in_pages(
    redis: Redis, settings: Settings
) -> None:
    inbox = Inbox(redis, settings.feeds)
    await inbox.apply([like_op("lou", i) for i in range(6)])
    every = await cursors(redis, "lou")
    assert len(every) == 6
    assert every == sorted(every, key=lambda c: c.entry)
    assert await changelog.tail(redis, "lou") == every[-1]

    page = await changelog.read_after(redis, "lou", every[1], 3)
    assert isinstance(page, Replay)
    assert [c.cursor for c in page.changes] == every[2:5]
    assert [c.payload for c in page.changes] == [c.payload for c in (await _all(redis, "lou"))[2:5]]
    assert await changelog.read_after(redis, "lou", every[-1], 3) == Replay([])


async def _all(redis: Redis, user: str) -> list[changelog.Change]:
    replay = await changelog.read_after(redis, user, Cursor(NO_EPOCH, (0, 0)), 1_000)
    assert isinstance(replay, Replay)
    return replay.changes


async def test_a_cursor_whose_successors_were_trimmed_must_refetch(redis: Redis, settings: Settings) -> None:
    limits = dataclasses.replace(settings.feeds, max_changes=8)
    inbox = Inbox(redis, limits)
    await inbox.apply([like_op("max", 0)])
    [stale] = await cursors(redis, "max")
    await inbox.apply([like_op("max", i) for i in range(1, 13)])

    kept = await cursors(redis, "max")
    assert len(kept) == 8  # trimmed to max_changes
    tail = await changelog.tail(redis, "max")
    assert tail == kept[-1] == Cursor(stale.epoch, (13, 0))
    assert await changelog.read_after(redis, "max", stale, 100) == Refetch(tail)
    assert await changelog.read_after(redis, "max", Cursor(NO_EPOCH, (0, 0)), 100) == Refetch(tail)
    # the oldest cursor still resumable is the last one trimmed away; from there nothing is missing
    trimmed = Cursor(stale.epoch, (kept[0].entry[0] - 1, 0))
    assert await changelog.read_after(
        redis, "max", Cursor(stale.epoch, (trimmed.entry[0] - 1, 0)), 9
    ) == Refetch(tail)
    resumed = await changelog.read_after(redis, "max", trimmed, 100)
    assert isinstance(resumed, Replay)
    assert [c.cursor for c in resumed.changes] == kept


async def test_a_cursor_of_another_epoch_must_refetch(redis: Redis, settings: Settings) -> None:
    inbox = Inbox(redis, settings.feeds)
    await inbox.apply([like_op("ned", 0)])
    [old] = await cursors(redis, "ned")
    await redis.delete(keys.changelog("ned"))
    await redis.hdel(keys.toggles("ned"), STATE)  # the log was lost
    await inbox.apply([like_op("ned", 1)])
    tail = await changelog.tail(redis, "ned")
    assert tail.epoch != old.epoch
    assert await changelog.read_after(redis, "ned", old, 10) == Refetch(tail)
    assert await changelog.read_after(redis, "ned", Cursor("nope", tail.entry), 10) == Refetch(tail)


@pytest.mark.parametrize("text", ["", "no-dot", ".1-0", "e.x-1", "e." + "9" * 70])
def test_a_malformed_cursor_is_rejected(text: str) -> None:
    with pytest.raises(Rejected) as raised:
        Cursor.parse(text)
    assert raised.value.reason is Reason.MALFORMED
