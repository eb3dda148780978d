"""The views' horizon: how long an item register (`keys.toggles`) must outlive its last event.

A register decides every later event of its item (last writer wins), so it may only go once no
event it outranks can still arrive: ingest refuses an `occurred_at` older than its lateness
bound, and the event log (which a replay or a reclaim re-applies) keeps `retain_ms`, so nothing
older than `retain + lateness + skew` is applied. Past that, lua/trim.lua drops the registers
behind nothing shown (undone likes and follows, groups the inbox cap dropped) and raises the
user's watermark; lua/apply.lua refuses an event at or below the watermark for an item without
a register (`BeyondHorizon`) instead of guessing what the trimmed register said.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from schemas import keys

from .limits import FeedLimits
from .scripts import head, scripts_for, user_keys

HSCAN_COUNT = 500  # registers looked at per trim call (a call holds Redis for ~this many)
REFUSED = -1  # lua/apply.lua's (and feeds/direct.py's) result for an item refused as BeyondHorizon


class BeyondHorizon(Exception):
    """An item refused: its event is older than the user's trimmed horizon and the item has no
    register, so the trimmed one might have outranked it."""


def horizon_ms(retain_ms: int, max_lateness_s: int, max_clock_skew_s: int) -> int | None:
    """How old a register's time must be before it may be trimmed; None: never (no lateness bound)."""
    if max_lateness_s <= 0:
        return None
    return retain_ms + (max_lateness_s + max_clock_skew_s) * 1000


@dataclass(slots=True)
class TrimStats:
    users: int = 0
    registers: int = 0  # deleted


class Registers:
    """Trims item registers; the only code that raises the watermark (field `<` of
    `keys.toggles`; lua/apply.lua writes a new user's, empty, next to their state)."""

    def __init__(self, redis: Redis, limits: FeedLimits) -> None:
        self._redis = redis
        self._limits = limits
        self._script = scripts_for(redis).trim

    async def trim(self, user: str, cutoff_ms: int) -> int:
        """Drop `user`'s registers older than `cutoff_ms` that nothing shown stands on; returns
        how many. Idempotent; safe beside applies (each call is one atomic script)."""
        deleted, cursor = 0, b"0"
        args = head(user, self._limits)
        while True:
            reply = await self._script(self._redis, user_keys(user), [*args, cutoff_ms, cursor, HSCAN_COUNT])
            cursor, n = reply[0], int(reply[1])
            deleted += n
            if cursor in (b"0", "0"):
                return deleted

    async def users(self) -> AsyncIterator[str]:
        """Every user with registers (on a cluster: of every master)."""
        async for key in self._redis.scan_iter(match=keys.TOGGLES_PATTERN, count=1000):
            yield keys.user_of_toggles(key)
