"""Events, moderators and a fan-out stack (event log → screened fan-out → inboxes → jobs) on
the suite's real Redis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import anyio
import orjson
from redis.asyncio import Redis

from feeds.inbox import Inbox
from notifier.api.append import EventLog
from notifier.fanout.consumer import FanoutWorker
from notifier.jobs.worker import JobsService
from notifier.moderation.bans import Bans
from notifier.moderation.components import Components
from notifier.moderation.effects import Effects, job_set
from notifier.moderation.ledger import Clock
from notifier.moderation.outbox import Outbox
from notifier.moderation.queue import ReviewQueue
from notifier.moderation.records import Moderator, wall_ms
from notifier.moderation.reports import Reports
from notifier.moderation.rules import TextClassifier
from notifier.moderation.screening import Screener
from notifier.runtime.eventlog import LoggedEvent
from notifier.runtime.settings import Settings
from schemas.events import Comment, Event, Like, Mention, Unlike

JOBS_TIMEOUT_S: Final = 10.0
BASE: Final = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ANN: Final = Moderator("ann", "moderator", "req-ann")
BEN: Final = Moderator("ben", "moderator", "req-ben")

HELD_TEXT: Final = "kill yourself"  # a severe blocklist phrase: held
FLAGGED_TEXT: Final = "this is shit"  # a mild one: delivered and flagged
CLEAN_TEXT: Final = "what a lovely photo"


def at(seconds: float = 0) -> datetime:
    return BASE + timedelta(seconds=seconds)


def comment(eid: str, actor: str, owner: str, text: str, *, post: str = "p1", t: float = 0) -> Comment:
    return Comment(
        id=eid, actor=actor, occurred_at=at(t), post=post, owner=owner, comment=f"c-{eid}", text=text
    )


def mention(eid: str, actor: str, users: list[str], text: str, *, post: str = "p1", t: float = 0) -> Mention:
    return Mention(id=eid, actor=actor, occurred_at=at(t), post=post, users=users, text=text)


def like(eid: str, actor: str, owner: str, *, post: str = "p1", t: float = 0) -> Like:
    return Like(id=eid, actor=actor, occurred_at=at(t), post=post, owner=owner)


def unlike(eid: str, actor: str, owner: str, *, post: str = "p1", t: float = 0) -> Unlike:
    return Unlike(id=eid, actor=actor, occurred_at=at(t), post=post, owner=owner)


def logged(event: Event, accepted_ms: int = 1_700_000_000_000, entry: bytes = b"1-0") -> LoggedEvent:
    """A log entry as the fan-out reads it (`entry` is its id in partition 0)."""
    return LoggedEvent(entry_id=entry, event=event, service="posts", accepted_ms=accepted_ms)


@dataclass
class Stack:
    redis: Redis
    settings: Settings
    screener: Screener
    worker: FanoutWorker
    inbox: Inbox
    parts: Components
    effects: Effects
    jobs: JobsService
    log: EventLog

    async def send(self, *events: Event) -> None:
        """Append to the event log (as ingest does) and fan out everything."""
        appended = await self.log.append(list(events), "posts")
        assert all(a.status == "accepted" for a in appended), appended
        await self.worker.drain()

    async def run_jobs(self) -> int:
        """Every queued job and outbox effect, bounded in time."""
        with anyio.fail_after(JOBS_TIMEOUT_S):
            return await self.jobs.drain()

    @property
    def queue(self) -> ReviewQueue:
        return self.parts.queue

    @property
    def bans(self) -> Bans:
        return self.parts.bans

    @property
    def outbox(self) -> Outbox:
        return self.parts.outbox

    @property
    def reports(self) -> Reports:
        return self.parts.reports

    async def groups(self, user: str) -> list[dict[str, Any]]:
        page = await self.inbox.page(user, None, 100)
        return [orjson.loads(g) for g in page.groups]

    async def unread(self, user: str) -> int:
        return await self.inbox.unread(user)


def stack(redis: Redis, settings: Settings, model: TextClassifier | None, *, clock: Clock = wall_ms) -> Stack:
    parts = Components.build(redis, settings, clock=clock)
    screener = Screener(parts, settings.moderation, model=model)
    worker = FanoutWorker(
        redis,
        settings.fanout,
        partitions=settings.ingest.partitions,
        limits=settings.feeds,
        consumer="moderation-test",
        screen=screener,
    )
    inbox = Inbox(redis, settings.feeds)
    return Stack(
        redis=redis,
        settings=settings,
        screener=screener,
        worker=worker,
        inbox=inbox,
        parts=parts,
        effects=Effects(parts.queue, parts.outbox, inbox, settings.feeds),
        jobs=JobsService(settings.jobs, redis, job_set(settings, redis)),
        log=EventLog(redis, settings.ingest),
    )
