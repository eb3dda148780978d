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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from feeds.changelog import entry_id
from feeds.scripts import Command, Script, run_checked
from notifier.runtime.eventlog import LoggedEvent, decode_entry, partition_of
from schemas import keys, layouts
from schemas.events import Comment, Mention, is_id


@dataclass(frozen=True, slots=True)
class Located:
    position: str  # PARTITION/ENTRY, as ingest reports it
    logged: LoggedEvent


VELOCITY_WINDOW_MS: Final = 60_000  # what the velocity rule counts an actor's events over
# A counted entry is kept this long past the time of the actor's event being screened, so events
# screened out of order up to this far apart (a reclaimed batch, a lagging partition) are
# counted alike, in the actor's field or their own sorted set.
COUNTED_KEEP_MS: Final = 3_600_000
SWEEP_EVERY_MS: Final = 3_600_000  # every bucket is swept this often (the jobs role)

_LUA_SEPARATOR, _LUA_POST, _LUA_DELIVERED, _LUA_COUNTED, _LUA_AGAIN = (
    layouts.lua_string(c)
    for c in (
        layouts.CONTENT_SEPARATOR,
        layouts.CONTENT_POST,
        layouts.CONTENT_DELIVERED,
        layouts.CONTENT_COUNTED,
        layouts.CONTENT_AGAIN,
    )
)
# KEYS: the actor's bucket (keys.mod_content), their spill key (keys.mod_content_spill).
# ARGV: mode (c: count a screened event, d: it was delivered, p: prune), actor, position, post
# ('' for none), the velocity window, COUNTED_KEEP_MS, the oldest time a delivered entry is kept
# for, the retention (ms), then for modes c and d the position a redriven dead letter was first
# appended at ('' for any other event), for mode p the time now. A redriven event is counted as
# of its first append, as it was then (its first entry among those of that window, or itself if
# that is gone), and adds no counted entry (delivered, its entry is CONTENT_AGAIN, never
# counted): a redrive is no burst. Returns for mode c the actor's events in the window ending at
# the event's time, itself included; for mode p 1 if the field went; else 0. Idempotent: an
# entry is its position.
_INDEX: Final = Script(f"""
local bucket, spill = KEYS[1], KEYS[2]
local mode, actor, pos, post = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local window, keep = tonumber(ARGV[5]), tonumber(ARGV[6])
local horizon, retain = tonumber(ARGV[7]), tonumber(ARGV[8])
local V, SPILL = {layouts.VELOCITY_SCORES}, {layouts.CONTENT_SPILL}
local SEP, DELIVERED, COUNTED, AGAIN = {_LUA_SEPARATOR}, {_LUA_DELIVERED}, {_LUA_COUNTED}, {_LUA_AGAIN}
local POST = {_LUA_POST}
local function ms_of(position) return tonumber(position:match('/(%d+)')) end
local function position_of(rest) return rest:sub(1, (rest:find(POST, 1, true) or 0) - 1) end
local function int(n) return string.format('%d', n) end
local t, first = nil, ''  -- the time the event counts as of; the first append of a redrive
if mode == 'p' then
  t = tonumber(ARGV[9])
else
  first = ARGV[9]
  t = ms_of(first ~= '' and first or pos)
end
local again = first ~= ''
local member = post ~= '' and pos .. POST .. post or pos
local function last(ms)  -- the spill key lives at least `ms` more
  redis.call('PEXPIRE', spill, ms, 'NX')
  redis.call('PEXPIRE', spill, ms, 'GT')
end
if redis.call('EXISTS', spill) == 1 then
  if mode == 'c' then
    if not again then redis.call('ZADD', spill, int(t - V), COUNTED .. pos) end
    redis.call('ZREMRANGEBYSCORE', spill, '-inf', '(' .. int(t - V - keep))
    last(keep)
    local n = redis.call('ZCOUNT', spill, '(' .. int(t - V - window), int(t - V))
    if again and not redis.call('ZSCORE', spill, COUNTED .. first) then n = n + 1 end
    return n
  end
  if mode == 'd' then
    redis.call('ZADD', spill, int(ms_of(pos)), member)
    redis.call('ZREMRANGEBYSCORE', spill, '0', '(' .. int(horizon))
    last(retain)
  end
  return 0
end
local delivered = again and AGAIN or DELIVERED
local kept, n, found, found_first = {{}}, 0, false, false
for entry in (redis.call('HGET', bucket, actor) or ''):gmatch('[^' .. SEP .. ']+') do
  local flag, rest = entry:sub(1, 1), entry:sub(2)
  local p = position_of(rest)
  local at = ms_of(p)
  if p == pos then
    found = true
    if mode == 'd' then flag, rest = delivered, member end
  end
  local live = at >= horizon  -- delivered entries: the log's retention
  if flag == COUNTED then  -- the velocity rule's: an hour past the actor's event (two at a sweep)
    live = at > t - (mode == 'p' and 2 * keep or keep)
  end
  if live then
    kept[#kept + 1] = flag .. rest
    if mode == 'c' and flag ~= AGAIN and at > t - window and at <= t then
      n = n + 1
      if p == first then found_first = true end
    end
  end
end
if again and mode == 'c' then
  if not found_first then n = n + 1 end  -- its first append's entry is gone: itself
elseif not found and mode == 'c' then
  kept[#kept + 1] = COUNTED .. pos
  n = n + 1
elseif not found and mode == 'd' then
  kept[#kept + 1] = delivered .. member
end
if #kept > SPILL then  -- the actor's own sorted set from now on
  local lasting = keep
  for _, entry in ipairs(kept) do
    local flag, rest = entry:sub(1, 1), entry:sub(2)
    local p = position_of(rest)
    local at = ms_of(p)
    if flag ~= COUNTED then
      redis.call('ZADD', spill, int(at), rest)
      lasting = retain
    end
    if flag ~= AGAIN and at > t - keep then redis.call('ZADD', spill, int(at - V), COUNTED .. p) end
  end
  redis.call('HDEL', bucket, actor)
  last(lasting)
elseif #kept == 0 then
  local went = redis.call('HDEL', bucket, actor)
  return mode == 'c' and n or went
else
  redis.call('HSET', bucket, actor, table.concat(kept, SEP))
end
return mode == 'c' and n or 0
""")


