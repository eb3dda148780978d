"""Idempotent append to the partitioned event log: the dedupe check and the XADD are one script."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import anyio
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from feeds.cluster import shard_of
from feeds.scripts import Command, Script, run_commands
from notifier.runtime import metrics, tracing
from notifier.runtime.eventlog import entry_fields, partition_of
from notifier.runtime.settings import IngestSettings
from schemas import keys, layouts
from schemas.errors import Reason, Rejected
from schemas.events import Event, encode_event

from .recent import RecentAppends

log = logging.getLogger(__name__)

# KEYS: event log, then per event its idempotency bucket (keys.idempotency) and its key of the
# former layout (keys.dedupe, read only). ARGV: per event its id, its fingerprint, the number
# of its entry's field/value pairs and the pairs (`_event_args`). Returns per event
# {1, new id, fingerprint} or {0, original id, original fingerprint} (raw; hex from a record of
# the former layout). A request's events of one partition are one call: the fan-out's blocked
# reader wakes once for them, with all of them.
_APPEND: Final = Script(f"""
local FP = {layouts.FINGERPRINT_BYTES}
local out, a = {{}}, 1
for i = 2, #KEYS, 2 do
  local id, fp = ARGV[a], ARGV[a + 1]
  local n = tonumber(ARGV[a + 2])  -- the entry's field/value pairs
  local seen = redis.call('HGET', KEYS[i], id)
  if seen then
    out[#out + 1] = {{0, string.sub(seen, 1, -FP - 1), string.sub(seen, -FP)}}
  else
    seen = redis.call('GET', KEYS[i + 1])
    if seen then
      local bar = string.find(seen, '|', 1, true)
      out[#out + 1] = {{0, string.sub(seen, 1, bar - 1), string.sub(seen, bar + 1)}}
    else
      local entry = redis.call('XADD', KEYS[1], '*', unpack(ARGV, a + 3, a + 2 + 2 * n))
      redis.call('HSET', KEYS[i], id, entry .. fp)
      out[#out + 1] = {{1, entry, fp}}
    end
  end
  a = a + 3 + 2 * n
end
return out
""")

_EventArgs = list[bytes | str | int]  # an event's part of an append call's ARGV


def _append_command(partition: int, events: Sequence[tuple[str, _EventArgs]]) -> Command:
    """The append call of `events` (each its id and `_event_args`) to one partition."""
    names, args = [keys.events(partition)], list[bytes | str | int]()
    for event_id, event_args in events:
        names += [keys.idempotency(partition, event_id), keys.dedupe(partition, event_id)]
        args += event_args
    return _APPEND.command(names, args)


def _event_args(event_id: str, fingerprint: bytes, fields: dict[str, bytes | str | int]) -> _EventArgs:
    args: _EventArgs = [event_id, fingerprint, len(fields)]
    for name, value in fields.items():
        args += [name, value]
    return args


@dataclass(frozen=True, slots=True)
class Appended:
    status: Literal["accepted", "duplicate", "conflict"]
    position: str  # the event-log entry id, "PARTITION/ID"


@dataclass(slots=True)
class _Request:
    """One caller's script calls, and what became of them."""

    commands: list[Command]
    replies: list[Any] | None = None
    replicas: int = 0  # how many replicas confirmed the round trip's writes (WAIT)
    error: BaseException | None = None


@dataclass(slots=True)
class _Lane:
    """The group commit of one master's appends (one Redis: one lane)."""

    queued: list[_Request] = field(default_factory=list)
    in_flight: anyio.Event | None = None  # set when the round trip in flight ends


class EventLog:
    """The only writer of `events:` keys and of the idempotency window's records (`idem:`).

    Concurrent appends share round trips (group commit): a call that finds a round trip in
    flight queues its script calls, and the next round trip carries everything queued by
    then. Alone, a call goes out at once; under load, a hundred single-event requests cost
    one pipeline instead of a hundred. Nothing is answered before its own replies are in.

    On a cluster each master has its own lane: a master that stalls (frozen, failing over)
    holds up only the appends to its partitions, never another master's."""

    def __init__(self, redis: Redis, settings: IngestSettings, recent: RecentAppends | None = None) -> None:
        self._redis = redis
        self._recent = recent  # what was accepted lately, to append again after a Redis crash
        self._partitions = settings.partitions
        self._wait_replicas = settings.wait_replicas
        self._wait_timeout_ms = settings.wait_timeout_ms
        self._lanes: dict[str, _Lane] = {}  # master (shard_of) -> its group commit
        self._metrics = metrics.current()
        self._redis_errors = self._metrics.redis_errors("ingest append")
        self._traced = tracing.current()

    async def append(self, events: Sequence[Event], service: str) -> list[Appended]:
        """Append `events`; an id seen within the TTL is not appended again."""
        if not events:
            return []
        now_ms = int(time.time() * 1000)
        span, trace = None, ""
        if self._traced is not None:  # a child of the POST's span; its context goes into the entries
            span = self._traced.span("event_log.append", attributes={"notifier.events": len(events)})
            trace = self._traced.traceparent(span)
        prints: list[bytes] = []
        # per partition, its events (index in `events`, id, ARGV part), in the request's order
        grouped: dict[int, list[tuple[int, str, _EventArgs]]] = {}
        for i, event in enumerate(events):
            # of the contract's JSON, as before the log stored another form: a retry across an
            # upgrade is still a duplicate, not a conflict
            fingerprint = hashlib.blake2b(encode_event(event), digest_size=layouts.FINGERPRINT_BYTES).digest()
            prints.append(fingerprint)
            fields = entry_fields(event, service, now_ms, trace)
            p = partition_of(event.actor, self._partitions)
            grouped.setdefault(p, []).append((i, event.id, _event_args(event.id, fingerprint, fields)))
        parts = list(grouped)
        commands = [_append_command(p, [(e, a) for _, e, a in grouped[p]]) for p in parts]
        started = time.perf_counter()
        try:
            replies, replicas = await self._send(commands, parts)
        finally:
            if span is not None:
                span.end()
        self._metrics.append_seconds.observe(time.perf_counter() - started)
        for reply in replies:
            if isinstance(reply, ResponseError):
                if str(reply).startswith("OOM"):
                    raise Rejected(Reason.BACKLOG, "Redis memory is full; retry later")
                # the append script fails only on what Redis itself refuses (a replica just
                # promoted without the script, READONLY, NOPERM after an ACL change): what it
                # appended before is deduplicated when the producer retries, and the operator
                # reads this line
                log.warning("append refused by redis: %s", reply)
                raise Rejected(Reason.UNAVAILABLE, "storage refused the append; retry") from reply
        if replicas < self._wait_replicas:
            raise Rejected(
                Reason.UNAVAILABLE,
                f"{replicas} of {self._wait_replicas} replicas confirmed in time; "
                "retry (the retry is deduplicated)",
            )
        out: dict[int, Appended] = {}  # by the event's index in the request
        for p, reply in zip(parts, replies, strict=True):
            for (i, event_id, args), (new, entry_id, theirs) in zip(grouped[p], reply, strict=True):
                position = f"{p}/{entry_id.decode()}"
                if new:
                    if self._recent is not None:  # one call per event, to append it again alone
                        self._recent.add(p, _append_command(p, [(event_id, args)]), now_ms)
                    out[i] = Appended("accepted", position)
                else:
                    # the former layout's records hold the fingerprint in hex
                    same = theirs in (prints[i], prints[i].hex().encode())
                    out[i] = Appended("duplicate" if same else "conflict", position)
        return [out[i] for i in range(len(events))]

    async def position_of(self, event_id: str) -> tuple[int, str] | None:
        """Where an accepted event is in the log (partition, entry id), from its record in the
        idempotency window (kept `dedupe_ttl_s`): every partition is asked, since the actor is
        not known."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for p in range(self._partitions):
                pipe.hget(keys.idempotency(p, event_id), event_id)
                pipe.get(keys.dedupe(p, event_id))
            found = await pipe.execute()
        for p in range(self._partitions):
            record, former = found[2 * p], found[2 * p + 1]
            if record is not None:
                return p, layouts.decode_accepted(record)[0]
            if former is not None:
                return p, former.decode().partition("|")[0]
        return None

    async def _send(self, commands: list[Command], parts: list[int]) -> tuple[list[Any], int]:
        """Every command's reply, in order, and the fewest replicas any lane's WAIT confirmed;
        each master's commands go through its own lane, the lanes at once."""
        lanes: dict[str, list[int]] = {}
        for i, p in enumerate(parts):
            lanes.setdefault(shard_of(self._redis, keys.events(p)), []).append(i)
        requests = {lane: _Request([commands[i] for i in indexes]) for lane, indexes in lanes.items()}
        if len(requests) == 1:
            [(lane, request)] = requests.items()
            await self._commit(lane, request)
        else:
            async with anyio.create_task_group() as tg:
                for lane, request in requests.items():
                    tg.start_soon(self._commit_noted, lane, request)
        replies: list[Any] = [None] * len(commands)
        for lane, indexes in lanes.items():
            request = requests[lane]
            if request.error is not None:
                raise request.error
            assert request.replies is not None
            for i, reply in zip(indexes, request.replies, strict=True):
                replies[i] = reply
        return replies, min(request.replicas for request in requests.values())

    async def _commit_noted(self, lane: str, request: _Request) -> None:
        """`_commit`, its failure left in `request.error` (raised by `_send`, not as a group)."""
        try:
            await self._commit(lane, request)
        except Exception:
            assert request.error is not None

    async def _commit(self, name: str, request: _Request) -> None:
        """Returns once a round trip of lane `name` carried `request` (or failed)."""
        lane = self._lanes.setdefault(name, _Lane())
        lane.queued.append(request)
        while request.replies is None and request.error is None:
            if lane.in_flight is not None:
                await lane.in_flight.wait()  # ours may be in it, else in the next one
                continue
            batch, lane.queued = lane.queued, []
            done = lane.in_flight = anyio.Event()
            try:
                await self._round_trip(batch)
            finally:
                lane.in_flight = None
                done.set()

    async def _round_trip(self, batch: list[_Request]) -> None:
        commands = [command for request in batch for command in request.commands]
        # WAIT covers the writes of its own connection only: same pipeline, same connection
        # (on a cluster, one WAIT per master, after that master's appends)
        wait = ("WAIT", self._wait_replicas, self._wait_timeout_ms) if self._wait_replicas else None
        try:
            replies = await run_commands(self._redis, [_APPEND], commands, wait=wait)
        except BaseException as exc:
            # failed, or cancelled by the request's timeout (a frozen Redis, the usual case): a
            # failed round trip either way (a shutdown's cancel, rare, is counted too)
            self._redis_errors.inc()
            # interrupted or failed: every caller in the batch learns it (the appends may or
            # may not have happened; a retry is deduplicated)
            for request in batch:
                request.error = (
                    exc if isinstance(exc, Exception) else RedisConnectionError("append interrupted; retry")
                )
            raise
        replicas = int(replies.pop()) if self._wait_replicas else 0
        start = 0
        for request in batch:
            request.replies = replies[start : start + len(request.commands)]
            request.replicas = replicas
            start += len(request.commands)


async def append_again(redis: Redis, commands: Sequence[Command]) -> list[bool | BaseException]:
    """Run appends again (RecentAppends' script calls): for each, True if the event was missing
    and is appended now, False if it is there (its idempotency record and entry are written
    together, so a kept record means a kept entry), or the error."""
    replies = await run_commands(redis, [_APPEND], commands)
    return [r if isinstance(r, BaseException) else bool(int(r[0][0])) for r in replies]
