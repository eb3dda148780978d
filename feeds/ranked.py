"""Paging a sorted set newest first by (score, member), with an opaque `SCORE:MEMBER` cursor
that stays exact through ties and through members added or removed between pages."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

MAX_CURSOR_CHARS = 200


@dataclass(frozen=True, slots=True)
class Ranked:
    members: list[tuple[str, int]]  # (member, score), highest score first
    count: int  # the whole set's size
    more: bool

    @property
    def next_before(self) -> str | None:
        """The cursor of the next page, or None on the last page."""
        if not self.more or not self.members:
            return None
        member, score = self.members[-1]
        return f"{score}:{member}"


def parse_cursor(before: str) -> tuple[int, str] | None:
    """A `next_before` cursor's parts, or None when `before` is not one."""
    at, _, member = before.partition(":")
    if not (at.isascii() and at.isdigit()) or not member or len(before) > MAX_CURSOR_CHARS:
        return None
    return int(at), member


async def page(redis: Redis, key: str, before: tuple[int, str] | None, limit: int) -> Ranked:
    """Up to `limit` members of `key` after the `before` position, highest score first (ties in
    reverse member order, as ZREVRANGEBYSCORE gives them), in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        if before is None:
            pipe.zrevrangebyscore(key, "+inf", "-inf", start=0, num=limit + 1, withscores=True)
        else:
            # the ties at the cursor's score, of which those below its member come next; then
            # the lower scores
            at = before[0]
            pipe.zrevrangebyscore(key, at, at, withscores=True)
            pipe.zrevrangebyscore(key, f"({at}", "-inf", start=0, num=limit + 1, withscores=True)
        pipe.zcard(key)
        *ranges, count = await pipe.execute()
    rows: list[tuple[bytes, float]] = ranges[0]
    if before is not None:
        after = before[1].encode()
        rows = [r for r in rows if r[0] < after] + ranges[1]
    members = [(m.decode(), int(score)) for m, score in rows[: limit + 1]]
    return Ranked(members[:limit], int(count), len(members) > limit)
