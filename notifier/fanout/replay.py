"""Rebuild the views from the event log (event sourcing). Applying is idempotent, so replaying
over live views changes nothing; `fresh` first deletes every derived key (clients then see a
new epoch and refetch). Read marks are user state and survive."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis

from feeds.inbox import Inbox
from feeds.limits import FeedLimits
from notifier.runtime.eventlog import LoggedEvent, decode_entry
from schemas import keys

from .consumer import Screen, apply_events

log = logging.getLogger(__name__)

CHUNK = 500


@dataclass(slots=True)
class ReplayStats:
    events: int = 0
    failed: int = 0
    undecodable: int = 0
    deleted_keys: int = 0


async def delete_views(redis: Redis) -> int:
    deleted = 0
    for pattern in keys.DERIVED_PATTERNS:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await redis.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await redis.unlink(*batch)
    return int(deleted)


async def replay(
    redis: Redis, *, partitions: int, limits: FeedLimits, fresh: bool, screen: Screen | None = None
) -> ReplayStats:
    """`screen` (moderation) keeps held and rejected events out of the rebuilt views."""
    stats = ReplayStats()
    if fresh:
        stats.deleted_keys = await delete_views(redis)
    inbox = Inbox(redis, limits)
    for p in range(partitions):
        start, before = "-", stats.events
        while True:
            rows = await redis.xrange(keys.events(p), min=start, max="+", count=CHUNK)
            if not rows:
                break
            events: list[LoggedEvent] = []
            for entry_id, fields in rows:
                try:
                    events.append(decode_entry(entry_id, fields))
                except (KeyError, ValueError, msgspec.DecodeError):
                    stats.undecodable += 1
            apply = events if screen is None else await screen.screen(events)
            failed = await apply_events(inbox, limits, apply)
            stats.events += len(events) - len(failed)
            stats.failed += len(failed)
            start = "(" + rows[-1][0].decode()
            if len(rows) < CHUNK:
                break
        log.info("replayed partition=%d events=%d total=%d", p, stats.events - before, stats.events)
    return stats
