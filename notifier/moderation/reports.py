"""Reports from users: a notification, a comment or an actor, with a reason from a fixed list.
Rate-limited per user, one per reporter and item; each creates or raises a review item (its
distinct reporters and their reasons), and the reporter sees the outcome. The only code that
touches `modrep:`, `modmine:` and `modrl:` keys."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

import msgspec
from redis.asyncio import Redis

from feeds import registers
from feeds.items import plan
from feeds.limits import FeedLimits
from schemas import keys
from schemas.errors import Reason, Rejected
from schemas.events import Event, is_id

from .content import ContentIndex, ref_of_group
from .ledger import Clock
from .queue import ReviewQueue, actor_item
from .records import Report

RATE_WINDOW_S: Final = 3_600
MINE_KEPT: Final = 500  # a user's latest reports listed back to them


class ReportReason(StrEnum):
    HARASSMENT = "harassment"
    HATE = "hate"
    THREAT = "threat"
    SELF_HARM = "self_harm"
    SEXUAL = "sexual"
    SPAM = "spam"
    SCAM = "scam"
    OTHER = "other"


TargetKind = Literal["notification", "comment", "actor"]


@dataclass(frozen=True, slots=True)
class Filed:
    items: list[str]  # the review items the report went to
    new: bool  # False: this user had reported all of them already


class Mine(msgspec.Struct, frozen=True):
    item: str
    actor: str
    reason: str
    reported_at_ms: int
    status: str  # open | upheld (removed / actor actioned) | dismissed


def _status(state: str) -> str:
    return {"approved": "dismissed", "rejected": "upheld"}.get(state, "open")


class Reports:
    def __init__(
        self,
        redis: Redis,
        queue: ReviewQueue,
        content: ContentIndex,
        *,
        per_hour: int,
        clock: Clock,
        limits: FeedLimits,
    ) -> None:
        self._limits = limits
        self._redis = redis
        self._queue = queue
        self._content = content
        self._per_hour = per_hour
        self._clock = clock

    async def file(
        self, reporter: str, kind: TargetKind, target: str, reason: ReportReason, note: str
    ) -> Filed:
        await self._count(reporter)
        found = await self._locate(kind, target)
        if kind == "notification":  # one of theirs: else a report would tell anyone what exists
            found = await self._received(reporter, found)
        elif kind == "comment":  # public while shown: one moderators took down is gone for all
            found = [row for row in found if not await self._rejected(row[0])]
        if not found:  # the same answer as for one that does not exist: nothing is told
            raise Rejected(Reason.NOT_FOUND, _not_found(kind, target), "/target")
        if all(actor == reporter for _, actor, _, _ in found):
            raise Rejected(Reason.INVALID, "you cannot report yourself", "/target")
        now = self._clock()
        report = msgspec.json.encode(Report(reason.value, note, now))
        new = False
        for item_id, actor, event, position in found:
            await self._queue.enter_reported(item_id, actor, event, position)
            if await self._redis.hsetnx(keys.mod_reports(item_id), reporter, report):
                new = True
                reports = await self._redis.hvals(keys.mod_reports(item_id))
                reasons: dict[str, int] = {}
                for raw in reports:
                    given = msgspec.json.decode(raw, type=Report).reason
                    reasons[given] = reasons.get(given, 0) + 1
                await self._queue.raise_reported(item_id, len(reports), dict(sorted(reasons.items())))
            await self._redis.zadd(keys.mod_reported_by(reporter), {item_id: now}, nx=True)
        await self._redis.zremrangebyrank(keys.mod_reported_by(reporter), 0, -MINE_KEPT - 1)
        return Filed([item_id for item_id, _, _, _ in found], new)

    async def _received(
        self, reporter: str, found: list[tuple[str, str, Event | None, str]]
    ) -> list[tuple[str, str, Event | None, str]]:
        """Of `found`, the events that notified `reporter` (their item's register is in the
        reporter's views, whatever has become of it since)."""
        mine = []
        for row in found:
            event = row[2]
            items = [op.item for op in plan(event, self._limits) if op.user == reporter] if event else []
            if any(r is not None for r in await registers.read(self._redis, reporter, items)):
                mine.append(row)
        return mine

    async def _rejected(self, item_id: str) -> bool:
        item = await self._queue.get(item_id)
        return item is not None and item.state == "rejected"

    async def _count(self, reporter: str) -> None:
        window = self._clock() // (RATE_WINDOW_S * 1000)
        key = keys.mod_report_rate(reporter, window)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, RATE_WINDOW_S * 2)
            count, _ = await pipe.execute()
        if int(count) > self._per_hour:
            ends_s = (window + 1) * RATE_WINDOW_S - self._clock() // 1000  # the window's end
            raise Rejected(
                Reason.RATE_LIMITED,
                f"at most {self._per_hour} reports an hour; try again later",
                retry_after_s=max(1, ends_s),
            )

    async def _locate(self, kind: TargetKind, target: str) -> list[tuple[str, str, Event | None, str]]:
        """The review items a report on `target` goes to: (item id, actor, event, position)."""
        if kind == "actor":
            if not is_id(target):  # an item no moderator could open or decide
                raise Rejected(
                    Reason.INVALID,
                    "target.id must be a user id (1-128 of A-Z a-z 0-9 _ . : @ -)",
                    "/target/id",
                )
            return [(actor_item(target), target, None, "")]
        if kind == "comment" and not is_id(target):
            raise Rejected(
                Reason.INVALID,
                "target.id must be a comment id (1-128 of A-Z a-z 0-9 _ . : @ -)",
                "/target/id",
            )
        ref = f"comment:{target}" if kind == "comment" else ref_of_group(target)
        if ref is None:
            detail = (
                f"{target!r} is not the id of a comment or mention notification"
                if target.startswith(("comment:", "mention:"))
                else "only comment and mention notifications can be reported; report the actor"
            )
            raise Rejected(Reason.INVALID, detail, "/target")
        located = await self._content.of_ref(ref)
        if not located:
            raise Rejected(Reason.NOT_FOUND, _not_found(kind, target), "/target")
        return [(f.logged.event.id, f.logged.event.actor, f.logged.event, f.position) for f in located]

    async def mine(self, reporter: str, limit: int) -> list[Mine]:
        rows = await self._redis.zrevrange(keys.mod_reported_by(reporter), 0, limit - 1, withscores=True)
        ids = [m.decode() for m, _ in rows]
        async with self._redis.pipeline(transaction=False) as pipe:
            for item_id in ids:
                pipe.hmget(keys.mod_item(item_id), ["state", "actor"])
                pipe.hget(keys.mod_reports(item_id), reporter)
            replies = await pipe.execute()
        out = []
        for n, ((_, at), item_id) in enumerate(zip(rows, ids, strict=True)):
            (state, actor), raw = replies[2 * n], replies[2 * n + 1]
            if state is None or raw is None:
                continue
            report = msgspec.json.decode(raw, type=Report)
            out.append(Mine(item_id, actor.decode(), report.reason, int(at), _status(state.decode())))
        return out

    async def of_item(self, item_id: str) -> list[tuple[str, Report]]:
        """Who reported an item, with their reasons and notes, first report first."""
        raw = await self._redis.hgetall(keys.mod_reports(item_id))
        found = [(k.decode(), msgspec.json.decode(v, type=Report)) for k, v in raw.items()]
        return sorted(found, key=lambda pair: pair[1].at_ms)


def _not_found(kind: TargetKind, target: str) -> str:
    if kind == "notification":  # whether it exists in someone else's inbox is not told
        return f"no notification {target!r} in your inbox (or older than the log's retention)"
    return f"no {kind} {target!r} (or older than the log's retention)"
