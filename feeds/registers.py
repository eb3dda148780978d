"""Reading a user's item registers (`keys.toggles`): what the apply script (lua/apply.lua) keeps
per item, the last writer: state, the event's time and id, and for a like or follow its group's
window (layout: schemas/layouts.py). Read-only; only the scripts write them."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from schemas import keys
from schemas.layouts import HORIZON_FIELD, Register, decode_floor, decode_register

__all__ = ["Register", "decode", "floor", "read"]

decode = decode_register


async def read(redis: Redis, user: str, items: Sequence[str]) -> list[Register | None]:
    if not items:
        return []
    raw = await redis.hmget(keys.toggles(user), list(items))
    return [None if r is None else decode(r) for r in raw]


async def floor(redis: Redis, user: str) -> tuple[int, str] | None:
    """The user's cap floor (schemas/layouts.py decode_floor): nothing at or below it enters
    their inbox; the registers of what the cap dropped went with it."""
    return decode_floor(await redis.hget(keys.toggles(user), HORIZON_FIELD))
