"""Users' preferences, mutes and blocks (user state, kept by rebuilds), and what they hold back.

The fan-out asks `keep` before it writes an inbox item: an item that would newly show (state a)
is dropped when its type is off for the recipient, the recipient muted its actor, or either
blocked the other. Undo and retraction items always pass, so what did reach the inbox can still
be taken back. Home feeds ask `hidden_authors` at read: a muted author's posts, and those of a
user blocked either way, are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from redis.asyncio import Redis

from schemas import keys
from schemas import preferences as wire
from schemas.preferences import Preferences

from . import ranked
from .items import ItemOp

Relation = Literal["mutes", "blocks"]


def _key(relation: Relation, user: str) -> str:
    return keys.mutes(user) if relation == "mutes" else keys.blocks(user)


class PreferenceStore:
    """The only code that reads or writes `pref: mute: block:`."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def get(self, user: str) -> Preferences:
        raw = await self._redis.get(keys.preferences(user))
        return wire.DEFAULT if raw is None else wire.decode(raw)

    async def put(self, user: str, prefs: Preferences) -> None:
        await self._redis.set(keys.preferences(user), wire.encode(prefs))

    async def relate(self, user: str, relation: Relation, other: str, on: bool, at_ms: int) -> bool:
        """Mute or block `other` (on), or undo it; True if that changed anything."""
        if on:
            return bool(await self._redis.zadd(_key(relation, user), {other: at_ms}, nx=True))
        return bool(await self._redis.zrem(_key(relation, user), other))

    async def page(
        self, user: str, relation: Relation, before: tuple[int, str] | None, limit: int
    ) -> ranked.Ranked:
        return await ranked.page(self._redis, _key(relation, user), before, limit)

    async def keep(self, ops: Sequence[ItemOp]) -> list[bool]:
        """Per op, whether the recipient's preferences let it be written (one round trip)."""
        checked = [i for i, op in enumerate(ops) if op.state == "a" and op.user != op.actor]
        keep = [True] * len(ops)
        if not checked:
            return keep
        recipients = sorted({ops[i].user for i in checked})
        async with self._redis.pipeline(transaction=False) as pipe:
            for user in recipients:
                pipe.get(keys.preferences(user))
            for i in checked:
                op = ops[i]
                pipe.zscore(keys.mutes(op.user), op.actor)
                pipe.zscore(keys.blocks(op.user), op.actor)
                pipe.zscore(keys.blocks(op.actor), op.user)
            replies = await pipe.execute()
        off = {
            user: set(wire.decode(raw).off) if raw is not None else set()
            for user, raw in zip(recipients, replies[: len(recipients)], strict=True)
        }
        relations = replies[len(recipients) :]
        for n, i in enumerate(checked):
            muted, blocked, blocked_by = relations[3 * n : 3 * n + 3]
            op = ops[i]
            if op.verb in off[op.user] or muted is not None or blocked is not None or blocked_by is not None:
                keep[i] = False
        return keep

    async def hidden_authors(self, reader: str, authors: Iterable[str]) -> set[str]:
        """Of `authors`, those `reader` muted or blocked, or who blocked `reader`."""
        names = sorted(set(authors))
        if not names:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zmscore(keys.mutes(reader), names)
            pipe.zmscore(keys.blocks(reader), names)
            for author in names:
                pipe.zscore(keys.blocks(author), reader)
            muted, blocked, *blocked_by = await pipe.execute()
        return {
            a
            for a, m, b, by in zip(names, muted, blocked, blocked_by, strict=True)
            if m is not None or b is not None or by is not None
        }
