"""Where an actor's delivered comments and mentions are in the event log: per actor (what
ban-and-remove recalls) and per reportable thing (a comment, a mention in a post), kept for the
log's retention. The screener remembers what it lets through; reports and bans read the events
back from the log. The only code that touches `modc:` and `modref:` keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from feeds.scripts import Command, run_checked
from notifier.runtime.eventlog import LoggedEvent, decode_entry, partition_of
from schemas import keys
from schemas.events import Comment, Mention


@dataclass(frozen=True, slots=True)
class Located:
    position: str  # PARTITION/ENTRY, as ingest reports it
    logged: LoggedEvent


def refs_of(logged: LoggedEvent) -> list[str]:
    """What a user can report that this event is behind."""
    event = logged.event
    if isinstance(event, Comment):
        return [f"comment:{event.comment}"]
    if isinstance(event, Mention):
        return [f"comment:{event.comment}" if event.comment else f"post:{event.post}:{event.actor}"]
    return []


def ref_of_group(group_id: str) -> str | None:
    """The reportable thing behind a notification group id (`comment:C`, `mention:C`,
    `mention:POST:ACTOR`); None for groups that carry no text (likes, follows)."""
    verb, _, rest = group_id.partition(":")
    parts = rest.split(":")
    if verb in {"comment", "mention"} and len(parts) == 1 and parts[0]:
        return f"comment:{parts[0]}"
    if verb == "mention" and len(parts) == 2 and all(parts):
        return f"post:{parts[0]}:{parts[1]}"
    return None


class ContentIndex:
    def __init__(self, redis: Redis, *, partitions: int, retain_ms: int) -> None:
        self._redis = redis
        self._partitions = partitions
        self._retain_ms = retain_ms

    def position(self, logged: LoggedEvent) -> str:
        return f"{partition_of(logged.event.actor, self._partitions)}/{logged.entry_id.decode()}"

    async def remember(self, delivered: Sequence[LoggedEvent]) -> None:
        """Index delivered comments and mentions (idempotent: members are positions)."""
        commands: list[Command] = []
        for logged in delivered:
            if not isinstance(logged.event, Comment | Mention):
                continue
            at = self.position(logged)
            horizon = logged.accepted_ms - self._retain_ms
            actor_key = keys.mod_content(logged.event.actor)
            commands += [
                ("ZADD", actor_key, logged.accepted_ms, at),
                ("ZREMRANGEBYSCORE", actor_key, "-inf", f"({horizon}"),
                ("PEXPIRE", actor_key, self._retain_ms),
            ]
            for ref in refs_of(logged):
                commands += [
                    ("HSET", keys.mod_ref(ref), logged.event.id, at),
                    ("PEXPIRE", keys.mod_ref(ref), self._retain_ms),
                ]
        if not commands:
            return
        await run_checked(self._redis, commands)

    async def of_ref(self, ref: str) -> list[Located]:
        positions = [p.decode() for p in (await self._redis.hgetall(keys.mod_ref(ref))).values()]
        return await self.load(positions)

    async def of_actor(self, actor: str) -> list[Located]:
        return await self.load([p.decode() for p in await self._redis.zrange(keys.mod_content(actor), 0, -1)])

    async def load(self, positions: Sequence[str]) -> list[Located]:
        """The events at `positions` still in the log (trimmed ones are gone), in the given order."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for position in positions:
                partition, _, entry = position.partition("/")
                pipe.xrange(keys.events(int(partition)), min=entry, max=entry, count=1)
            replies = await pipe.execute()
        found = []
        for position, rows in zip(positions, replies, strict=True):
            if rows:
                entry_id, fields = rows[0]
                found.append(Located(position, decode_entry(entry_id, fields)))
        return found
