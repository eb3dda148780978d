"""The jobs role's poll loop tells an outage's end only once Redis answers: a poll with every job
slot busy touches no Redis, and was taken for a recovery while Redis was still frozen."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import WatchError

from notifier.jobs.worker import build_worker
from notifier.runtime.jobqueue import JobSet
from notifier.runtime.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def outcomes(*results: BaseException | None) -> Iterator[BaseException | None]:
    yield from results


async def nothing(ctx: dict[str, object]) -> None:
    """arq needs a function to run."""


async def test_redis_is_back_for_the_jobs_loop_once_it_answers(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    worker = build_worker(settings.jobs, redis, JobSet(functions=[nothing]), burst=True)
    polls = outcomes(RedisConnectionError("down"), None, None)  # the second touches no Redis
    pings = outcomes(RedisConnectionError("still down"), None)

    async def poll() -> None:
        if (failed := next(polls)) is not None:
            raise failed

    async def ping() -> bool:
        if (failed := next(pings)) is not None:
            raise failed
        return True

    monkeypatch.setattr(worker, "_poll_iteration", poll)
    monkeypatch.setattr(worker.pool, "ping", ping)
    with caplog.at_level(logging.WARNING, logger="notifier.runtime.lifecycle"):
        await worker.main()
    back = [r.getMessage() for r in caplog.records if "redis back" in r.getMessage()]
    assert back == ["redis back in jobs after 2 failed attempts"]


async def test_a_connection_lost_while_a_job_claim_watches_is_an_outage_not_the_end(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py turns a connection lost inside WATCH into a WatchError (arq's claim of a job):
    that ended the role with a traceback when Redis stalled and restarted."""
    worker = build_worker(settings.jobs, redis, JobSet(functions=[nothing]), burst=True)
    lost = WatchError("A ConnectionError occurred on while watching one or more keys")
    polls = outcomes(lost, None)
    calls = []

    async def poll() -> None:
        calls.append(1)
        if (failed := next(polls)) is not None:
            raise failed

    monkeypatch.setattr(worker, "_poll_iteration", poll)
    await worker.main()
    assert len(calls) == 2
