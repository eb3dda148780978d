"""How long a decided review item is kept: `NOTIFIER_MODERATION_RETAIN_DECIDED_DAYS` after its
decision (0: for ever). The audit trail keeps every decision for good; what goes is the item
(its event, verdicts, context, decision) with its place in the queue's indexes, the actor's
history and its reports, so the queue's storage stops growing with the content ever flagged.

Only an item whose decision is done goes: approved or rejected, no effect of it still in the
outbox. The setting is refused below the event log's retention, so no replay or reclaim of the
log can screen an expired item's event again.
"""

from __future__ import annotations

import logging
from typing import Final

from redis.asyncio.client import Pipeline

from schemas import keys

from . import outbox
from .ledger import Ledger
from .queue.store import INDEXES

log = logging.getLogger(__name__)

DAY_MS: Final = 86_400_000
SCAN: Final = 500  # items of each decided index looked at per sweep, oldest first


class DecidedItems:
    def __init__(self, ledger: Ledger, retain_days: int) -> None:
        self._ledger = ledger
        self._redis = ledger.redis
        self._retain_ms = retain_days * DAY_MS

    async def expire(self, now_ms: int | None = None) -> int:
        """Delete the items decided more than the retention ago; returns how many. The oldest
        arrivals of each decided index are looked at (an item is decided after it arrives, so
        past the first that arrived within the retention none can be due)."""
        if not self._retain_ms:
            return 0
        cutoff = (self._ledger.clock() if now_ms is None else now_ms) - self._retain_ms
        gone = 0
        for index in ("approved", "rejected"):
            ids = [m.decode() for m in await self._redis.zrange(keys.mod_index(index), 0, SCAN - 1)]
            if not ids:
                continue
            async with self._redis.pipeline(transaction=False) as pipe:
                for item_id in ids:
                    pipe.hmget(keys.mod_item(item_id), ["created_ms", "decided_at_ms"])
                times = await pipe.execute()
            for item_id, (created, decided) in zip(ids, times, strict=True):
                if created is not None and int(created) >= cutoff:
                    break
                if decided is not None and int(decided) < cutoff and await self._delete(item_id, cutoff):
                    gone += 1
        if gone:
            log.info("moderation expired decided items=%d", gone)
        return gone

    async def _delete(self, item_id: str, cutoff: int) -> bool:
        """Delete one item if it is still decided before `cutoff` with nothing left to do (a
        transaction: a decision or an effect landing meanwhile keeps it)."""
        key = keys.mod_item(item_id)

        async def body(pipe: Pipeline) -> bool:
            state, decided, actor = await pipe.hmget(key, ["state", "decided_at_ms", "actor"])
            if state not in (b"approved", b"rejected") or decided is None or int(decided) >= cutoff:
                return False
            effects = (outbox.deliver(item_id), outbox.recall(item_id))
            if any(await pipe.smismember(keys.mod_effects(), effects)):
                return False
            reporters = await pipe.hkeys(keys.mod_reports(item_id))
            pipe.multi()
            pipe.delete(key, keys.mod_reports(item_id))
            for index in INDEXES:
                pipe.zrem(keys.mod_index(index), item_id)
            if actor is not None:
                pipe.zrem(keys.mod_actor(actor.decode()), item_id)
            for reporter in reporters:
                pipe.zrem(keys.mod_reported_by(reporter.decode()), item_id)
            return True

        return await self._ledger.transact([key, keys.mod_effects(), keys.mod_reports(item_id)], body)
