"""Reading the review queue: one item, filtered pages (by arrival or urgency), an actor's
items and history, and the counts an operator alerts on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from schemas import keys

from ..records import Item, Page, Recent, decode_item, matches
from ..rules import Verdict
from .store import INDEX_OF, Order, QueueStore

_SCAN_BUDGET: Final = 500  # items examined per page request (filters may skip many)
_BATCH: Final = 100


class QueueReads(QueueStore):
    async def history(self, actor: str, limit: int) -> list[Recent]:
        """The actor's latest review items as they are now (texts, states), newest first."""
        ids = await self._redis.zrevrange(keys.mod_actor(actor), 0, limit - 1)
        return await self.recent([raw_id.decode() for raw_id in ids])

    async def recent(self, ids: Sequence[str]) -> list[Recent]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for item_id in ids:
                pipe.hmget(keys.mod_item(item_id), ["action", "state", "verdicts", "created_ms", "text"])
            rows = await pipe.execute()
        return [
            Recent(
                id=item_id,
                action=action.decode(),
                state=state.decode(),
                rules=sorted({v.rule for v in msgspec.json.decode(verdicts, type=list[Verdict])}),
                created_ms=int(created),
                text=(text or b"").decode(),
            )
            for item_id, (action, state, verdicts, created, text) in zip(ids, rows, strict=True)
            if action is not None
        ]

    async def get(self, item_id: str) -> Item | None:
        raw = await self._redis.hgetall(keys.mod_item(item_id))
        return decode_item(raw, self._ledger.clock()) if raw else None

    async def page(
        self,
        *,
        state: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
        text: str | None = None,
        order: Order = "arrival",
        after: int = 0,
        limit: int = 50,
    ) -> Page:
        """Items filtered, oldest first (or, for open items, most urgent first); `after` is a
        previous page's `next`. `text` matches case-insensitively in the text or the actor."""
        if actor:
            index = keys.mod_actor(actor)
        elif order == "urgency" and INDEX_OF.get(state or "") == "open":
            index = keys.mod_index("urgent")
        else:
            index = keys.mod_index(INDEX_OF.get(state or "", state or "all"))
        needle = text.casefold() if text else None
        found: list[Item] = []
        cursor, scanned = after, 0
        while scanned < _SCAN_BUDGET:
            rows = await self._redis.zrangebyscore(
                index, f"({cursor}", "+inf", start=0, num=_BATCH, withscores=True
            )
            async with self._redis.pipeline(transaction=False) as pipe:
                for raw_id, _ in rows:
                    pipe.hgetall(keys.mod_item(raw_id.decode()))
                fetched = await pipe.execute()
            now = self._ledger.clock()
            for (_, score), raw in zip(rows, fetched, strict=True):
                scanned += 1
                cursor = int(score)
                if raw:
                    item = decode_item(raw, now)
                    if matches(item, state, reason) and _contains(item, needle):
                        found.append(item)
                        if len(found) == limit:
                            return Page(found, cursor)
            if len(rows) < _BATCH:
                return Page(found, None)
        return Page(found, cursor)

    async def open_ids(self, actor: str, *, approved_too: bool) -> list[str]:
        """The actor's items still open (and approved ones too): what a ban rejects."""
        ids = [i.decode() for i in await self._redis.zrange(keys.mod_actor(actor), 0, -1)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for item_id in ids:
                pipe.hget(keys.mod_item(item_id), "state")
            states = await pipe.execute()
        wanted = {b"pending", b"approved"} if approved_too else {b"pending"}
        return [i for i, s in zip(ids, states, strict=True) if s in wanted]

    async def counts(self) -> dict[str, int]:
        """Items per stored state, open ones split by live lease and by what the policy did; a
        few sorted-set counts whatever the queue's size."""
        now = self._ledger.clock()
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in ("open", "held", "approved", "rejected"):
                pipe.zcard(keys.mod_index(name))
            pipe.zcount(keys.mod_index("claimed"), f"({now}", "+inf")
            pipe.zrange(keys.mod_index("open"), 0, 0)
            opened, held, approved, rejected, claimed, oldest = await pipe.execute()
        oldest_ms = 0
        if oldest:
            created = await self._redis.hget(keys.mod_item(oldest[0].decode()), "created_ms")
            oldest_ms = int(created or 0)
        return {
            "pending": int(opened) - int(claimed),
            "claimed": int(claimed),
            "held": int(held),
            "approved": int(approved),
            "rejected": int(rejected),
            "oldest_open_ms": oldest_ms,
        }


def _contains(item: Item, needle: str | None) -> bool:
    return needle is None or needle in item.text.casefold() or needle in item.actor.casefold()
