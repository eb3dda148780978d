"""Moderators on the review queue: claims as expiring leases, and decisions committed with their
audit record and side effect (deliver or recall, into the outbox) in one MULTI."""

from __future__ import annotations

import msgspec
from redis.asyncio.client import Pipeline

from schemas import keys
from schemas.errors import Reason, Rejected

from .. import outbox
from ..records import Item, Moderator, Outcome, check_claim, decode_item
from .store import INDEX_OF_STORED, Decision, QueueStore


class QueueDecisions(QueueStore):
    async def claim(self, item_id: str, who: Moderator) -> Item:
        """Lease the item to `who` for `claim_ttl_s` (renewed if already theirs)."""
        key = keys.mod_item(item_id)

        async def body(pipe: Pipeline) -> Item:
            item = await self._load(pipe, item_id)
            if item.state in {"approved", "rejected"}:
                raise Rejected(Reason.DECIDED, f"already {item.state}")
            check_claim(item, who)
            until = self._ledger.clock() + int(self._settings.claim_ttl_s * 1000)
            pipe.multi()
            pipe.hset(key, mapping={"claimed_by": who.user, "claim_until_ms": until})
            pipe.hincrby(key, "version", 1)
            pipe.zadd(keys.mod_index("claimed"), {item_id: until})
            self._ledger.announce(pipe, "item", id=item_id, state="claimed", claimed_by=who.user)
            return msgspec.structs.replace(
                item, state="claimed", claimed_by=who.user, claim_until_ms=until, version=item.version + 1
            )

        return await self._ledger.transact([key], body)

    async def release(self, item_id: str, who: Moderator) -> Item:
        """Give the lease back; releasing an item nobody holds changes nothing."""
        key = keys.mod_item(item_id)

        async def body(pipe: Pipeline) -> Item:
            item = await self._load(pipe, item_id)
            check_claim(item, who)  # another's live claim is theirs to give back: 409
            if item.state != "claimed":
                return item
            pipe.multi()
            pipe.hset(key, mapping={"claimed_by": "", "claim_until_ms": 0})
            pipe.hincrby(key, "version", 1)
            pipe.zrem(keys.mod_index("claimed"), item_id)
            self._ledger.announce(pipe, "item", id=item_id, state="pending")
            return msgspec.structs.replace(item, state="pending", claimed_by="", claim_until_ms=0)

        return await self._ledger.transact([key], body)

    async def decide(
        self, item_id: str, decision: Decision, who: Moderator, note: str, *, force: bool = False
    ) -> Outcome:
        """Approve or reject; repeating a decision changes nothing, a rejection is final.
        Approving a held item puts `deliver` in the outbox; rejecting a delivered one `recall`.
        `force` (a ban) overrides another moderator's claim."""
        key = keys.mod_item(item_id)
        target = "approved" if decision == "approve" else "rejected"

        async def body(pipe: Pipeline) -> Outcome:
            item = await self._load(pipe, item_id)
            stored = "pending" if item.state == "claimed" else item.state
            if stored == target:
                return Outcome(item, changed=False)
            if stored == "rejected":
                raise Rejected(Reason.DECIDED, "the item was rejected; a rejection is final")
            if not force:
                check_claim(item, who)
            has_event = item.type != "actor"
            effect = None
            if has_event and target == "approved" and not item.delivered:
                effect = outbox.deliver(item_id)
            elif has_event and target == "rejected" and (item.delivered or stored == "approved"):
                effect = outbox.recall(item_id)
            delivered = item.delivered or (has_event and target == "approved")
            now = self._ledger.clock()
            head = await self._ledger.head(pipe)
            pipe.multi()
            pipe.hset(
                key,
                mapping={
                    "state": target,
                    "delivered": int(delivered),
                    "decided_by": who.user,
                    "decided_role": who.role,
                    "decided_at_ms": now,
                    "note": note,
                    "claimed_by": "",
                    "claim_until_ms": 0,
                },
            )
            pipe.hincrby(key, "version", 1)
            pipe.zrem(keys.mod_index(INDEX_OF_STORED[stored]), item_id)
            for leaving in ("urgent", "held", "claimed"):
                pipe.zrem(keys.mod_index(leaving), item_id)
            pipe.zadd(keys.mod_index(target), {item_id: item.seq})
            if target == "rejected":
                outbox.Outbox.cancel(pipe, outbox.deliver(item_id))
            if effect:
                outbox.Outbox.add(pipe, effect)
            self._ledger.announce(pipe, "item", id=item_id, state=target)
            before = {"state": item.state, "delivered": str(int(item.delivered))}
            after = {"state": target, "delivered": str(int(delivered))}
            self._ledger.append(
                pipe, head, who, decision, item=item_id, actor=item.actor, before=before, after=after,
                reason=note,
            )  # fmt: skip
            decided = msgspec.structs.replace(
                item,
                state=target,
                delivered=delivered,
                decided_by=who.user,
                decided_at_ms=now,
                note=note,
                claimed_by="",
                claim_until_ms=0,
                version=item.version + 1,
            )
            return Outcome(decided, changed=True, effect=effect)

        return await self._ledger.transact([key, keys.audit_head()], body)

    async def _load(self, pipe: Pipeline, item_id: str) -> Item:
        raw = await pipe.hgetall(keys.mod_item(item_id))
        if not raw:
            raise Rejected(Reason.NOT_FOUND, f"no review item {item_id!r}")
        return decode_item(raw, self._ledger.clock())
