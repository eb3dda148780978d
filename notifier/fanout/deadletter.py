"""Dead letters: the entries fan-out gave up on, with their error and delivery count, and the
operator's tools for them: list, show, redrive (back into the log) and drop (reason kept)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import msgspec
from redis.asyncio import Redis

from feeds.scripts import Command, Script, run_checked
from notifier.runtime import eventlog
from schemas import keys
from schemas.events import decode_stored, encode_event

LOST: Final = "lost before processing"  # the error of a dead letter whose event was deleted
_LOST_ERROR: Final = f"{LOST}: deleted from the event log while pending"


class Moved(IntEnum):
    NOT_PENDING = 0  # another worker's pass took it first
    DEAD_LETTERED = 1
    LOST = 2  # dead-lettered, but its event was already gone from the log: never processed


_ENTRY: Final = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")  # a stream id, as `dlq list` shows
# KEYS: done, event log, errors; ARGV: the group, then entry ids. Counts the entries done and
# acknowledges them in one step: counted first (a count read in between misses no entry: _GAP),
# less those another worker acknowledged (and counted) already. One atomic call, because at
# maxmemory Redis refuses INCRBY but not XACK: as separate commands an entry could be
# acknowledged uncounted, and reported lost for good. Here INCRBY comes first, so a refusal
# leaves nothing done; once a script has written, Redis lets it finish. Idempotent.
_ACK: Final = Script("""
local n = #ARGV - 1
redis.call('INCRBY', KEYS[1], n)
local acked = redis.call('XACK', KEYS[2], ARGV[1], unpack(ARGV, 2))
if acked < n then redis.call('DECRBY', KEYS[1], n - acked) end
redis.call('HDEL', KEYS[3], unpack(ARGV, 2))
return acked
""")
# KEYS: event log, dead letters, errors, done (_GAP). ARGV: group, entry id, deliveries, fallback error,
# the error of an entry gone from the log. The move and the XACK are one step, in the
# partition's slot. Only a still-pending entry moves: several workers' reclaim passes can pick
# the same hopeless entry, and only the first may.
_MOVE: Final = Script("""
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return 0 end
local rows = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
local err = #rows == 0 and ARGV[5] or redis.call('HGET', KEYS[3], ARGV[2]) or ARGV[4]
local fields = {'orig', ARGV[2], 'deliveries', ARGV[3], 'error', err}
if #rows > 0 then
  for _, v in ipairs(rows[1][2]) do fields[#fields + 1] = v end
end
redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('INCRBY', KEYS[4], redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]))
redis.call('HDEL', KEYS[3], ARGV[2])
return #rows == 0 and 2 or 1
""")

# KEYS: event log, reported, dead letters, done, counting consumers. ARGV: group, `create` or
# `check`, error prefix, then the consumer (`create`) or how long a consumer stays active (`check`).
# `done` counts the partition's entries the fan-out accounted for: acknowledged (applied or
# dead-lettered), dropped from the group while pending (deleted from the log: lost, reported),
# or in the log before the group was made. Every entry ever added is done, pending, unread or
# deleted from the log before anyone read it: an operator's XTRIM MAXLEN or XDEL (the janitor
# trims only what was read). `check` reports those not reported yet (`reported`), once: a dead
# letter without an event, and the reply {the group's last-delivered-id, how many}. Unread is
# what the log holds past the group's last-delivered-id: all of it when the log's first entry is
# past it, else Redis's lag (which has none while deletions lie ahead of the group: then the
# count waits for the group to read on).
# The count is trusted once `check` has set it (`reported` exists) while only consumers that
# count (they were named to `create`: this version's workers) were active: a worker of a version
# before the count acknowledges without counting, so while one is active (a rolling upgrade), or
# before the first `check`, `check` sets the count from what Redis holds and reports nothing.
# `create`: the group, from the log's start (MKSTREAM), unless it exists; what the log holds then
# is the new group's to read, what was added before is done.
_GAP: Final = Script("""
local function map(reply)
  local t = {}
  for i = 1, #reply, 2 do t[reply[i]] = reply[i + 1] end
  return t
