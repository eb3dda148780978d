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


def logged(n: int, accepted_ms: int, position_ms: int, actor: str = "bob", first: str = "") -> LoggedEvent:
    event = Comment(
        id=f"e{n}",
        actor=actor,
        occurred_at=datetime.fromtimestamp(accepted_ms / 1000, UTC),
        post=f"p{n}",
        owner="alice",
        comment=f"c{n}",
        text="hello",
    )
    return LoggedEvent(
        f"{position_ms}-{n}".encode(), event, "test", accepted_ms, redriven_from=first.encode()
    )


async def screen(index: ContentIndex, event: LoggedEvent, *, deliver: bool = True) -> int:
    """What the screener does with a comment: count it, then index it if delivered."""
    [count] = await run_checked(
        index._redis,
        [index.count(event.event.actor, index.position(event), index.first_position(event))],
        index.scripts,
    )
    if deliver:
        await index.remember([event])
    return int(count)


@pytest.mark.parametrize("apart_ms", [600_000, 1_000])
async def test_a_redrive_counts_as_its_first_append_did_not_as_a_burst(redis: Redis, apart_ms: int) -> None:
    """Dead letters redriven an hour later (the redrive names each one's first entry) count as
    they did when first screened, in the actor's field or their own sorted set."""
    index = ContentIndex(redis, partitions=1, retain_ms=RETAIN_MS)
    firsts = [logged(n, T0 + n * apart_ms, T0 + n * apart_ms) for n in range(15)]
    counted = [await screen(index, e) for e in firsts]
    assert counted == ([1] * 15 if apart_ms > content.VELOCITY_WINDOW_MS else list(range(1, 16)))
    later = T0 + 15 * apart_ms + 3_600_000
    again = [logged(n, e.accepted_ms, later + n, first=e.entry_id.decode()) for n, e in enumerate(firsts)]
    assert [await screen(index, e) for e in again] == counted
    # a comment right after the redrive counts only itself; both positions of each are indexed
    assert await screen(index, logged(99, later + 100, later + 100)) == 1
    spill = keys.mod_content_spill("bob")
    assert await redis.zcount(spill, 0, "+inf") == 31


async def test_a_redrive_whose_first_entry_is_gone_counts_itself(redis: Redis) -> None:
    index = ContentIndex(redis, partitions=1, retain_ms=RETAIN_MS)
    assert await screen(index, logged(1, T0, T0 + 3_600_000, first=f"{T0}-1")) == 1


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


async def test_a_late_sweep_takes_every_bucket_due_since_the_last(redis: Redis) -> None:
    """The jobs role's calls come late and irregularly: a call sweeps what came due since the
    previous one, so none waits for the next hour."""
    index = ContentIndex(redis, partitions=1, retain_ms=RETAIN_MS)
    actors = [f"a{n}" for n in range(40)]
    for n, actor in enumerate(actors):
        await screen(index, logged(n, T0, T0, actor=actor))
    start = T0 + RETAIN_MS + 1
    assert await index.sweep(start, 10_000) >= 0
    now, gone = start, 0
    while now < start + content.SWEEP_EVERY_MS:
        now += 10_000 + (now // 10_000) % 7 * 100  # 0-600 ms late, never on the beat
        gone += await index.sweep(now, 10_000)
    assert not [a for a in actors if await redis.hget(keys.mod_content(a), a) is not None]


async def test_counted_entries_of_an_actor_who_stops_go_within_hours(redis: Redis) -> None:
    """Held comments are counted, never delivered: their entries serve the velocity rule only,
    and a sweep deletes them two COUNTED_KEEP_MS on, not a retention on."""
    index = ContentIndex(redis, partitions=1, retain_ms=RETAIN_MS)
    for n in range(3):
        await screen(index, logged(n, T0 + n, T0 + n, actor="carl"), deliver=False)
    every = content.SWEEP_EVERY_MS
    assert await index.sweep(T0 + content.COUNTED_KEEP_MS, every) == 0
    assert await index.sweep(T0 + 2 * content.COUNTED_KEEP_MS + 10, every) == 1
    for n in range(20):  # spilled: the sorted set lasts as long as its counted members need
        await screen(index, logged(10 + n, T0 + n, T0 + n, actor="dora"), deliver=False)
    spill = keys.mod_content_spill("dora")
    assert 0 < await redis.pttl(spill) <= content.COUNTED_KEEP_MS


async def test_an_entry_appended_again_is_delivered_never_counted(redis: Redis) -> None:
    index = ContentIndex(redis, partitions=1, retain_ms=RETAIN_MS)
    first = logged(1, T0, T0)
    await screen(index, first)
    await screen(index, logged(1, T0, T0 + 3_600_000, first=f"{T0}-1"))  # redriven an hour on
    entries = layouts.decode_content(await redis.hget(keys.mod_content("bob"), "bob"))
    assert [(e.delivered, e.position) for e in entries] == [
        (True, f"0/{T0}-1"),
        (True, f"0/{T0 + 3_600_000}-1"),
    ]
    raw = (await redis.hget(keys.mod_content("bob"), "bob")).decode()
    assert raw.split(layouts.CONTENT_SEPARATOR)[1].startswith(layouts.CONTENT_AGAIN)
