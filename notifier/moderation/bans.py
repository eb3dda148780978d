"""Bans and suspensions: who may not post (from when, until when), lifting them, rejecting what a
banned actor has in the queue, recalling everything they had delivered (ban and remove), and
the record of their events the fan-out dropped, and each actor's enforcement history. The only
code that touches `modban:`, `modbanpast:`, `modenf:` and `moddrop:`/`moddropn:` keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from redis.asyncio.client import Pipeline

from feeds.scripts import Query, ask
from notifier.runtime.eventlog import LoggedEvent
from schemas import keys
from schemas.errors import Reason, Rejected

from .content import ContentIndex
from .ledger import Ledger
from .queue import ReviewQueue
from .records import Ban, Enforcement, Moderator, Outcome

DROPPED_KEPT: Final = 1_000  # dropped event ids listed per actor (the count covers all)
HISTORY_KEPT: Final = 100  # bans, suspensions and unbans kept per actor


Window = tuple[int, int]  # [from_ms, to_ms)


@dataclass(frozen=True, slots=True)
class Standing:
    """An actor's ban or suspension (current, past or future) and the windows of those lifted or
    replaced before: what screening drops."""

    ban: Ban | None
    past: tuple[Window, ...] = ()

    def covers(self, accepted_ms: int) -> bool:
        """Whether an event accepted at `accepted_ms` fell under a ban or suspension, then or now."""
        if self.ban is not None and self.ban.covers(accepted_ms):
            return True
        return any(start <= accepted_ms < end for start, end in self.past)


@dataclass(frozen=True, slots=True)
class Dropped:
    count: int
    events: list[tuple[str, int]]  # (event id, accepted ms), newest first


class Bans:
    def __init__(self, ledger: Ledger, queue: ReviewQueue, content: ContentIndex) -> None:
        self._ledger = ledger
        self._redis = ledger.redis
        self._queue = queue
        self._content = content

    async def of(self, actors: Sequence[str]) -> dict[str, Ban]:
        """Bans and suspensions (current, past or future) of `actors`."""
        (found,) = await ask(self._redis, self.query(actors))
        return found

    def query(self, actors: Sequence[str]) -> Query[dict[str, Ban]]:
        """`of`, to ask with other reads."""

        def parse(replies: Sequence[Any]) -> dict[str, Ban]:
            if not replies:
                return {}
            (found,) = replies
            pairs = zip(actors, found, strict=True)
            return {a: msgspec.json.decode(raw, type=Ban) for a, raw in pairs if raw}

        # one command for them all: the lean pipeline packs a command's arguments in C
        return Query([("HMGET", keys.mod_bans(), *actors)] if actors else [], parse)

    def standing_query(self, actors: Sequence[str]) -> Query[dict[str, Standing]]:
        """The standing of `actors` who have one (screening asks it with its other reads)."""

        def parse(replies: Sequence[Any]) -> dict[str, Standing]:
            if not replies:
                return {}
            current, windows = replies
            out = {}
            for actor, raw, past in zip(actors, current, windows, strict=True):
                if raw or past:
                    ban = msgspec.json.decode(raw, type=Ban) if raw else None
                    out[actor] = Standing(ban, tuple(_windows(past)))
            return out

        if not actors:
            return Query([], parse)
        return Query([("HMGET", keys.mod_bans(), *actors), ("HMGET", keys.mod_ban_windows(), *actors)], parse)

    async def active(self) -> list[Ban]:
        """Bans, and suspensions not yet over, oldest first."""
        now = self._ledger.clock()
        raw = await self._redis.hgetall(keys.mod_bans())
        bans = (msgspec.json.decode(v, type=Ban) for v in raw.values())
        return sorted((b for b in bans if not b.until_ms or b.until_ms > now), key=lambda b: b.at_ms)

    async def ban(
        self, actor: str, who: Moderator, reason: str, *, duration_s: int = 0, remove_content: bool = False
    ) -> tuple[Ban, list[Outcome]]:
        """Ban `actor` (or suspend them for `duration_s`) and reject their open items; with
        `remove_content`, also reject what was approved and recall every comment and mention they
        had delivered within the log's retention. Banning an actor already banned keeps the
        first ban; a suspension may be replaced by another or turned into a ban."""
        if not reason.strip():
            raise Rejected(Reason.INVALID, "a ban needs a reason", "/reason")
        if actor == who.user:
            raise Rejected(Reason.INVALID, "a moderator cannot ban themselves", "/actor")
        now = self._ledger.clock()
        until = now + duration_s * 1000 if duration_s else 0
        wanted = Ban(actor, now, who.user, reason, until, remove_content=remove_content)
        action = "suspend" if duration_s else "ban"

        async def body(pipe: Pipeline) -> Ban:
            raw = await pipe.hget(keys.mod_bans(), actor)
            existing = msgspec.json.decode(raw, type=Ban) if raw else None
            if existing and not existing.until_ms and existing.covers(now):
                if remove_content and not existing.remove_content:  # the ban stays, its content goes
                    existing = msgspec.structs.replace(existing, remove_content=True)
                    pipe.multi()
                    pipe.hset(keys.mod_bans(), actor, msgspec.json.encode(existing))
                return existing
            past = await pipe.hget(keys.mod_ban_windows(), actor)
            head = await self._ledger.head(pipe)
            pipe.multi()
            if existing is not None:  # a suspension replaced (or long over): its time stays covered
                _keep_window(pipe, actor, past, existing.window(now))
            pipe.hset(keys.mod_bans(), actor, msgspec.json.encode(wanted))
            _remember(pipe, actor, Enforcement(action, now, who.user, reason, wanted.until_ms))
            after = {"banned": "yes", "until_ms": str(wanted.until_ms)}
            self._ledger.append(
                pipe, head, who, action, actor=actor, before=_state(existing, now), after=after, reason=reason
            )
            return wanted

        banned = await self._ledger.transact(
            [keys.mod_bans(), keys.mod_ban_windows(), keys.audit_head()], body
        )
        outcomes = await self._reject_items(actor, who, reason, approved_too=remove_content)
        if remove_content:
            outcomes += await self._recall_delivered(actor, who, reason)
        return banned, outcomes

    async def unban(self, actor: str, who: Moderator, reason: str) -> Ban:
        """Lift a ban or suspension in force (one audit record); later events pass again, and
        those accepted under it stay dropped (a replay too). A moderator cannot lift their own."""
        if not reason.strip():
            raise Rejected(Reason.INVALID, "lifting a ban needs a reason", "/reason")
        if actor == who.user:
            raise Rejected(Reason.INVALID, "a moderator cannot lift their own ban", "/actor")
        now = self._ledger.clock()

        async def body(pipe: Pipeline) -> Ban:
            raw = await pipe.hget(keys.mod_bans(), actor)
            existing = msgspec.json.decode(raw, type=Ban) if raw else None
            if existing is None or (existing.until_ms and existing.until_ms <= now):
                raise Rejected(Reason.NOT_FOUND, f"{actor!r} is not banned")
            past = await pipe.hget(keys.mod_ban_windows(), actor)
            head = await self._ledger.head(pipe)
            pipe.multi()
            _keep_window(pipe, actor, past, existing.window(now))
            pipe.hdel(keys.mod_bans(), actor)
            _remember(pipe, actor, Enforcement("unban", now, who.user, reason))
            self._ledger.append(
                pipe, head, who, "unban", actor=actor, before=_state(existing, now), after={"banned": "no"},
                reason=reason,
            )  # fmt: skip
            return existing

        return await self._ledger.transact([keys.mod_bans(), keys.mod_ban_windows(), keys.audit_head()], body)

    async def history(self, actor: str) -> list[Enforcement]:
        """The actor's bans, suspensions and unbans, newest first."""
        raw = await self._redis.lrange(keys.mod_enforcement(actor), 0, -1)
        return [msgspec.json.decode(r, type=Enforcement) for r in raw]

    async def _reject_items(
        self, actor: str, who: Moderator, reason: str, *, approved_too: bool
    ) -> list[Outcome]:
        outcomes = []
        for item_id in await self._queue.open_ids(actor, approved_too=approved_too):
            try:
                outcomes.append(
                    await self._queue.decide(item_id, "reject", who, f"actor banned: {reason}", force=True)
                )
            except Rejected:  # decided meanwhile
                continue
        return outcomes

    async def _recall_delivered(self, actor: str, who: Moderator, reason: str) -> list[Outcome]:
        """Every delivered comment and mention still in the log gets a review item (if it had
        none) and is rejected: the same recall as any rejection."""
        outcomes = []
        for found in await self._content.of_actor(actor):
            item_id = found.logged.event.id
            await self._queue.enter_reported(item_id, actor, found.logged.event, found.position, action="ban")
            try:
                outcome = await self._queue.decide(
                    item_id, "reject", who, f"actor banned: {reason}", force=True
                )
            except Rejected:
                continue
            if outcome.changed:
                outcomes.append(outcome)
        return outcomes

    # -- what the fan-out dropped ------------------------------------------------------------

    async def record_dropped(self, dropped: Sequence[LoggedEvent]) -> None:
        """Count and list events dropped for a ban; a redelivered event counts once."""
        if not dropped:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for logged in dropped:
                pipe.zadd(keys.mod_dropped(logged.event.actor), {logged.event.id: logged.accepted_ms})
            added = await pipe.execute()
        async with self._redis.pipeline(transaction=False) as pipe:
            for logged, new in zip(dropped, added, strict=True):
                if new:
                    pipe.hincrby(keys.mod_dropped_counts(), logged.event.actor, 1)
                pipe.zremrangebyrank(keys.mod_dropped(logged.event.actor), 0, -DROPPED_KEPT - 1)
            await pipe.execute()

    async def dropped(self, actor: str, limit: int) -> Dropped:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.mod_dropped_counts(), actor)
            pipe.zrevrange(keys.mod_dropped(actor), 0, limit - 1, withscores=True)
            count, rows = await pipe.execute()
        return Dropped(int(count or 0), [(m.decode(), int(s)) for m, s in rows])

    async def dropped_total(self) -> int:
        counts = await self._redis.hvals(keys.mod_dropped_counts())
        return sum(int(c) for c in counts)


def _windows(raw: bytes | None) -> list[Window]:
    return (
        [(start, end) for start, end in msgspec.json.decode(raw, type=list[tuple[int, int]])] if raw else []
    )


def _keep_window(pipe: Pipeline, actor: str, raw: bytes | None, window: Window) -> None:
    """Add `window` to the actor's past ones (the newest HISTORY_KEPT), if it covered any time."""
    start, end = window
    if end > start:
        kept = [*_windows(raw), window][-HISTORY_KEPT:]
        pipe.hset(keys.mod_ban_windows(), actor, msgspec.json.encode(kept))


def _remember(pipe: Pipeline, actor: str, record: Enforcement) -> None:
    pipe.lpush(keys.mod_enforcement(actor), msgspec.json.encode(record))
    pipe.ltrim(keys.mod_enforcement(actor), 0, HISTORY_KEPT - 1)


def _state(ban: Ban | None, now_ms: int) -> dict[str, str]:
    if ban is None or (ban.until_ms and ban.until_ms <= now_ms):
        return {"banned": "no"}
    return {"banned": "yes", "until_ms": str(ban.until_ms)}
