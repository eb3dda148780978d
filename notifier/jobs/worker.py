"""build_worker(): the arq Worker of the `jobs` role, with JSON payloads and no signal handlers,
and JobsService, which runs it under the product's supervisor. What it runs comes in a JobSet
(today: moderation's deliver and recall effects and their outbox sweep)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any, Final

import anyio
from anyio.abc import TaskStatus
from arq import Worker, cron
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from redis.asyncio import Redis
from redis.exceptions import WatchError

from feeds.cluster import REDIS_UNAVAILABLE
from notifier.runtime import jobqueue, metrics
from notifier.runtime.jobqueue import JobSet
from notifier.runtime.lifecycle import Backoff
from notifier.runtime.settings import JobsSettings
from schemas import keys

log = logging.getLogger(__name__)

MAX_TRIES: Final = 20  # per enqueue; an unfinished effect stays in its outbox and is enqueued again


class _Worker(Worker):
    """arq's Worker with its own poll loop: arq 0.28 `Worker.main` less its INFO round trip at
    start (which the in-process fake Redis of `notifier up` without Redis does not know), and
    with a backoff where arq lets a poll's connection error end the worker (a Redis restart, a
    stall past the socket timeout): the role outlives Redis as the other loops do."""

    async def main(self) -> None:
        self.ctx["redis"] = self.pool
        loop = asyncio.get_running_loop()
        backoff = Backoff("jobs")
        while True:
            started = loop.time()
            try:
                await self._poll_iteration()
                if backoff.failing:  # a poll may touch no Redis (every job slot busy): ask it
                    await self.pool.ping()
                done = self.burst and (
                    0 <= self.max_burst_jobs <= self._jobs_started()
                    or not await self.pool.zcard(self.queue_name)
                )
            except (*REDIS_UNAVAILABLE, WatchError) as exc:
                # arq claims a job in a WATCH transaction and handles the conflict itself:
                # a WatchError here is redis-py's for a connection lost while watching
                await backoff.sleep(exc)
                continue
            backoff.reset()
            if done:
                await asyncio.gather(*self.tasks.values())  # arq's own tasks: let them finish
                return
            await anyio.sleep(max(0.0, self.poll_delay_s - (loop.time() - started)))


def build_worker(settings: JobsSettings, redis: Redis, jobs: JobSet, *, burst: bool = False) -> Worker:
    """`handle_signals=False`: the supervisor (run_services) owns SIGTERM/SIGINT. Results are not
    kept (keep_result=0), so a job id blocks a second enqueue only while the job is queued or
    running. A burst worker runs no periodic jobs: one is always due again, so it would never end."""
    every = max(1, settings.sweep_s)
    periodic = [cron(f, second=set(range(0, 60, every)), run_at_startup=True) for f in jobs.periodic]
    return _Worker(
        functions=list(jobs.functions),
        cron_jobs=[] if burst else periodic,
        redis_pool=jobqueue.job_pool(redis),
        queue_name=keys.JOBS_QUEUE,
        ctx=dict[Any, Any](jobs.ctx),
        burst=burst,
        handle_signals=False,
        poll_delay=settings.poll_ms / 1000,
        max_jobs=settings.max_jobs,
        max_tries=MAX_TRIES,
        keep_result=0,
        job_serializer=jobqueue.serialize,
        job_deserializer=jobqueue.deserialize,
        log_results=False,
    )


class JobsService:
    """Runs the arq worker until stopped. `stop()` uses arq's own way out of its loop (a burst
    with no job left to start): the jobs in hand finish, nothing is cancelled, and the
    supervisor's grace bounds the wait. A job cut short by a forced stop runs again later (arq's
    retry or the outbox sweep); every job is idempotent."""

    def __init__(self, settings: JobsSettings, redis: Redis, jobs: JobSet) -> None:
        self._settings = settings
        self._redis = redis
        self._jobs = jobs
        self._worker: Worker | None = None
        self._stopped = False
        metrics.current().add_collector(self._collect)

    def _collect(self) -> Iterator[Metric]:
        """arq's own counters, read at scrape time."""
        worker = self._worker
        for name, doc, attr in (
            ("notifier_jobs_run", "jobs that completed", "jobs_complete"),
            ("notifier_jobs_failed", "jobs that failed for good", "jobs_failed"),
            ("notifier_jobs_retried", "job runs that asked to be retried", "jobs_retried"),
        ):
            yield CounterMetricFamily(name, doc, value=getattr(worker, attr, 0) if worker else 0)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._worker = worker = build_worker(self._settings, self._redis, self._jobs)  # binds the loop
        if self._stopped:
            _finish(worker)
        task_status.started()
        log.info("jobs started functions=%s", ",".join(sorted(worker.functions)))
        await worker.main()
        log.info("jobs stopped complete=%d failed=%d", worker.jobs_complete, worker.jobs_failed)

    def stop(self) -> None:
        self._stopped = True
        if self._worker is not None:
            _finish(self._worker)

    async def drain(self) -> int:
        """Run the periodic jobs once, then every queued job until none is left (tests, operators)."""
        worker = build_worker(self._settings, self._redis, self._jobs, burst=True)
        worker.ctx["redis"] = worker.pool
        for periodic in self._jobs.periodic:
            await periodic(worker.ctx)
        await worker.main()
        return int(worker.jobs_complete)


def _finish(worker: Worker) -> None:
    worker.allow_pick_jobs = False
    worker.burst = True
    worker.max_burst_jobs = 0  # main() returns once the jobs started so far are done
