"""The `jobs` role: JSON (not pickle) payloads, one job in flight per effect (fixed job ids), the
outbox retried until done, and a graceful stop under the supervisor's protocol."""

from __future__ import annotations

import logging
import time
from typing import cast

import anyio
import orjson
import pytest
from arq.constants import job_key_prefix
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from feeds.preferences import PreferenceStore
from notifier.jobs.worker import JobsService
from notifier.moderation import effects
from notifier.moderation.classifier import ProfanityCheck
from notifier.moderation.effects import enqueue, job_set
from notifier.runtime.jobqueue import job_pool
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.preferences import Preferences

from .builders import ANN, FLAGGED_TEXT, HELD_TEXT, JOBS_TIMEOUT_S, Stack, comment, stack

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
def s(redis: Redis, settings: Settings, model: ProfanityCheck) -> Stack:
    return stack(redis, settings, model)


async def test_jobs_are_json_with_fixed_ids(redis: Redis) -> None:
    pool = job_pool(redis)
    assert await enqueue(pool, "recall|e1")
    assert not await enqueue(pool, "recall|e1")  # one in flight per effect
    assert await enqueue(pool, "deliver|e1")
    # scored by enqueue time: two jobs in the same millisecond sort by id, so compare as a set
    # read through the pool: on a cluster the queue lives in the jobs Redis beside it
    assert set(await pool.zrange(keys.JOBS_QUEUE, 0, -1)) == {b"recall:e1", b"deliver:e1"}
    payload = orjson.loads(await pool.get(job_key_prefix + keys.recall_job("e1")))
    assert (payload["f"], payload["a"]) == ("recall_job", ["e1"])
    with pytest.raises(ValueError, match="unknown effect"):
        await enqueue(pool, "explode|e1")


async def test_an_effect_is_retried_until_done(s: Stack) -> None:
    await s.send(comment("e1", "bob", "alice", FLAGGED_TEXT))
    await s.queue.decide("e1", "reject", ANN, "")
    inbox_key = keys.inbox("alice")
    saved = await s.redis.dump(inbox_key)
    await s.redis.delete(inbox_key)
    await s.redis.set(inbox_key, "not a sorted set")  # every apply on alice now fails
    await s.run_jobs()
    assert await s.outbox.pending() == ["recall|e1"]  # still owed
    await s.redis.delete(inbox_key)
    await s.redis.restore(inbox_key, 0, saved)
    await s.run_jobs()  # the sweep enqueues it again
    assert await s.outbox.pending() == []
    assert await s.groups("alice") == []


async def test_an_approval_delivers_only_what_the_recipients_let_through(s: Stack) -> None:
    """A held item approved later meets the recipients' blocks, mutes, muted posts and types
    off as the fan-out would have: they may have changed while it waited for a moderator."""
    recipients = ["alice", "dave", "erin", "fay", "gus"]
    await s.send(*(comment(f"e{n}", "bob", u, HELD_TEXT, post=f"p{n}") for n, u in enumerate(recipients)))
    store, now = PreferenceStore(s.redis), int(time.time() * 1000)
    await store.relate("alice", "blocks", "bob", True, now)
    await store.relate("dave", "mutes", "bob", True, now)
    await store.relate("erin", "muted-posts", "p2", True, now)
    await store.put("fay", Preferences(off=["comment"]), now)
    for n in range(len(recipients)):
        assert (await s.queue.decide(f"e{n}", "approve", ANN, "")).effect == f"deliver|e{n}"
    await s.run_jobs()
    assert await s.outbox.pending() == []
    for user in recipients[:-1]:
        assert await s.groups(user) == [] and await s.unread(user) == 0, user
    assert [g["id"] for g in await s.groups("gus")] == ["comment:c-e4"]


async def test_the_service_runs_the_outbox_and_stops_gracefully(
    redis: Redis, settings: Settings, s: Stack
) -> None:
    await s.send(comment("e1", "bob", "alice", FLAGGED_TEXT))
    await s.queue.decide("e1", "reject", ANN, "")
    service = JobsService(settings.jobs, redis, job_set(settings, redis))
    with anyio.fail_after(JOBS_TIMEOUT_S):
        async with anyio.create_task_group() as tg:
            await tg.start(service.run)
            # the worker runs on its own: the outbox emptying is the only signal of its work
            while await s.outbox.pending():  # noqa: ASYNC110
                await anyio.sleep(0.02)
            service.stop()  # returns on its own: nothing is cancelled
    assert await s.groups("alice") == []


async def test_a_periodic_job_meeting_redis_away_waits_for_its_next_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failover under the jobs role: not a job failed for good with a traceback, one line."""

    class Away:
        async def expire(self) -> int:
            raise RedisConnectionError("connection reset")

    with caplog.at_level(logging.WARNING, logger="notifier.moderation.effects"):
        assert await effects.expire_job(cast("effects.EffectsContext", {"decided": Away()})) == 0
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "redis unavailable in review item expiry: ConnectionError: connection reset; the next run retries"
    ]
