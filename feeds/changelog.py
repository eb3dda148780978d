"""Reading a user's change log: resume after a cursor, or learn that the client must refetch.

A cursor is `EPOCH.ENTRY_ID`; the entry id of a change is `N-0`, N counting the log's changes
from 1. The epoch is created with the log; if Redis loses the log, a new epoch starts and every
old cursor is refused. `-` as epoch means "before the log existed".

The log keeps what changed (a group id, or the ids read) and the unread count after it; a replay
renders each change from the current views (lua/replay.lua). Live push carries the change as it
was rendered when it happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from schemas import keys
from schemas.errors import Reason, Rejected

from .scripts import SCRIPTS, STATE, State, head, user_keys

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


def push_tag(accepted_ms: int, traceparent: str = "") -> str:
    """What the apply appends to a published change's cursor (lua/common.lua): `@MS`, the event's
    acceptance time, and `@TRACEPARENT` when tracing is on."""
    return f"@{accepted_ms}@{traceparent}" if traceparent else f"@{accepted_ms}"


def split_tag(tagged: str) -> tuple[str, str, str]:
    """A published cursor's parts: the cursor, the acceptance time (ms, text; '' when untagged)
    and the traceparent ('' when none)."""
    cursor, _, rest = tagged.partition("@")
    accepted_ms, _, traceparent = rest.partition("@")
    return cursor, accepted_ms, traceparent


async def tail(redis: Redis, user: str) -> Cursor:
    state = State.parse(await redis.hget(keys.toggles(user), STATE))
    return Cursor(state.epoch or NO_EPOCH, (state.last_change, 0))


async def read_after(redis: Redis, user: str, cursor: Cursor, count: int) -> Replay | Refetch:
    """Up to `count` changes after `cursor`, or Refetch if any change after it is gone."""
    args = [*head(user, None), cursor.epoch, cursor.entry[0], count]
    kind, epoch_raw, number, *payloads = await SCRIPTS.replay(redis, user_keys(user), args)
    epoch = epoch_raw.decode()
    if kind == b"refetch":
        return Refetch(Cursor(epoch, (int(number), 0)))
    first = int(number)
    return Replay([Change(Cursor(epoch, (first + i, 0)), p) for i, p in enumerate(payloads)])
