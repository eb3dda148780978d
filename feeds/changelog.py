"""Reading a user's change log: resume after a cursor, or learn that the client must refetch.

A cursor (schemas/cursor.py) names one logged change by its number and check. The epoch is
created with the log; if Redis loses the log, a new epoch starts and every old cursor is
refused. A cursor that names no change the log still has (trimmed, past the end, or a number
reused after Redis lost the end of the log) is refused too.

The log keeps what changed (a group id, or the ids read) and the unread count after it; a replay
renders each change from the current views (lua/replay.lua). Live push carries the change as it
was rendered when it happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from schemas import layouts
from schemas.cursor import Cursor

from .scripts import SCRIPTS, head, user_keys


def entry_id(text: str | bytes) -> tuple[int, int]:
    """Parse a stream entry id `MS-SEQ` into a comparable tuple."""
    s = text.decode() if isinstance(text, bytes) else text
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class Change:
    cursor: Cursor
    payload: bytes  # JSON object: {"op": "upsert"|"remove"|"read", ..., "unread": n}


@dataclass(frozen=True, slots=True)
class Replay:
    changes: list[Change]  # in log order, at most the requested count


@dataclass(frozen=True, slots=True)
class Refetch:
    """The client's cursor names no change the log still has, or changes after it are gone."""

    tail: Cursor  # resume from here after refetching the inbox


push_tag = layouts.push_tag


@dataclass(frozen=True, slots=True)
class Live:
    """A change as lua/common.lua publishes it for live push."""

    cursor: Cursor
    payload: str
    accepted_ms: str  # the push tag's acceptance time ('' when untagged)
    traceparent: str  # '' when none


def published(message: str) -> Live:
    """`EPOCH N CHECK[@MS[@TRACEPARENT]] PAYLOAD`, as lua/common.lua publishes a change
    (schemas/layouts.py)."""
    p = layouts.parse_published(message)
    return Live(Cursor(p.epoch, p.number, p.check), p.payload, p.accepted_ms, p.traceparent)


async def tail(redis: Redis, user: str) -> Cursor:
    """The cursor of the log's last change (a count of 0 asks lua/replay.lua for only that)."""
    _, epoch, number, check = await SCRIPTS.replay(redis, user_keys(user), [*head(user, None), "", 0, 0, 0])
    return Cursor(epoch.decode(), int(number), int(check))


async def read_after(redis: Redis, user: str, cursor: Cursor, count: int) -> Replay | Refetch:
    """Up to `count` (> 0) changes after `cursor`, or Refetch if the cursor names no logged
    change or any change after it is gone."""
    args = [*head(user, None), cursor.epoch, cursor.number, cursor.check, count]
    kind, epoch_raw, number, *rest = await SCRIPTS.replay(redis, user_keys(user), args)
    epoch = epoch_raw.decode()
    if kind == b"refetch":
        return Refetch(Cursor(epoch, int(number), int(rest[0])))
    first = int(number)
    pairs = zip(rest[0::2], rest[1::2], strict=True)
    return Replay([Change(Cursor(epoch, first + i, int(c)), p) for i, (c, p) in enumerate(pairs)])
