"""Where an actor's screened comments and mentions are in the event log: per actor (what
ban-and-remove recalls, and the velocity rule's minute) and per reportable comment, kept for the
log's retention. The screener counts what it screens and remembers what it lets through;
reports and bans read the events back from the log. The only code that touches `modc:` and
`modref:` keys.

An actor's index is a field of one of keys.CONTENT_BUCKETS shared hashes (schemas/layouts.py
CONTENT_*): one entry per screened event, its position, flagged delivered or only counted. A
field instead of a key with a TTL per actor: for the many who comment once, ~90 bytes of Redis
an event instead of ~230 (the key, its expiry and its table entries). An actor with more than
CONTENT_SPILL entries gets a sorted set of their own in the same slot (a field is rewritten
whole on every change). Fields of actors who stopped are swept by the jobs role (`sweep`).

A mention in a post is found under its actor: their entry carries the post (`POSITION POST`),
and a report of one scans the actor's week of content.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from feeds.scripts import Command, Script, run_checked
from notifier.runtime.eventlog import LoggedEvent, decode_entry, partition_of
from schemas import keys, layouts
from schemas.events import Comment, Mention, is_id


@dataclass(frozen=True, slots=True)
class Located:
    position: str  # PARTITION/ENTRY, as ingest reports it
    logged: LoggedEvent


POST_SEPARATOR: Final = " "  # in an actor's member `POSITION POST`; neither holds a space
VELOCITY_WINDOW_MS: Final = 60_000  # what the velocity rule counts an actor's events over
SWEEP_EVERY_MS: Final = 3_600_000  # every bucket is swept this often (the jobs role)

_LUA_SEPARATOR, _LUA_DELIVERED, _LUA_COUNTED = (
    layouts.lua_string(c)
    for c in (layouts.CONTENT_SEPARATOR, layouts.CONTENT_DELIVERED, layouts.CONTENT_COUNTED)
)
# KEYS: the actor's bucket (keys.mod_content), their spill key (keys.mod_content_spill).
# ARGV: mode (c: count a screened event, d: it was delivered, p: prune), actor, position, post
# ('' for none), the velocity window (ms), the oldest time a delivered entry is kept for, the
# retention (ms), and the time now (mode p; else the position's time is). Returns the actor's
# events in the window ending at the position's time, itself included (mode c), else 0.
# Idempotent: an entry is its position.
_INDEX: Final = Script(f"""
local bucket, spill = KEYS[1], KEYS[2]
local mode, actor, pos, post = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local window, horizon, retain = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local V, SPILL = {layouts.VELOCITY_SCORES}, {layouts.CONTENT_SPILL}
local SEP, DELIVERED, COUNTED = {_LUA_SEPARATOR}, {_LUA_DELIVERED}, {_LUA_COUNTED}
local function ms_of(position) return tonumber(position:match('/(%d+)')) end
local function int(n) return string.format('%d', n) end
local t = mode == 'p' and tonumber(ARGV[8]) or ms_of(pos)
local member = post ~= '' and pos .. ' ' .. post or pos
local function last(ms)  -- the spill key lives at least `ms` more
  redis.call('PEXPIRE', spill, ms, 'NX')
  redis.call('PEXPIRE', spill, ms, 'GT')
end
local function count_in_spill()
  local start = int(t - V - window)
  redis.call('ZADD', spill, int(t - V), COUNTED .. pos)
  redis.call('ZREMRANGEBYSCORE', spill, '-inf', '(' .. start)
  last(2 * window)
  return redis.call('ZCOUNT', spill, '(' .. start, int(t - V))
end
if redis.call('EXISTS', spill) == 1 then
  if mode == 'c' then return count_in_spill() end
  if mode == 'd' then
    redis.call('ZADD', spill, int(t), member)
    redis.call('ZREMRANGEBYSCORE', spill, '0', '(' .. int(horizon))
    last(retain)
  end
  return 0