end
local function newer(a, b)
  local am, as = a:match('^(%d+)-(%d+)$')
  local bm, bs = b:match('^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
local function baseline(done)
  redis.call('SET', KEYS[4], done)
  redis.call('SET', KEYS[2], 0)
end
if ARGV[2] == 'create' then
  redis.call('SADD', KEYS[5], ARGV[4])
  local made = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
  if type(made) == 'table' and made.err then
    if made.err:find('BUSYGROUP', 1, true) then return 0 end
    return redis.error_reply(made.err)
  end
  local s = map(redis.call('XINFO', 'STREAM', KEYS[1]))
  baseline((s['entries-added'] or s['length']) - s['length'])
  return 1
end
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local s = map(redis.call('XINFO', 'STREAM', KEYS[1]))
local group
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local f = map(g)
  if f['name'] == ARGV[1] then group = f end
end
if not group then return false end
local last = group['last-delivered-id']
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
local unread = group['lag']
if not first or newer(first[1], last) then unread = s['length'] end
local added = s['entries-added']
if not (added and unread) then return false end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])[1]
local trusted = redis.call('EXISTS', KEYS[2]) == 1
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = map(c)
  if f['idle'] < tonumber(ARGV[4]) and redis.call('SISMEMBER', KEYS[5], f['name']) == 0 then
    trusted = false  -- a worker that does not count is active
  end
end
if not trusted then
  baseline(added - pending - unread)
  return false
end
local lost = added - tonumber(redis.call('GET', KEYS[4]) or '0') - pending - unread
local reported = tonumber(redis.call('GET', KEYS[2]))
if lost <= reported then return false end
redis.call('SET', KEYS[2], lost)
local err = ARGV[3] .. ': ' .. (lost - reported) .. ' entries deleted from the event log before the '
  .. 'fan-out read them (it has read up to ' .. last .. ')'
redis.call('XADD', KEYS[3], '*', 'orig', last, 'deliveries', '0', 'error', err)
return {last, lost - reported}
""")

# KEYS: dead letters, target stream. ARGV: dead-letter id, `all` or not, then extra field/value
# pairs. Copies the entry's original fields (runtime.eventlog.EVENT_FIELDS) or all of them, then
# deletes it; a copy back into the log names the entry the event was first appended as
# (REDRIVEN_FROM: the letter's `orig`, or what an earlier redrive named).
_TAKE: Final = Script(
    """
