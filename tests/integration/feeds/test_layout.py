"""The compact layout on a real redis-server: a full inbox stays in Redis's compact encodings
within the memory budget, the time and state codecs are the same with Redis's `struct` and
without it (the in-memory fake Redis has none), and what the scripts store and publish reads
back with schemas/layouts.py."""

from __future__ import annotations

from importlib import resources

import orjson
import pytest
from redis.asyncio import Redis

from feeds import scripts
from feeds.inbox import Inbox
from feeds.items import ItemOp
from feeds.limits import FeedLimits
from schemas import keys, layouts
from schemas.layouts import lua_constants

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
    common = lua_constants() + resources.files("feeds").joinpath("lua", "common.lua").read_text()
    probe = "\nlocal out = {} for i, t in ipairs(ARGV) do out[2 * i - 1] = pack_ms(tonumber(t)); "
    probe += "out[2 * i] = string.format('%d', unpack_ms(out[2 * i - 1])) end return out"
    times = ["-62135596800000", "-1", "0", "1", "1795675004123", "253402300799999"]
    head = ["a", "b", "c", "d", "e"]
    with_struct = await redis.eval(common + probe, 5, *head, *times)
    without = await redis.eval("local struct = nil\n" + common + probe, 5, *head, *times)
    assert with_struct == without
    assert [int(t) for t in without[1::2]] == [int(t) for t in times]
    assert all(len(packed) == 7 for packed in without[::2])


async def test_the_state_codec_is_the_same_without_struct(redis: Redis) -> None:
    common = lua_constants() + resources.files("feeds").joinpath("lua", "common.lua").read_text()
    probe = "\nlocal out = {} for i = BASE + 1, #ARGV, 3 do "
    probe += "local s = {epoch = 'e0e0e0e0e0e0', seq = tonumber(ARGV[i]), unread = tonumber(ARGV[i + 1]), "
    probe += "all = tonumber(ARGV[i + 2]), groups = ARGV[i + 2] == '7'} SHOWN = 3 local raw = pack_state(s) "
    probe += "local e, q, u, w, a, g = unpack_state(raw) out[#out + 1] = raw "
    probe += "out[#out + 1] = table.concat({e, q, u, w, a or '-', tostring(g)}, ' ') end return out"
    # seq, unread, the read-all mark ('': a state without the summary, as written before)
    values = [
        *("0", "0", ""),
        *("1", "-1", "0"),
        *("1099511627775", "2147483647", "7"),
        *("12345", "-2147483648", "1795675004123"),
    ]
    head = ["a", "b", "c", "d"]
    with_struct = await redis.eval(common + probe, 4, *head, "", "", "e", "1", "1", "0", *values)
    without = await redis.eval(
        "local struct = nil\n" + common + probe, 4, *head, "", "", "e", "1", "1", "0", *values
    )
    assert with_struct == without
    for raw, seq, unread, all_ms in zip(without[::2], values[::3], values[1::3], values[2::3], strict=True):
        state = layouts.decode_state(raw)
        assert state == layouts.UserState(
            "e0e0e0e0e0e0", int(seq), int(unread), 3, int(all_ms) if all_ms else None, all_ms in ("7", "")
        )
        assert layouts.encode_state(state) == raw


async def test_what_the_apply_stores_and_publishes_reads_back_with_the_layouts(redis: Redis) -> None:
    inbox = Inbox(redis, FeedLimits())
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.user_channel("olga"))
    await pubsub.get_message(timeout=5)  # the subscription's confirmation
    try:
        op = ItemOp("olga", "l|p1|ann", "a", 1_795_675_004_123, "e.1", "ann", "like:p1:20783", "like", "p1")
        assert await inbox.apply([op], [layouts.push_tag(1_795_675_004_200, "00-ab-cd-01")]) == [None]
        raw = await redis.hget(keys.toggles("olga"), "l|p1|ann")
        assert layouts.decode_register(raw) == layouts.Register("a", op.at_ms, "e.1", "20783")
        assert layouts.encode_register(layouts.decode_register(raw)) == raw
        state = layouts.decode_state(await redis.hget(keys.toggles("olga"), layouts.STATE_FIELD))
        assert (state.last_change, state.unread) == (1, 1)
        message = await pubsub.get_message(timeout=5)
        while message is None or message["type"] != "message":
            message = await pubsub.get_message(timeout=5)
        published = layouts.parse_published(message["data"].decode())
        assert (published.epoch, published.number) == (state.epoch, 1)
        assert (published.accepted_ms, published.traceparent) == ("1795675004200", "00-ab-cd-01")
        assert layouts.format_published(published) == message["data"].decode()
        check, rest = layouts.decode_log_check(await redis.lindex(keys.changelog("olga"), 0))
        assert check == published.check and rest.startswith(b"u1 ")
        assert layouts.encode_log_check(check) + rest == await redis.lindex(keys.changelog("olga"), 0)
    finally:
        await pubsub.aclose()


