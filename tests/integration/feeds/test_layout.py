"""The compact layout on a real redis-server: a full inbox stays in Redis's compact encodings
within the memory budget, and the time codec is the same with Redis's `struct` and without it
(the in-memory fake Redis has none)."""

from __future__ import annotations

from importlib import resources

import pytest
from redis.asyncio import Redis

from feeds.inbox import Inbox
from feeds.items import ItemOp
from feeds.limits import FeedLimits
from schemas import keys

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TEXT = "great shot of the lake this morning, thanks for sharing it!!"  # 60 characters
BUDGET = 200  # bytes of Redis memory per notification (README: Performance)


def mention(i: int) -> ItemOp:
    """A mention in a new comment, as most notifications are."""
    comment = f"c8a3f0c2d.{10_000 + i}"
    return ItemOp(
        "olga", f"m|c:{comment}", "a", 1_795_675_004_000 + i * 1_000, f"8a3f0c2d.{10_000 + i}",
        f"u{i % 2000}", f"mention:{comment}", "mention", f"p{i % 2000}-0", comment, TEXT,
    )  # fmt: skip


async def test_a_full_inbox_stays_compact(redis: Redis) -> None:
    limits = FeedLimits()
    inbox = Inbox(redis, limits)
    ops = [mention(i) for i in range(limits.max_groups)]
    assert await inbox.apply(ops) == [None] * len(ops)
    assert (await inbox.page("olga", None, 1)).unread == limits.max_groups
    assert await redis.object("encoding", keys.toggles("olga")) == b"listpack"
    assert await redis.object("encoding", keys.inbox("olga")) == b"quicklist"
    used = 0
    for key in (keys.toggles("olga"), keys.inbox("olga"), keys.changelog("olga")):
        used += await redis.memory_usage(key, samples=0)
    assert used / limits.max_groups <= BUDGET


async def test_the_time_codec_is_the_same_without_struct(redis: Redis) -> None:
    common = resources.files("feeds").joinpath("lua", "common.lua").read_text()
    probe = "\nlocal out = {} for i, t in ipairs(ARGV) do out[2 * i - 1] = pack_ms(tonumber(t)); "
    probe += "out[2 * i] = string.format('%d', unpack_ms(out[2 * i - 1])) end return out"
    times = ["-62135596800000", "-1", "0", "1", "1795675004123", "253402300799999"]
    head = ["a", "b", "c", "d", "e"]
    with_struct = await redis.eval(common + probe, 5, *head, *times)
    without = await redis.eval("local struct = nil\n" + common + probe, 5, *head, *times)
    assert with_struct == without
    assert [int(t) for t in without[1::2]] == [int(t) for t in times]
    assert all(len(packed) == 7 for packed in without[::2])