local rows = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #rows == 0 then return false end
local fields = {}
local all = ARGV[2] == 'all'
local f = rows[1][2]
local COPIED = {EVENT_FIELDS}
local first
for i = 1, #f, 2 do
  if all or COPIED[f[i]] then
    fields[#fields + 1] = f[i]; fields[#fields + 1] = f[i + 1]
  end
  if f[i] == 'REDRIVEN_FROM' or (f[i] == 'orig' and not first) then first = f[i + 1] end
end
if #fields == 0 then return false end  -- a lost entry's dead letter: no event to redrive
if not all and first then
  fields[#fields + 1] = 'REDRIVEN_FROM'; fields[#fields + 1] = first
end
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
""".replace(
        "{EVENT_FIELDS}", "{" + ", ".join(f"{name} = true" for name in eventlog.EVENT_FIELDS) + "}"
    ).replace("REDRIVEN_FROM", eventlog.REDRIVEN_FROM)
)


@dataclass(frozen=True, slots=True)
class Gap:
    """`lost` entries deleted from a partition's log before the fan-out read them (it had read
    up to `read_up_to` when it found out)."""

    read_up_to: str
    lost: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    ref: str  # PARTITION/ID
    fields: dict[str, str]


def parse_ref(ref: str) -> tuple[int, str]:
    partition, _, entry = ref.partition("/")
    if not (partition.isascii() and partition.isdigit()) or not _ENTRY.fullmatch(entry):
        raise ValueError(f"not a dead-letter reference (PARTITION/ID): {ref!r}")
    return int(partition), entry


class DeadLetters:
    """The only code that touches `dlq:`, `dlq-dropped:`, `fanout-errors:`, `fanout-done:`,
    `fanout-gap:` and `fanout-counting:` keys."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def record_errors(self, partition: int, errors: dict[bytes, str]) -> None:
        if errors:
            await self._redis.hset(keys.fanout_errors(partition), mapping=errors)

    async def failed(self, partition: int, entry_ids: Sequence[bytes]) -> list[bool]:
        """Per entry, whether an apply of its event failed with an error of its own (recorded)."""
        if not entry_ids:
            return []
        errors = await self._redis.hmget(keys.fanout_errors(partition), list(entry_ids))
        return [e is not None for e in errors]

    async def acknowledge_many(self, entry_ids: Mapping[int, Sequence[bytes]]) -> dict[int, int]:
        """XACK the applied entries of each partition, count them done and clear their earlier
        errors: one atomic call per partition (_ACK), all in one round trip (on a cluster, one
        per master, at once); per partition, how many were still pending."""
        commands: list[Command] = [
            _ACK.command(
                [keys.fanout_done(p), keys.events(p), keys.fanout_errors(p)], [keys.FANOUT_GROUP, *ids]
            )
            for p, ids in entry_ids.items()
        ]
        replies = await run_checked(self._redis, commands, [_ACK]) if commands else []
        return {p: int(n) for p, n in zip(entry_ids, replies, strict=True)}

    async def create_group(self, partition: int, consumer: str) -> bool:
        """The fan-out group of the partition, from the log's start, unless it exists; the log's
        deletions before it are not losses (`unread_deleted`), and `consumer` is one that counts
        what it acknowledges. True if the group was created."""
        made = await _GAP(
            self._redis, self._gap_keys(partition), [keys.FANOUT_GROUP, "create", LOST, consumer]
        )
        return bool(made)

    @staticmethod
    def _gap_keys(partition: int) -> list[str]:
        return [
            keys.events(partition),
            keys.fanout_gap(partition),
            keys.dead_letters(partition),
            keys.fanout_done(partition),
            keys.fanout_counting(partition),
        ]

    async def uncount(self, partition: int, consumer: str | bytes) -> None:
        """`consumer` left the group (reaped): its name leaves the counting ones (a name a day
        for workers named after their pods would pile up)."""
        await self._redis.srem(keys.fanout_counting(partition), consumer)

    async def unread_deleted(self, partition: int, active_ms: int) -> Gap | None:
        """Entries deleted from the log before the fan-out read them, once each (see _GAP): a
        dead letter without an event already records them. A consumer idle for less than
        `active_ms` is active."""
        found = await _GAP(
            self._redis, self._gap_keys(partition), [keys.FANOUT_GROUP, "check", LOST, active_ms]
        )
        if not found:
            return None
        read_up_to, lost = found
        return Gap(read_up_to.decode(), int(lost))

    async def record_lost(self, partition: int, entry_id: bytes) -> None:
        """A dead letter without an event for an entry deleted from the log before it was
        processed, that XAUTOCLAIM already dropped from the group (a pending one: `move`)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.xadd(keys.dead_letters(partition), {"orig": entry_id, "deliveries": 0, "error": _LOST_ERROR})
        pipe.hdel(keys.fanout_errors(partition), entry_id)
        pipe.incr(keys.fanout_done(partition))  # out of the group, reported: not an unread loss
        await pipe.execute()

    async def move(self, partition: int, entry_id: bytes, deliveries: int, error: str) -> Moved:
        """Dead-letter and acknowledge the entry, if still pending; an entry whose event is gone
        from the log is recorded as lost before processing."""
        stream = keys.events(partition)
        moved = await _MOVE(
            self._redis,
            [
                stream,
                keys.dead_letters(partition),
                keys.fanout_errors(partition),
                keys.fanout_done(partition),
            ],
            [keys.FANOUT_GROUP, entry_id, deliveries, error, _LOST_ERROR],
        )
        return Moved(moved)

    async def entries(self, partitions: int, count: int = 100) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        for p in range(partitions):
            rows = await self._redis.xrange(keys.dead_letters(p), count=count)
            out += [_letter(p, rid, fields) for rid, fields in rows]
        return out

    async def sizes(self, partitions: int) -> list[int]:
        """How many dead letters each partition holds."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for p in range(partitions):
                pipe.xlen(keys.dead_letters(p))
            return [int(n) for n in await pipe.execute()]

    async def entries_of(self, partition: int, entry: str, scan: int) -> list[DeadLetter]:
        """The dead letters of log entry `entry` among the partition's first `scan`."""
        rows = await self._redis.xrange(keys.dead_letters(partition), count=scan)
        return [_letter(partition, rid, f) for rid, f in rows if f.get(b"orig") == entry.encode()]

    async def show(self, ref: str) -> DeadLetter | None:
        p, entry = parse_ref(ref)
        rows = await self._redis.xrange(keys.dead_letters(p), min=entry, max=entry)
        return _letter(p, *rows[0]) if rows else None

    async def redrive(self, ref: str) -> str | None:
        """Append the event to the log again (the views dedupe it); returns its new position."""
        p, entry = parse_ref(ref)
        new_id = await _TAKE(self._redis, [keys.dead_letters(p), keys.events(p)], [entry, "event"])
        return f"{p}/{new_id.decode()}" if new_id else None

    async def drop(self, ref: str, reason: str) -> bool:
        p, entry = parse_ref(ref)
        kept = await _TAKE(
            self._redis,
            [keys.dead_letters(p), keys.dropped_letters(p)],
            [entry, "all", "dropped_reason", reason],
        )
        return bool(kept)


def _letter(partition: int, rid: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    decoded = {k.decode(): _text(k.decode(), v) for k, v in fields.items()}
    return DeadLetter(f"{partition}/{rid.decode()}", decoded)


def _text(field: str, value: bytes) -> str:
    """A field as an operator reads it: the stored event as the contract's JSON."""
    if field == eventlog.EVENT:
        try:
            return encode_event(decode_stored(value)).decode()
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
            pass  # shown as it is: what made it undecodable may be why it is here
    return value.decode(errors="replace")
