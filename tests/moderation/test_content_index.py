"""The actors' content index (notifier/moderation/content.py) on a real Redis, one server then a
cluster: the velocity count in the actor's field and in their own sorted set agree, an event
appended again long after its acceptance (a redriven dead letter) is no burst, and the sweep's
buckets are due by the clock, whatever restarts the jobs role."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import pytest
from redis.asyncio import Redis

from feeds.scripts import run_checked
from notifier.moderation import content
from notifier.moderation.content import ContentIndex
from notifier.runtime.eventlog import LoggedEvent
from schemas import keys, layouts
from schemas.events import Comment

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

RETAIN_MS: Final = 7 * 86_400_000
T0: Final = 1_796_000_000_000  # a time in ms


def logged(n: int, accepted_ms: int, position_ms: int, actor: str = "bob") -> LoggedEvent:
    event = Comment(
        id=f"e{n}",
        actor=actor,
        occurred_at=datetime.fromtimestamp(accepted_ms / 1000, UTC),
        post=f"p{n}",
        owner="alice",
        comment=f"c{n}",
        text="hello",
    )
    return LoggedEvent(f"{position_ms}-{n}".encode(), event, "test", accepted_ms)


async def screen(index: ContentIndex, event: LoggedEvent, *, deliver: bool = True) -> int:
    """What the screener does with a comment: count it, then index it if delivered."""
    [count] = await run_checked(
        index._redis,
        [index.count(event.event.actor, index.position(event), event.accepted_ms)],
        index.scripts,
    )
    if deliver:
        await index.remember([event])
    return int(count)


async def test_a_redrive_is_counted_as_of_its_acceptance_not_as_a_burst(redis: Redis) -> None:
    index = ContentIndex(redis, partitions=1, retain_ms=RETAIN_MS)
    firsts = [logged(n, T0 + n * 600_000, T0 + n * 600_000) for n in range(25)]  # 10 minutes apart
    assert [await screen(index, e) for e in firsts] == [1] * 25
    later = T0 + 25 * 600_000 + 3_600_000  # appended again an hour after the last
    again = [logged(n, e.accepted_ms, later + n) for n, e in enumerate(firsts)]
    assert [await screen(index, e) for e in again] == [1] * 25
    # each is indexed at both positions (a ban recalls what either delivered: 50 positions in
    # the actor's own sorted set), counted once; a comment right after the redrive counts itself
    spill = keys.mod_content_spill("bob")
    assert await redis.zcount(spill, 0, "+inf") == 50
    assert await screen(index, logged(99, later + 100, later + 100)) == 1


@pytest.mark.parametrize("spilled", [False, True])
async def test_out_of_order_events_count_alike_in_the_field_and_the_sorted_set(
    redis: Redis, spilled: bool
) -> None:
    """A at 0 s, B at 70 s, then C at 30 s (screened late): C's window holds A and C."""
    index = ContentIndex(redis, partitions=1, retain_ms=RETAIN_MS)
    if spilled:  # 20 comments ten minutes before: kept, outside every window here
        for n in range(20):
            await screen(index, logged(100 + n, T0 - 600_000 + n, T0 - 600_000 + n))
        assert await redis.exists(keys.mod_content_spill("bob"))
    counts = [await screen(index, logged(n, T0 + s * 1000, T0 + s * 1000)) for n, s in enumerate((0, 70, 30))]
    assert counts == [1, 1, 2]
    assert not spilled or await redis.hget(keys.mod_content("bob"), "bob") is None


async def test_the_sweep_takes_the_buckets_due_by_the_clock(redis: Redis) -> None:
    index = ContentIndex(redis, partitions=1, retain_ms=RETAIN_MS)
    await screen(index, logged(1, T0, T0, actor="zed"))
    bucket = next(b for b in range(keys.CONTENT_BUCKETS) if keys.content_bucket(b) == keys.mod_content("zed"))
    due = bucket * content.SWEEP_EVERY_MS // keys.CONTENT_BUCKETS
    hour = (T0 + RETAIN_MS) // content.SWEEP_EVERY_MS * content.SWEEP_EVERY_MS + content.SWEEP_EVERY_MS
    every = 10_000
    # not due: kept, though past the retention; a restarted jobs role (a new index) agrees
    assert await ContentIndex(redis, partitions=1, retain_ms=RETAIN_MS).sweep(hour + due - every, every) == 0
    assert await redis.hget(keys.mod_content("zed"), "zed") is not None
    assert await index.sweep(hour + due + every - 1, every) == 1
    assert await redis.hget(keys.mod_content("zed"), "zed") is None


async def test_an_entry_appended_again_is_delivered_never_counted(redis: Redis) -> None:
    index = ContentIndex(redis, partitions=1, retain_ms=RETAIN_MS)
    first = logged(1, T0, T0)
    await screen(index, first)
    await screen(index, logged(1, T0, T0 + 3_600_000))  # redriven an hour on
    entries = layouts.decode_content(await redis.hget(keys.mod_content("bob"), "bob"))
    assert [(e.delivered, e.position) for e in entries] == [
        (True, f"0/{T0}-1"),
        (True, f"0/{T0 + 3_600_000}-1"),
    ]
    raw = (await redis.hget(keys.mod_content("bob"), "bob")).decode()
    assert raw.split(layouts.CONTENT_SEPARATOR)[1].startswith(layouts.CONTENT_AGAIN)
