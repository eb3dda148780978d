"""Trimming item registers past the horizon (feeds/horizon.py) on a real redis-server: a random
history applied with a trim in the middle ends in the same inboxes as without it, as long as
what comes after the trim is within the horizon; what is beyond it and could have been decided
by a trimmed register is refused (BeyondHorizon), never applied blindly."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from feeds import registers
from feeds.horizon import BeyondHorizon, Registers
from feeds.inbox import Inbox
from feeds.items import ItemOp, plan
from feeds.limits import FeedLimits
from schemas import keys, layouts
from schemas.events import Event
from tests.unit.builders import DAY_S, like, unlike

from .test_differential import USERS, events

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

BEFORE = (0, 1, 3600, DAY_S)  # times of the history before the trim
CUTOFF_S = DAY_S + 60  # the trim's horizon: a second day has begun
AFTER = (DAY_S + 120, DAY_S + 121, 2 * DAY_S)  # within the horizon: newer than the cutoff
LIMITS = (
    FeedLimits(),
    FeedLimits(max_groups=2, max_changes=50, shown_actors=2),  # the cap drops groups
    FeedLimits(max_groups=1, max_changes=50, shown_actors=1),
)


def numbered(log: list[Event], start: int) -> list[Event]:
    return [msgspec.structs.replace(e, id=f"{start + i:03}-{e.id}") for i, e in enumerate(log)]


History = tuple[FeedLimits, list[list[ItemOp]], list[list[ItemOp]]]


@st.composite
def histories(draw: st.DrawFn) -> History:
    """Batches before the trim (any time), and after it: new events within the horizon,
    redeliveries of the earlier ones, and late events from before the cutoff."""
    limits = draw(st.sampled_from(LIMITS))
    early = numbered(draw(st.lists(events(times=BEFORE), min_size=1, max_size=20)), 0)
    late = numbered(draw(st.lists(events(times=AFTER), max_size=12)), 100)
    beyond = numbered(draw(st.lists(events(times=BEFORE), max_size=6)), 200)
    again = draw(st.lists(st.sampled_from(early), max_size=6))
    after: list[Event] = draw(st.permutations([*late, *again, *beyond]))

    def batches(log: list[Event]) -> list[list[ItemOp]]:
        ops = [op for e in log for op in plan(e, limits)]
        size = draw(st.integers(1, 8))
        return [ops[i : i + size] for i in range(0, len(ops), size)]

    return limits, batches(early), batches(after)


async def views(redis: Redis, inbox: Inbox, user: str) -> dict[str, Any]:
    page = await inbox.page(user, None, 100)
    return {
        "groups": [orjson.loads(g) for g in page.groups],
        "unread": page.unread,
        "marks": await redis.hgetall(keys.read_marks(user)),
    }


@settings(max_examples=120, deadline=None)
@given(history=histories())
async def test_trimming_changes_nothing_within_the_horizon(redis_url: str, history: History) -> None:
    # two databases away from the `redis` fixture's and the differential test's
    trimmed, kept = (
        Redis.from_url(redis_url.replace("/0", "/3")),
        Redis.from_url(redis_url.replace("/0", "/4")),
    )
    try:
        await run_both(trimmed, kept, history)
    finally:
        await trimmed.aclose()
        await kept.aclose()


async def run_both(trimmed: Redis, kept: Redis, history: History) -> None:
    limits, early, after = history
    await trimmed.flushdb()
    await kept.flushdb()
    a, b = Inbox(trimmed, limits), Inbox(kept, limits)
    cutoff_ms = like("x", t=CUTOFF_S).at_ms
    for ops in early:
        assert await a.apply(ops) == [None] * len(ops)
        assert await b.apply(ops) == [None] * len(ops)
    regs = Registers(trimmed, limits)
    assert sorted([u async for u in regs.users()]) == sorted({op.user for ops in early for op in ops})
    for user in USERS:
        await regs.trim(user, cutoff_ms)
        # nothing older than the cutoff is left but what the inbox shows, and retractions
        fields = [f.decode() for f in await trimmed.hkeys(keys.toggles(user))]
        left = await registers.read(trimmed, user, [f for f in fields if f[:1] not in "#<"])
        assert all(r is None or r.at_ms >= cutoff_ms or r.state in "ax" for r in left)

    for ops in after:
        errors = await a.apply(ops)
        refused = [op for op, e in zip(ops, errors, strict=True) if isinstance(e, BeyondHorizon)]
        assert all(e is None or isinstance(e, BeyondHorizon) for e in errors)
        # only what a trimmed register could have decided: older than the cutoff, no retraction
        assert all(op.at_ms <= cutoff_ms and op.state != "x" for op in refused)
        rest = [op for op, e in zip(ops, errors, strict=True) if e is None]
        assert await b.apply(rest) == [None] * len(rest)

    for user in USERS:
        assert await views(trimmed, a, user) == await views(kept, b, user), user


async def test_a_new_users_watermark_is_empty_and_next_to_their_state(redis: Redis) -> None:
    """Lookups of a listpack-encoded hash scan it from the front: the state and the watermark,
    read with every apply, sit right after the first register, and the empty watermark refuses
    nothing, however old."""
    limits = FeedLimits()
    inbox = Inbox(redis, limits)
    ops = [op for i in range(20) for op in plan(like(f"fan{i}", "p1", "ivy", t=-DAY_S * (i + 1)), limits)]
    assert await inbox.apply(ops) == [None] * 20
    fields = await redis.hkeys(keys.toggles("ivy"))
    assert fields[:3] == [b"l|p1|fan0", layouts.STATE_FIELD.encode(), layouts.HORIZON_FIELD.encode()]
    assert await redis.hget(keys.toggles("ivy"), layouts.HORIZON_FIELD) == bytes(layouts.MS_BYTES)
    assert sum(orjson.loads(g)["count"] for g in (await inbox.page("ivy", None, 50)).groups) == 20


async def test_trimming_bounds_a_users_registers(redis: Redis) -> None:
    """Likes then unlikes of many fans, and groups dropped by the cap: the dropped groups'
    registers go with them, past the horizon only what the inbox shows keeps one; a late like
    of a trimmed item is refused."""
    limits = FeedLimits(max_groups=2)
    inbox = Inbox(redis, limits)
    day = [like(f"fan{i}", f"p{i % 5}", "olga", t=i) for i in range(40)]
    undo = [unlike(f"fan{i}", f"p{i % 5}", "olga", t=100 + i) for i in range(0, 40, 2)]
    history: list[Event] = [*day, *undo]
    ops = [op for e in history for op in plan(e, limits)]
    assert await inbox.apply(ops) == [None] * len(ops)
    shown = (await inbox.page("olga", None, 10)).groups
    counted = sum(orjson.loads(g)["count"] for g in shown)
    # the actors shown, the 20 undone (newer than every group the cap dropped, so each keeps its
    # register), the state and the watermark
    assert await redis.hlen(keys.toggles("olga")) == counted + 20 + 2

    cutoff_ms = like("x", t=DAY_S).at_ms
    trimmed = await Registers(redis, limits).trim("olga", cutoff_ms)
    assert trimmed == 20  # what is shown stays
    assert (await inbox.page("olga", None, 10)).groups == shown
    assert await Registers(redis, limits).trim("olga", cutoff_ms) == 0  # idempotent

    late = plan(like("fan0", "p0", "olga", t=200, eid="late"), limits)  # undone, trimmed: refused
    assert await redis.hexists(keys.toggles("olga"), "l|p0|fan0") == 0
    assert [type(e) for e in await inbox.apply(late)] == [BeyondHorizon]
    fresh = plan(like("fan0", "p0", "olga", t=DAY_S + 1, eid="fresh"), limits)  # newer: applies
    assert await inbox.apply(fresh) == [None]
