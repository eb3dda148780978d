"""The side effects of decisions, run as arq jobs: deliver an approved held item through the
normal apply path, recall a rejected delivered one from every inbox it reached. Each step is
idempotent (inbox items are last-writer-wins registers, and retracted is final), so a job may
run any number of times; the outbox keeps every effect until one run finished it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Final, Required, TypedDict, cast

from arq import Retry
from arq.connections import ArqRedis
from arq.typing import WorkerCoroutine
from redis.asyncio import Redis

from feeds.cluster import REDIS_UNAVAILABLE
from feeds.inbox import Inbox
from feeds.items import plan, retract
from feeds.limits import FeedLimits
from feeds.preferences import PreferenceStore
from notifier.runtime import jobqueue, metrics
from notifier.runtime.jobqueue import JobSet
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.events import decode_event

from .components import Components
from .content import ContentIndex
from .outbox import Outbox
from .queue import ReviewQueue
from .retention import DecidedItems

log = logging.getLogger(__name__)

MAX_RETRY_S: Final = 60.0


class Effects:
    def __init__(self, queue: ReviewQueue, outbox: Outbox, inbox: Inbox, limits: FeedLimits) -> None:
        self._queue = queue
        self._outbox = outbox
        self._inbox = inbox
        self._limits = limits

    async def deliver(self, item_id: str) -> int:
        """Apply an approved item's notifications (exactly once in the views); returns how many."""
        return await self._run(f"deliver|{item_id}", item_id, "approved")

    async def recall(self, item_id: str) -> int:
        """Retract a rejected item's notifications everywhere; the views correct unread counts
        and push `remove` to connected clients. Returns how many items were retracted."""
        return await self._run(f"recall|{item_id}", item_id, "rejected")

    async def _run(self, effect: str, item_id: str, wanted: str) -> int:
        item = await self._queue.get(item_id)
        ops = []
        if item is not None and item.state == wanted:
            event = decode_event(bytes(item.event))
            if wanted == "approved":  # what the recipients' blocks, mutes and preferences let through,
                ops = plan(event, self._limits)  # as the fan-out would have
                kept = await PreferenceStore(self._inbox.redis).keep(ops)
                ops = [op for op, keep in zip(ops, kept.items, strict=True) if keep]
            else:
                ops = retract(event, self._limits)
            errors = [e for e in await self._inbox.apply(ops) if e is not None]
            if errors:
                raise errors[0]  # the job is retried; the applied part is idempotent
        await self._outbox.done(effect)
        log.info("moderation effect=%s items=%d", effect, len(ops))
        return len(ops)


class EffectsContext(TypedDict, total=False):
    """The arq `ctx` of the jobs worker: ours, and the keys arq adds."""

    effects: Required[Effects]
    outbox: Required[Outbox]
    decided: Required[DecidedItems]
    content: Required[ContentIndex]
    sweep_ms: Required[int]  # how often the periodic jobs run
    pool: Required[ArqRedis]
    retry_s: Required[float]
    job_try: int  # arq: 1 on the first run


def _retry(ctx: EffectsContext, job_try: int) -> Retry:
    return Retry(defer=min(MAX_RETRY_S, ctx["retry_s"] * job_try))


async def deliver_job(ctx: EffectsContext, item_id: str) -> int:
    try:
        return await ctx["effects"].deliver(item_id)
    except REDIS_UNAVAILABLE as exc:
        raise _retry(ctx, ctx.get("job_try", 1)) from exc


async def recall_job(ctx: EffectsContext, item_id: str) -> int:
    try:
        return await ctx["effects"].recall(item_id)
    except REDIS_UNAVAILABLE as exc:
        raise _retry(ctx, ctx.get("job_try", 1)) from exc


async def _periodic(name: str, run: Awaitable[int]) -> int:
    """A periodic job's run; Redis away (a restart, a failover) is one line and a Redis error
    counted, not a job failed for good: the next run does the work."""
    try:
        return await run
    except REDIS_UNAVAILABLE as exc:
        metrics.current().redis_errors("jobs").inc()
        log.warning("redis unavailable in %s: %s: %s; the next run retries", name, type(exc).__name__, exc)
        return 0


async def sweep_job(ctx: EffectsContext) -> int:
    """Enqueue every effect still in the outbox (one in flight per effect: job ids are fixed)."""

    async def sweep() -> int:
        enqueued = 0
        for effect in await ctx["outbox"].pending():
            enqueued += await enqueue(ctx["pool"], effect)
        return enqueued

    return await _periodic("outbox sweep", sweep())


async def expire_job(ctx: EffectsContext) -> int:
    """Delete the review items decided longer ago than their retention (retention.py)."""
    return await _periodic("review item expiry", ctx["decided"].expire())


async def content_sweep_job(ctx: EffectsContext) -> int:
    """Prune the actors' content index (content.py): entries past the log's retention or the
    velocity window, of actors who have not acted since."""
    return await _periodic("content sweep", ctx["content"].sweep(int(time.time() * 1000), ctx["sweep_ms"]))


async def enqueue(pool: ArqRedis, effect: str) -> bool:
    """Enqueue the job carrying out `effect` (`deliver|ID` or `recall|ID`); False if already queued."""
    kind, _, item_id = effect.partition("|")
    if kind == "deliver":
        job = await pool.enqueue_job(deliver_job.__qualname__, item_id, _job_id=keys.deliver_job(item_id))
    elif kind == "recall":
        job = await pool.enqueue_job(recall_job.__qualname__, item_id, _job_id=keys.recall_job(item_id))
    else:
        raise ValueError(f"unknown effect {effect!r}")
    return job is not None


def job_set(settings: Settings, redis: Redis) -> JobSet:
    """What the jobs role runs for moderation."""
    parts = Components.build(redis, settings)
    ctx: EffectsContext = {
        "effects": Effects(parts.queue, parts.outbox, Inbox(redis, settings.feeds), settings.feeds),
        "outbox": parts.outbox,
        "decided": DecidedItems(parts.ledger, settings.moderation.retain_decided_days),
        "content": parts.content,
        "sweep_ms": settings.jobs.sweep_s * 1000,
        "pool": jobqueue.job_pool(redis),
        "retry_s": settings.jobs.retry_s,
    }
    # arq types ctx as dict[Any, Any]; ours is the EffectsContext it is built from
    return JobSet(
        functions=[cast("WorkerCoroutine", deliver_job), cast("WorkerCoroutine", recall_job)],
        periodic=[
            cast("WorkerCoroutine", sweep_job),
            cast("WorkerCoroutine", expire_job),
            cast("WorkerCoroutine", content_sweep_job),
        ],
        ctx=ctx,
    )
