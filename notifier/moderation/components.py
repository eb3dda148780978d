"""The moderation components over one Redis, built once per process: what the screener, the API
and the jobs share."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from notifier.runtime.settings import Settings

from .bans import Bans
from .content import ContentIndex
from .ledger import Clock, Ledger
from .outbox import Outbox
from .queue import ReviewQueue
from .records import wall_ms
from .reports import Reports


@dataclass(frozen=True, slots=True)
class Components:
    ledger: Ledger
    queue: ReviewQueue
    bans: Bans
    outbox: Outbox
    content: ContentIndex
    reports: Reports

    @classmethod
    def build(cls, redis: Redis, settings: Settings, *, clock: Clock = wall_ms) -> Components:
        ledger = Ledger(redis, clock)
        queue = ReviewQueue(ledger, settings.moderation)
        content = ContentIndex(
            redis, partitions=settings.ingest.partitions, retain_ms=settings.fanout.retain_ms
        )
        reports = Reports(
            redis,
            queue,
            content,
            per_hour=settings.moderation.reports_per_hour,
            clock=clock,
            limits=settings.feeds,
        )
        return cls(ledger, queue, Bans(ledger, queue, content), Outbox(redis), content, reports)