end
local kept, n, found = {{}}, 0, false
for entry in (redis.call('HGET', bucket, actor) or ''):gmatch('[^' .. SEP .. ']+') do
  local flag, rest = entry:sub(1, 1), entry:sub(2)
  local p = rest:match('^%S+')
  local at = ms_of(p)
  if p == pos then
    found = true
    if mode == 'd' then flag, rest = DELIVERED, member end
  end
  if (flag == DELIVERED and at >= horizon) or at > t - window then
    kept[#kept + 1] = flag .. rest
    if mode == 'c' and at > t - window and at <= t then n = n + 1 end
  end
end
if not found and mode == 'c' then
  kept[#kept + 1] = COUNTED .. pos
  n = n + 1
elseif not found and mode == 'd' then
  kept[#kept + 1] = DELIVERED .. member
end
if #kept > SPILL then  -- the actor's own sorted set from now on
  for _, entry in ipairs(kept) do
    local p = entry:sub(2):match('^%S+')
    local at = ms_of(p)
    if entry:sub(1, 1) == DELIVERED then redis.call('ZADD', spill, int(at), entry:sub(2)) end
    if at > t - window then redis.call('ZADD', spill, int(at - V), COUNTED .. p) end
  end
  redis.call('HDEL', bucket, actor)
  last(retain)
elseif #kept == 0 then
  redis.call('HDEL', bucket, actor)
else
  redis.call('HSET', bucket, actor, table.concat(kept, SEP))
end
return n
""")


def _index(
    mode: str, actor: str, position: str, post: str, horizon_ms: int, retain_ms: int, now_ms: int = 0
) -> Command:
    return _INDEX.command(
        [keys.mod_content(actor), keys.mod_content_spill(actor)],
        [mode, actor, position, post, VELOCITY_WINDOW_MS, horizon_ms, retain_ms, now_ms],
    )


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
        self._next_bucket = 0  # where `sweep` goes on

    scripts: Final = (_INDEX,)  # what its commands call

    def position(self, logged: LoggedEvent) -> str:
        return f"{partition_of(logged.event.actor, self._partitions)}/{logged.entry_id.decode()}"

    def count(self, actor: str, position: str) -> Command:
        """The command that counts the event at `position` (a comment or a mention) among its
        actor's events of the VELOCITY_WINDOW_MS up to its acceptance (idempotent: counting it
        again changes nothing); it replies with the count, itself included."""
        return _index("c", actor, position, "", _entry_ms(position) - self._retain_ms, self._retain_ms)

    async def remember(self, delivered: Sequence[LoggedEvent]) -> None:
        """Index delivered comments and mentions (idempotent: an entry is the event's position)."""
        commands: list[Command] = []
        for logged in delivered:
            if not isinstance(logged.event, Comment | Mention):
                continue
            at = self.position(logged)
            horizon = _entry_ms(at) - self._retain_ms
            comment = logged.event.comment  # what a user reports it by, else its post (and actor)
            post = "" if comment else logged.event.post
            commands.append(_index("d", logged.event.actor, at, post, horizon, self._retain_ms))
            if comment:
                ref = keys.mod_ref(f"comment:{comment}")
                commands += [("HSET", ref, logged.event.id, at), ("PEXPIRE", ref, self._retain_ms)]
        if commands:
            await run_checked(self._redis, commands, [_INDEX])

    async def sweep(self, now_ms: int, every_ms: int) -> int:
        """Prune the next buckets' fields (idempotent; an actor who stopped leaves a field until
        it is pruned), enough a call for every bucket to be swept each SWEEP_EVERY_MS when
        called every `every_ms`; returns how many fields went."""
        share = math.ceil(keys.CONTENT_BUCKETS * every_ms / SWEEP_EVERY_MS)
        horizon = now_ms - self._retain_ms
        gone = 0
        for _ in range(min(share, keys.CONTENT_BUCKETS)):
            bucket = keys.content_bucket(self._next_bucket)
            self._next_bucket = (self._next_bucket + 1) % keys.CONTENT_BUCKETS
            async for actor, raw in self._redis.hscan_iter(bucket, count=1_000):
                entries = layouts.decode_content(raw)
                if all(_kept(e, horizon, now_ms - VELOCITY_WINDOW_MS) for e in entries):
                    continue
                name = actor.decode()
                prune = _index("p", name, "", "", horizon, self._retain_ms, now_ms)
                await run_checked(self._redis, [prune], [_INDEX])
                gone += not await self._redis.hexists(bucket, name)
        return gone

    async def of_ref(self, ref: str) -> list[Located]:
        """The events behind `ref` (as `ref_of_group` makes it) still in the log."""
        kind, _, rest = ref.partition(":")
        post, _, actor = rest.partition(layouts.MENTION_IN_POST)
        # a mention in a post delivered by an earlier version has a `modref:` key of its own,
        # named `post:POST:ACTOR`
        legacy = f"post:{post}:{actor}" if kind == "post" else ref
        positions = [p.decode() for p in (await self._redis.hgetall(keys.mod_ref(legacy))).values()]
        if kind == "post":
            positions += [e.position for e in await self._entries(actor) if e.post == post]
            pattern = f"*{POST_SEPARATOR}{post}"  # ids hold no glob character (schemas.events)
            for key in (keys.mod_content_spill(actor), keys.mod_content_before(actor)):
                async for member, _ in self._redis.zscan_iter(key, match=pattern, count=1_000):
                    positions.append(member.decode().partition(POST_SEPARATOR)[0])
        return await self.load(list(dict.fromkeys(positions)))

    async def of_actor(self, actor: str) -> list[Located]:
        positions = [e.position for e in await self._entries(actor)]
        for key in (keys.mod_content_spill(actor), keys.mod_content_before(actor)):
            members = await self._redis.zrange(key, 0, "+inf", byscore=True)  # positions
            positions += [m.decode().partition(POST_SEPARATOR)[0] for m in members]
        return await self.load(list(dict.fromkeys(positions)))

    async def _entries(self, actor: str) -> list[layouts.ContentEntry]:
        """The delivered entries of the actor's field."""
        raw = await self._redis.hget(keys.mod_content(actor), actor)
        return [e for e in layouts.decode_content(raw) if e.delivered]

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


def _entry_ms(position: str) -> int:
    return int(position.partition("/")[2].partition("-")[0])


def _kept(entry: layouts.ContentEntry, horizon_ms: int, window_start_ms: int) -> bool:
    """Whether the script keeps `entry` (what `sweep` looks for before asking it to prune)."""
    at = _entry_ms(entry.position)
    return (entry.delivered and at >= horizon_ms) or at > window_start_ms