def _index(
    mode: str, actor: str, position: str, post: str, horizon_ms: int, retain_ms: int, last: str | int
) -> Command:
    return _INDEX.command(
        [keys.mod_content(actor), keys.mod_content_spill(actor)],
        [mode, actor, position, post, VELOCITY_WINDOW_MS, COUNTED_KEEP_MS, horizon_ms, retain_ms, last],
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
        self._swept_ms: int | None = None  # up to when `sweep` swept the buckets due

    scripts: Final = (_INDEX,)  # what its commands call

    def position(self, logged: LoggedEvent, entry_id: bytes | None = None) -> str:
        """`PARTITION/ENTRY` of the event's entry (or of `entry_id`, in its partition)."""
        entry = logged.entry_id if entry_id is None else entry_id
        return f"{partition_of(logged.event.actor, self._partitions)}/{entry.decode()}"

    def first_position(self, logged: LoggedEvent) -> str:
        """Where a redriven dead letter was first appended ('' for any other event)."""
        return self.position(logged, logged.redriven_from) if logged.redriven_from else ""

    def count(self, actor: str, position: str, first_position: str = "") -> Command:
        """The command that counts the event at `position` (a comment or a mention) among its
        actor's events of the VELOCITY_WINDOW_MS up to its acceptance, or a redriven one's as of
        `first_position` (idempotent: counting it again changes nothing); it replies with the
        count, itself included."""
        horizon = _entry_ms(position) - self._retain_ms
        return _index("c", actor, position, "", horizon, self._retain_ms, first_position)

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
            first = self.first_position(logged)
            commands.append(_index("d", logged.event.actor, at, post, horizon, self._retain_ms, first))
            if comment:
                ref = keys.mod_ref(f"comment:{comment}")
                commands += [("HSET", ref, logged.event.id, at), ("PEXPIRE", ref, self._retain_ms)]
        if commands:
            await run_checked(self._redis, commands, [_INDEX])

    async def sweep(self, now_ms: int, every_ms: int) -> int:
        """Prune the buckets due: each has its time in the hour (SWEEP_EVERY_MS), and a call
        sweeps those whose time came since the last call (at most an hour back; the first call
        of a process, since `every_ms` ago), so every bucket is swept hourly whatever restarts
        the jobs role or delays its calls (an actor who stopped leaves a field until it is). A
        sweep deletes delivered entries past the log's retention and counted ones two
        COUNTED_KEEP_MS old, by the wall clock (an actor's own events prune their counted entries
        an hour behind, in event time). Returns how many fields went."""
        since = now_ms - every_ms if self._swept_ms is None else max(self._swept_ms, now_ms - SWEEP_EVERY_MS)
        self._swept_ms = now_ms
        horizon = now_ms - self._retain_ms
        counted_horizon = now_ms - 2 * COUNTED_KEEP_MS
        gone = 0
        for bucket in range(keys.CONTENT_BUCKETS):
            due = bucket * SWEEP_EVERY_MS // keys.CONTENT_BUCKETS
            if (now_ms - due) % SWEEP_EVERY_MS >= now_ms - since:
                continue
            page: list[Command] = []
            async for actor, raw in self._redis.hscan_iter(keys.content_bucket(bucket), count=1_000):
                entries = layouts.decode_content(raw)
                if any(
                    _entry_ms(e.position) < (horizon if e.delivered else counted_horizon) for e in entries
                ):
                    page.append(_index("p", actor.decode(), "", "", horizon, self._retain_ms, now_ms))
                if len(page) >= 100:
                    gone += sum(await run_checked(self._redis, page, [_INDEX]))
                    page = []
            if page:
                gone += sum(await run_checked(self._redis, page, [_INDEX]))
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
            pattern = f"*{layouts.CONTENT_POST}{post}"  # ids hold no glob character (schemas.events)
            for key in (keys.mod_content_spill(actor), keys.mod_content_before(actor)):
                async for member, _ in self._redis.zscan_iter(key, match=pattern, count=1_000):
                    positions.append(member.decode().partition(layouts.CONTENT_POST)[0])
        return await self.load(list(dict.fromkeys(positions)))

    async def of_actor(self, actor: str) -> list[Located]:
        positions = [e.position for e in await self._entries(actor)]
        for key in (keys.mod_content_spill(actor), keys.mod_content_before(actor)):
            members = await self._redis.zrange(key, 0, "+inf", byscore=True)  # positions
            positions += [m.decode().partition(layouts.CONTENT_POST)[0] for m in members]
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
    return entry_id(position.partition("/")[2])[0]