async def test_the_records_and_log_entries_the_apply_writes_are_the_layouts(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What feeds/direct.py writes from Python is what lua/apply.lua writes."""
    candidate = "0123456789ab"  # the call's epoch candidate
    monkeypatch.setattr(scripts, "new_epoch", lambda: candidate)
    inbox, t = Inbox(redis, FeedLimits()), 1_795_675_004_123
    ops = [
        ItemOp("olga", "l|p1|ann", "a", t, "e.1", "ann", "like:p1:20783", "like", "p1"),
        ItemOp("olga", "c|c1", "a", t + 1, "e.2", "bo", "comment:c1", "comment", "p1", "c1", "hi | there"),
        ItemOp("olga", "m|p:p2|cy", "a", t + 2, "e.3", "cy", "mention:p2~cy", "mention", "p2", "", "@olga"),
        ItemOp("olga", "m|c:c9", "a", t + 3, "e.4", "dee", "mention:c9", "mention", "p3", "c9", ""),
    ]
    assert await inbox.apply(ops) == [None] * 4
    records = await redis.lrange(keys.inbox("olga"), 0, -1)
    assert records == [
        layouts.encode_single_record(t + 3, "mention:c9", "dee", "p3", "", in_comment=True),
        layouts.encode_single_record(t + 2, "mention:p2~cy", "cy", "p2", "@olga", in_comment=False),
        layouts.encode_single_record(t + 1, "comment:c1", "bo", "p1", "hi | there", in_comment=True),
        layouts.encode_group_record(t, "like:p1:20783"),
    ]
    assert [layouts.record_group(r) for r in records] == [(op.at_ms, op.group_id) for op in reversed(ops)]
    assert [layouts.is_group_record(r) for r in records] == [False, False, False, True]
    entries = await redis.lrange(keys.changelog("olga"), 0, -1)
    check = layouts.decode_log_check(entries[0])[0]
    assert entries == [
        layouts.encode_log_entry(check, layouts.OP_UPSERT, n + 1, layouts.short_group(op.group_id))
        for n, op in enumerate(ops)
    ]
    assert check == layouts.check_of_epoch(candidate)  # the call's
    epoch = layouts.decode_state(await redis.hget(keys.toggles("olga"), layouts.STATE_FIELD)).epoch
    assert epoch == layouts.user_epoch(candidate, keys.changelog("olga"))  # the user's own


async def test_a_state_written_as_text_before_is_read_and_rewritten_binary(redis: Redis) -> None:
    await redis.hset(keys.toggles("olga"), layouts.STATE_FIELD, "a1b2c3d4e5f6 41 5 3")
    op = ItemOp("olga", "f|ann", "a", 1_795_675_004_123, "e.1", "ann", "follow:20783", "follow")
    assert await Inbox(redis, FeedLimits()).apply([op]) == [None]
    raw = await redis.hget(keys.toggles("olga"), layouts.STATE_FIELD)
    # with the read marks' summary learned on the way (no marks)
    assert raw[0] == 0 and layouts.decode_state(raw) == layouts.UserState("a1b2c3d4e5f6", 42, 6, 3, 0, False)


T0 = 1_795_675_004_000


def like(actor: str, post: str, at_ms: int) -> ItemOp:
    return ItemOp(
        "olga", f"l|{post}|{actor}", "a", at_ms, f"e.{actor}", actor, f"like:{post}:20783", "like", post
    )


async def state_of(redis: Redis) -> layouts.UserState:
    return layouts.decode_state(await redis.hget(keys.toggles("olga"), layouts.STATE_FIELD))


async def test_read_marks_kept_by_a_rebuild_are_learned_into_the_state(redis: Redis) -> None:
    # a rebuild deleted the views, the state with them, and kept the read marks
    await redis.hset(keys.read_marks("olga"), mapping={"*": T0 + 10, "seen": T0 + 10})
    inbox = Inbox(redis, FeedLimits())
    assert await inbox.apply([like("ann", "p1", T0 + 5), like("bob", "p2", T0 + 20)]) == [None, None]
    page = await inbox.page("olga", None, 10)
    assert page.unread == 1
    assert [orjson.loads(g)["read"] for g in page.groups] == [False, True]
    state = await state_of(redis)
    assert (state.read_all_ms, state.group_marks) == (T0 + 10, False)


async def test_a_state_written_before_the_summary_learns_it_with_the_group_marks(redis: Redis) -> None:
    before = layouts.encode_state(layouts.UserState("a1b2c3d4e5f6", 3, 0, 3))  # no summary
    assert layouts.decode_state(before).read_all_ms is None
    await redis.hset(keys.toggles("olga"), layouts.STATE_FIELD, before)
    await redis.hset(keys.read_marks("olga"), mapping={"*": T0, "like:p1:20783": T0 + 50})
    inbox = Inbox(redis, FeedLimits())
    assert await inbox.apply([like("ann", "p1", T0 + 40), like("bob", "p2", T0 + 40)]) == [None, None]
    state = await state_of(redis)
    # p1's group is read by its own mark, p2's is not
    assert (state.unread, state.read_all_ms, state.group_marks) == (1, T0, True)


async def test_marking_read_keeps_the_summary_in_step(redis: Redis) -> None:
    inbox = Inbox(redis, FeedLimits())
    assert await inbox.apply([like("ann", "p1", T0 + 1), like("bob", "p2", T0 + 2)]) == [None, None]
    assert (await state_of(redis)).group_marks is False
    assert await inbox.mark_read("olga", ["like:p1:20783"]) == 1
    state = await state_of(redis)
    assert (state.unread, state.read_all_ms, state.group_marks) == (1, 0, True)
    assert await inbox.mark_read("olga", None) == 1
    assert (await state_of(redis)).read_all_ms == T0 + 2
    # read by the marks: a like of before changes nothing, a later one is unread
    assert await inbox.apply([like("cy", "p1", T0), like("dee", "p2", T0 + 3)]) == [None, None]
    assert (await state_of(redis)).unread == 1
