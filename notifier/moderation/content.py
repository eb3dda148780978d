"""Where an actor's delivered comments and mentions are in the event log: per actor (what
ban-and-remove recalls) and per reportable thing (a comment, a mention in a post), kept for the
log's retention. The screener remembers what it lets through; reports and bans read the events
back from the log. The only code that touches `modc:` and `modref:` keys.

The actor's `modc:` key also holds their last minute for the velocity rule (velocity.py counts
through `velocity`): every screened comment and mention as its event id (an id holds neither
'/' nor ' ': never a position), scored by acceptance time minus VELOCITY_SCORES, below every
position's score. One key per active actor instead of two: ~180 bytes of Redis (the key, its
expiry and its table entry) less per actor, which for the many who comment once is per event.

A mention in a post is found under its actor: the actor's `modc:` member is its position and the
post (`POSITION POST`), not a `modref:` key of its own (a key per such event cost ~200 bytes of
Redis, ~20 per notification at 10 recipients); a report of one scans the actor's week of content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from feeds.scripts import Command, run_checked
from notifier.runtime.eventlog import LoggedEvent, decode_entry, partition_of
from schemas import keys, layouts
from schemas.events import Comment, Mention, is_id


@dataclass(frozen=True, slots=True)
class Located:
    position: str  # PARTITION/ENTRY, as ingest reports it
    logged: LoggedEvent


POST_SEPARATOR: Final = " "  # in an actor's member `POSITION POST`; neither holds a space
VELOCITY_SCORES: Final = 2**48  # above any time in ms; the offset scores stay exact in a double


def velocity(actor: str, event_id: str, accepted_ms: int, window_ms: int) -> tuple[list[Command], int]:
    """The commands that count `event_id` among the actor's events of the last `window_ms`
    (idempotent: counting it again changes nothing), and the index of the count's reply."""
    key = keys.mod_content(actor)
    now = accepted_ms - VELOCITY_SCORES
    start = now - window_ms
    commands: list[Command] = [
        ("ZADD", key, now, event_id),
        ("ZREMRANGEBYSCORE", key, "-inf", f"({start}"),
        ("ZCOUNT", key, f"({start}", now),
        *_lasting(key, 2 * window_ms),
    ]
    return commands, 2


def _lasting(key: str, ms: int) -> list[Command]:
    """The key lives at least `ms` more: its two uses keep it for different lengths."""
    return [("PEXPIRE", key, ms, "NX"), ("PEXPIRE", key, ms, "GT")]


def ref_of_group(group_id: str) -> str | None:
    """The reportable thing behind a notification group id (`comment:C`, `mention:C`,
    `mention:POST~ACTOR`: layouts.mention_in_post); None for groups that carry no text (likes,
    follows) or not in these forms."""
    verb, _, rest = group_id.partition(":")
    post, in_post, actor = rest.partition(layouts.MENTION_IN_POST)
    if verb == "mention" and in_post:
        return f"post:{post}{layouts.MENTION_IN_POST}{actor}" if is_id(post) and is_id(actor) else None
    if verb in {"comment", "mention"} and is_id(rest):
        return f"comment:{rest}"
    return None


class ContentIndex:
    def __init__(self, redis: Redis, *, partitions: int, retain_ms: int) -> None:
        self._redis = redis
        self._partitions = partitions
        self._retain_ms = retain_ms

    def position(self, logged: LoggedEvent) -> str:
        return f"{partition_of(logged.event.actor, self._partitions)}/{logged.entry_id.decode()}"

    async def remember(self, delivered: Sequence[LoggedEvent]) -> None:
        """Index delivered comments and mentions (idempotent: a member is the event's position)."""
        commands: list[Command] = []
        for logged in delivered:
            if not isinstance(logged.event, Comment | Mention):
                continue
            at = self.position(logged)
            horizon = logged.accepted_ms - self._retain_ms
            actor_key = keys.mod_content(logged.event.actor)
            comment = logged.event.comment  # what a user reports it by, else its post (and actor)
            member = at if comment else f"{at}{POST_SEPARATOR}{logged.event.post}"
            commands += [
                ("ZADD", actor_key, logged.accepted_ms, member),
                ("ZREMRANGEBYSCORE", actor_key, 0, f"({horizon}"),  # positions only
                *_lasting(actor_key, self._retain_ms),
            ]
            if comment:
                ref = keys.mod_ref(f"comment:{comment}")
                commands += [("HSET", ref, logged.event.id, at), ("PEXPIRE", ref, self._retain_ms)]
        if not commands:
            return
        await run_checked(self._redis, commands)

    async def of_ref(self, ref: str) -> list[Located]:
        """The events behind `ref` (as `ref_of_group` makes it) still in the log."""
        kind, _, rest = ref.partition(":")
        post, _, actor = rest.partition(layouts.MENTION_IN_POST)
        # a mention in a post delivered by an earlier version has a `modref:` key of its own,
        # named `post:POST:ACTOR`
        legacy = f"post:{post}:{actor}" if kind == "post" else ref
        positions = [p.decode() for p in (await self._redis.hgetall(keys.mod_ref(legacy))).values()]
        if kind == "post":
            pattern = f"*{POST_SEPARATOR}{post}"  # ids hold no glob character (schemas.events)
            members = self._redis.zscan_iter(keys.mod_content(actor), match=pattern, count=1_000)
            async for member, _ in members:
                positions.append(member.decode().partition(POST_SEPARATOR)[0])
        return await self.load(list(dict.fromkeys(positions)))

    async def of_actor(self, actor: str) -> list[Located]:
        members = await self._redis.zrange(keys.mod_content(actor), 0, "+inf", byscore=True)  # positions
        return await self.load([m.decode().partition(POST_SEPARATOR)[0] for m in members])

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
