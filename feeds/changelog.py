"""Reading a user's change log: resume after a cursor, or learn that the client must refetch.

A cursor is `EPOCH.ENTRY_ID`. The epoch is created with the log; if Redis loses the log, a new
epoch starts and every old cursor is refused. `-` as epoch means "before the log existed".
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from schemas import keys
from schemas.errors import Reason, Rejected

NO_EPOCH = "-"


def entry_id(text: str | bytes) -> tuple[int, int]:
    """Parse a stream entry id `MS-SEQ` into a comparable tuple."""
    s = text.decode() if isinstance(text, bytes) else text
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class Cursor:
    epoch: str
    entry: tuple[int, int]

    @classmethod
    def parse(cls, text: str) -> Cursor:
        epoch, dot, entry = text.partition(".")
        try:
            if not dot or not epoch or len(text) > 64:
                raise ValueError(text)
            return cls(epoch, entry_id(entry))
        except ValueError:
            raise Rejected(Reason.MALFORMED, "cursor must be EPOCH.ID", "/cursor") from None

    def __str__(self) -> str:
        return f"{self.epoch}.{self.entry[0]}-{self.entry[1]}"


@dataclass(frozen=True, slots=True)
class Change:
    cursor: Cursor
    payload: bytes  # JSON object: {"op": "upsert"|"remove"|"read", ..., "unread": n}


@dataclass(frozen=True, slots=True)
class Replay:
    changes: list[Change]  # in log order, at most the requested count


@dataclass(frozen=True, slots=True)
class Refetch:
    """The changes after the client's cursor are no longer all retained (or never were here)."""

    tail: Cursor  # resume from here after refetching the inbox


async def tail(redis: Redis, user: str) -> Cursor:
    epoch = await redis.hget(keys.feed_meta(user), "epoch")
    last = await redis.xrevrange(keys.changelog(user), count=1)
    entry = entry_id(last[0][0]) if last else (0, 0)
    return Cursor(epoch.decode() if epoch else NO_EPOCH, entry)


async def read_after(redis: Redis, user: str, cursor: Cursor, count: int) -> Replay | Refetch:
    """Up to `count` changes after `cursor`, or Refetch if any change after it is gone."""
    epoch_raw, trimmed_raw = await redis.hmget(keys.feed_meta(user), ["epoch", "trimmed"])
    epoch = epoch_raw.decode() if epoch_raw else None
    trimmed = entry_id(trimmed_raw) if trimmed_raw else None
    start = cursor.entry
    if epoch is None:
        if cursor.epoch == NO_EPOCH:
            return Replay([])
        return Refetch(await tail(redis, user))
    if cursor.epoch == NO_EPOCH:
        start = (0, 0)
    elif cursor.epoch != epoch:
        return Refetch(await tail(redis, user))
    if trimmed is not None and start < trimmed:
        return Refetch(await tail(redis, user))
    rows = await redis.xrange(keys.changelog(user), min=f"({start[0]}-{start[1]}", max="+", count=count)
    return Replay([Change(Cursor(epoch, entry_id(rid)), fields[b"d"]) for rid, fields in rows])
