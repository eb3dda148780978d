"""A follow racing a post's push on two workers, every interleaving of their Redis round trips
(hypothesis draws the schedule): the new follower's feed ends with the post, pushed into its
`hf:` and logged for live push exactly once when the author is pushed, whichever worker's step
comes first. The follow's back-fill reads the timeline after writing the follower, and the push
writes the timeline before reading the followers, so one of the two always sees the other."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from feeds import changelog
from feeds.home import HomeFeeds
from feeds.inbox import Inbox
from feeds.limits import FeedLimits
from notifier.fanout.consumer import apply_events
from notifier.runtime.eventlog import LoggedEvent
from schemas import keys
from schemas.cursor import START
from schemas.events import Event, PostCreated
from tests.unit.builders import at, follow
from tests.unit.memory_redis import fake_redis

pytestmark = pytest.mark.anyio

LIMITS = FeedLimits(celebrity_followers=3, push_chunk=1, push_slice=1)
_WORKER: contextvars.ContextVar[str | None] = contextvars.ContextVar("worker", default=None)


class Schedule:
    """Runs workers one Redis round trip at a time, the next step's worker picked by `pick`
    among those waiting (a round trip is a connection taken from the pool)."""

    def __init__(self, redis: Redis, pick: Callable[[int], int]) -> None:
        self._pick = pick
        self._live: set[str] = set()
        self._waiting: dict[str, anyio.Event] = {}
        self.steps: list[str] = []
        pool: Any = redis.connection_pool
        take = pool.get_connection

        async def gated(*args: Any, **kwargs: Any) -> Any:
            await self._gate()
            return await take(*args, **kwargs)

        pool.get_connection = gated

    def _release(self) -> None:
        if self._waiting and len(self._waiting) == len(self._live):
            names = sorted(self._waiting)
            name = names[self._pick(len(names))]
            self.steps.append(name)
            self._waiting.pop(name).set()

    async def _gate(self) -> None:
        name = _WORKER.get()
        if name is None:
            return
        self._waiting[name] = event = anyio.Event()
        self._release()
        await event.wait()

    async def run(self, workers: dict[str, Callable[[], Awaitable[None]]]) -> None:
        self._live = set(workers)

        async def one(name: str, work: Callable[[], Awaitable[None]]) -> None:
            _WORKER.set(name)
            try:
                await work()
            finally:
                self._live.discard(name)
                self._release()

        async with anyio.create_task_group() as tg:
            for name, work in workers.items():
                tg.start_soon(one, name, work)


async def apply(redis: Redis, events: Sequence[Event]) -> None:
    logged = [LoggedEvent(f"{i}-0".encode(), e, "posts", 0) for i, e in enumerate(events)]
    assert await apply_events(Inbox(redis, LIMITS), LIMITS, logged) == {}


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2), st.lists(st.integers(0, 1), max_size=40))
async def test_a_follow_racing_a_push_never_misses_the_post(fans: int, picks: list[int]) -> None:
    redis = fake_redis()
    try:
        await apply(redis, [follow(f"fan{i}", "star", t=i) for i in range(fans)])  # 2 + ann: pulled
        drawn = iter(picks)
        schedule = Schedule(redis, lambda n: min(next(drawn, 0), n - 1))
        created = PostCreated(id="pc", actor="star", occurred_at=at(50), post="s1")
        await schedule.run(
            {
                "follow": lambda: apply(redis, [follow("ann", "star", t=10)]),
                "post": lambda: apply(redis, [created]),
            }
        )
        page = await HomeFeeds(redis, LIMITS).page("ann", None, 10)
        assert [orjson.loads(p)["id"] for p in page.items] == ["s1"], schedule.steps
        if await redis.sismember(keys.pulled_authors("star"), "star"):
            return  # read-merged: nothing pushed
        assert await redis.zscore(keys.home("ann"), "star|s1") == created.at_ms, schedule.steps
        replay = await changelog.read_after(redis, "ann", START, 100)
        assert isinstance(replay, changelog.Replay)
        feed = [orjson.loads(c.payload) for c in replay.changes if c.feed]
        assert [(c["op"], c["post"]["id"]) for c in feed] == [("add", "s1")], schedule.steps
    finally:
        await redis.aclose()
