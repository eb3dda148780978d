"""A live worker whose apply meets Redis unavailable (a blip, a master failing over) applies the
batch in hand again after a backoff: the event arrives at once, not after a reclaim."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence

import anyio
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError, TryAgainError

from feeds.hiding import Hiding
from feeds.inbox import Inbox
from feeds.items import ItemOp
from notifier.fanout.consumer import STUCK_S, FanoutWorker, apply_events
from notifier.runtime.eventlog import LoggedEvent
from notifier.runtime.settings import Settings
from schemas.events import Like, PostDeleted

from ..views import at, inbox_view, pending_total
from .test_consumer import append, make_worker

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@contextlib.asynccontextmanager
async def running(
    redis: Redis, settings: Settings, name: str, seen: anyio.Event
) -> AsyncIterator[FanoutWorker]:
    """A worker running while ana's like of bob's post is appended, until `seen` is set; then the
    body runs, and the worker stops."""
    worker = make_worker(redis, settings, name)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        await append(redis, settings, [Like(id="l1", actor="ana", occurred_at=at(1), post="p", owner="bob")])
        with anyio.fail_after(20):
            await seen.wait()
        try:
            yield worker
        finally:
            worker.stop()


async def test_an_apply_cut_by_a_redis_blip_is_retried_in_hand_not_left_to_the_reclaim(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no reclaim within the test: only the retry in hand can apply the event
    settings = dataclasses.replace(settings, fanout=dataclasses.replace(settings.fanout, min_idle_ms=600_000))
    real_apply = Inbox.apply
    calls = 0
    applied = anyio.Event()

    async def blips_once(
        self: Inbox, ops: Sequence[ItemOp], tags: Sequence[str] = ()
    ) -> list[BaseException | None]:
        nonlocal calls
        if not ops:
            return await real_apply(self, ops, tags)
        calls += 1
        if calls == 1:
            raise RedisConnectionError("Connection closed by server.")
        result = await real_apply(self, ops, tags)
        applied.set()
        return result

    monkeypatch.setattr(Inbox, "apply", blips_once)
    async with running(redis, settings, "blipped", applied):
        pass
    assert calls == 2
    groups, unread, _ = await inbox_view(Inbox(redis, settings.feeds), "bob")
    assert [(g["verb"], g["actors"]) for g in groups] == [("like", ["ana"])] and unread == 1
    assert await pending_total(redis, settings.ingest.partitions) == 0


async def test_a_slot_migrating_under_an_apply_is_waited_for_not_counted_as_the_events_failure(
    redis: Redis, settings: Settings
) -> None:
    """Redis Cluster refuses a script's key of a slot that moved away mid-call ("non local key"):
    the batch is applied again once the migration is through, not dead-lettered for it."""
    moving = ResponseError("ERR Script attempted to access a non local key in a cluster node script: f_1")

    class Migrating(Inbox):
        async def apply(self, ops: Sequence[ItemOp], tags: Sequence[str] = ()) -> list[BaseException | None]:
            return [moving for _ in ops]

    logged = LoggedEvent(
        b"1-0", Like(id="l1", actor="ana", occurred_at=at(1), post="p", owner="bob"), "test", 0
    )
    with pytest.raises(TryAgainError, match="a slot is migrating"):
        await apply_events(Migrating(redis, settings.feeds), settings.feeds, [logged])


async def test_a_batch_retried_for_long_makes_the_worker_not_ready(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot left half-migrated, or a master gone for good: the batch in hand is retried for
    ever, and readiness says so (every role looked ready while a partition stood still)."""
    settings = dataclasses.replace(settings, fanout=dataclasses.replace(settings.fanout, min_idle_ms=600_000))
    retried = anyio.Event()
    calls = 0

    async def away(
        self: Inbox, ops: Sequence[ItemOp], tags: Sequence[str] = ()
    ) -> list[BaseException | None]:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first failure was counted: the batch is being retried
            retried.set()
        raise TryAgainError("a slot is migrating")

    monkeypatch.setattr(Inbox, "apply", away)
    async with running(redis, settings, "stuck", retried) as worker:
        assert await worker.stuck() is None  # not yet for long
        clock = time.monotonic()
        monkeypatch.setattr(time, "monotonic", lambda: clock + STUCK_S + 1)
        reason = await worker.stuck()
    assert reason is not None and reason.startswith("batches retried for Redis for up to ") and "[" in reason
    assert worker.stats.redis_errors >= 1


async def test_a_post_retraction_meeting_a_migrating_slot_waits_too(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retraction of a deleted post's notifications meets the same migration as the apply:
    the batch waits, the deletion is not a failed delivery."""

    async def moving(self: Hiding, *args: object) -> int:
        raise ResponseError("ERR Script attempted to access a non local key in a cluster node script: f_1")

    monkeypatch.setattr(Hiding, "retract_post", moving)
    deleted = PostDeleted(id="d1", actor="bob", occurred_at=at(2), post="p")
    with pytest.raises(TryAgainError, match="a slot is migrating"):
        await apply_events(
            Inbox(redis, settings.feeds), settings.feeds, [LoggedEvent(b"1-0", deleted, "test", 0)]
        )
