"""Reading a user's item registers (`keys.toggles`): what the apply script (lua/apply.lua) keeps
per item, the last writer: state, the event's time and id, and for a like or follow its group's
window. Read-only; only the scripts write them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from redis.asyncio import Redis

from schemas import keys

MS_OFFSET: Final = 2**48  # times are 7 big-endian bytes of t + 2^48 (lua/common.lua pack_ms)
RegisterState = Literal["a", "i", "x"]  # active, inactive (undone), retracted for good


@dataclass(frozen=True, slots=True)
class Register:
    state: RegisterState
    at_ms: int
    event_id: str
    window: str  # the group's window for a like or follow ('' otherwise)


def decode(raw: bytes) -> Register:
    """`STATE` (1 byte) `TIME` (7 bytes) `EVENT_ID` [`|WINDOW`], as lua/apply.lua's register()."""
    state = raw[:1].decode()
    if state not in ("a", "i", "x") or len(raw) < 8:
        raise ValueError(f"not an item register: {raw!r}")
    event_id, _, window = raw[8:].decode().partition("|")
    at_ms = int.from_bytes(raw[1:8], "big") - MS_OFFSET
    return Register(state, at_ms, event_id, window)  # type: ignore[arg-type]  # checked above


async def read(redis: Redis, user: str, items: Sequence[str]) -> list[Register | None]:
    if not items:
        return []
    raw = await redis.hmget(keys.toggles(user), list(items))
    return [None if r is None else decode(r) for r in raw]
