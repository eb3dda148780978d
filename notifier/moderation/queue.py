"""The review queue: a hash per item (keyed by its event id, or `actor~ID` for a reported actor),
indexes by state, by actor and by urgency, claims as expiring leases, and decisions committed
with their audit record and side effect in one MULTI. The only code that touches `mod:`,
`modq:`, `modseq:` and `modh:` keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

import msgspec
from redis.asyncio.client import Pipeline

from notifier.runtime.settings import ModerationSettings
from schemas import keys
from schemas.errors import Reason, Rejected
from schemas.events import Event, encode_event, type_name

from . import outbox
from .ledger import Ledger
from .policy import Action
from .records import (
    POLICY,
    Context,
    Item,
    Moderator,
    Outcome,
    Page,
    Recent,
    check_claim,
    decode_item,
    matches,
    text_of,
)
from .rules import Verdict
from .urgency import urgency

Decision = Literal["approve", "reject"]
Order = Literal["arrival", "urgency"]

_SCAN_BUDGET: Final = 500  # items examined per page request (filters may skip many)
_BATCH: Final = 100
_ACTOR_INDEX_CAP: Final = 1_000
_INDEX_OF: Final = {"pending": "open", "claimed": "open", "open": "open", "approved": "approved"}
_INDEX_OF_STORED: Final = {"pending": "open", "approved": "approved", "rejected": "rejected"}
STATES: Final = frozenset({"pending", "claimed", "open", "approved", "rejected"})
REPORT: Final = "report"  # the action of an item that only people's reports put in the queue


def actor_item(actor: str) -> str:
    """The id of the review item for reports on an actor (no event id contains `~`)."""
    return f"actor~{actor}"


def _urgency_of(item: Item) -> int:
    severity = max((v.score for v in item.verdicts), default=0.0)
    return urgency(held=item.action == Action.HOLD, severity=severity, reporters=item.reporters, seq=item.seq)


class ReviewQueue:
    def __init__(self, ledger: Ledger, settings: ModerationSettings) -> None:
        self._ledger = ledger
        self._redis = ledger.redis
        self._settings = settings

    # -- entering items ----------------------------------------------------------------------

    async def known(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Items already recorded among `ids` → (stored state, action)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for item_id in ids:
                pipe.hmget(keys.mod_item(item_id), ["state", "action"])
            replies = await pipe.execute()
        return {
            item_id: (state.decode(), action.decode())
            for item_id, (state, action) in zip(ids, replies, strict=True)
            if state is not None
        }

    async def record(self, event: Event, position: str, action: Action, verdicts: Sequence[Verdict]) -> bool:
        """Enter an event the policy flagged, held or dropped (a drop is recorded as rejected by
        the policy, with an audit record). Recording the same event again changes nothing."""
        dropped = action is Action.DROP
        fields = await self._fields(event, position, action.value, verdicts, delivered=action is Action.FLAG)
        if dropped:
            now = self._ledger.clock()
            fields |= {"state": "rejected", "decided_by": POLICY.user, "decided_role": POLICY.role}
            fields |= {"decided_at_ms": now}
        reasons = "; ".join(v.reason for v in verdicts)
        severity = max((v.score for v in verdicts), default=0.0)
        audit_reason = reasons if dropped else None
        return await self._enter(event.id, event.actor, fields, severity=severity, audit_reason=audit_reason)

    async def enter_reported(
        self, item_id: str, actor: str, event: Event | None, position: str, *, action: str = REPORT
    ) -> None:
        """Make sure a review item exists for something people report (`action` "report") or a
        ban removes ("ban"): the delivered event, or the actor. An item the policy recorded
        already is left as it is."""
        if await self._redis.exists(keys.mod_item(item_id)):
            return
        if event is None:
            fields = await self._bare_fields(item_id, actor)
        else:
            fields = await self._fields(event, position, action, [], delivered=True)
        await self._enter(item_id, actor, fields, audit_reason=None)

    async def _fields(
        self, event: Event, position: str, action: str, verdicts: Sequence[Verdict], *, delivered: bool
    ) -> dict[str, str | int | bytes]:
        base = await self._bare_fields(event.id, event.actor)
        return base | {
            "type": type_name(event),
            "text": text_of(event),
            "action": action,
            "verdicts": msgspec.json.encode(list(verdicts)),
            "delivered": int(delivered),
            "position": position,
            "event": encode_event(event),
        }

    async def _bare_fields(self, item_id: str, actor: str) -> dict[str, str | int | bytes]:
        return {
            "id": item_id,
            "seq": int(await self._redis.incr(keys.mod_sequence())),
            "type": "actor",
            "actor": actor,
            "text": "",
            "action": REPORT,
            "verdicts": b"[]",
            "context": msgspec.json.encode(await self._context(actor)),
            "state": "pending",
            "delivered": 0,
            "created_ms": self._ledger.clock(),
            "position": "",
            "event": b"null",
            "version": 1,
        }

    async def _enter(
        self,
        item_id: str,
        actor: str,
        fields: dict[str, str | int | bytes],
        *,
        severity: float = 0.0,
        audit_reason: str | None,
    ) -> bool:
        item_key = keys.mod_item(item_id)
        seq, state = int(fields["seq"]), str(fields["state"])
        score = urgency(held=fields["action"] == Action.HOLD.value, severity=severity, reporters=0, seq=seq)

        async def body(pipe: Pipeline) -> bool:
            if await pipe.exists(item_key):
                return False
            head = await self._ledger.head(pipe) if audit_reason is not None else None
            pipe.multi()
            pipe.hset(item_key, mapping=fields)
            pipe.zadd(keys.mod_index("all"), {item_id: seq})
            pipe.zadd(keys.mod_index(_INDEX_OF_STORED[state]), {item_id: seq})
            if state == "pending":
                pipe.zadd(keys.mod_index("urgent"), {item_id: score})
                if fields["action"] == Action.HOLD.value:
                    pipe.zadd(keys.mod_index("held"), {item_id: seq})
            pipe.zadd(keys.mod_actor(actor), {item_id: seq})
            pipe.zremrangebyrank(keys.mod_actor(actor), 0, -_ACTOR_INDEX_CAP - 1)
            self._ledger.announce(pipe, "item", id=item_id, state=state)
            if audit_reason is not None:
                self._ledger.append(
                    pipe, head, POLICY, "drop", item=item_id, actor=actor, after={"state": state},
                    reason=audit_reason,
                )  # fmt: skip
            return True

        watched = [item_key, keys.audit_head()] if audit_reason is not None else [item_key]
        return await self._ledger.transact(watched, body)

    async def _context(self, actor: str) -> Context:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.mod_actor(actor))
            pipe.zrevrange(keys.mod_actor(actor), 0, self._settings.history_items - 1)
            pipe.hexists(keys.mod_bans(), actor)
            count, ids, banned = await pipe.execute()
        recent = await self.recent([raw_id.decode() for raw_id in ids])
        return Context(earlier_items=int(count), recent=recent, banned=bool(banned))

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

    # -- reports raise an item ---------------------------------------------------------------

    async def raise_reported(self, item_id: str, reporters: int, reasons: dict[str, int]) -> None:
        """Set an item's report counts (read by the caller from the reports hash) and, while it is
        open, move it up the urgency order. Reports only accumulate, so a tally smaller than
        the stored one is a late writer that read fewer reports: it changes nothing."""
        key = keys.mod_item(item_id)

        async def body(pipe: Pipeline) -> None:
            raw = await pipe.hgetall(key)
            if not raw:
                return
            item = decode_item(raw, self._ledger.clock())
            if reporters <= item.reporters:
                return
            item = msgspec.structs.replace(item, reporters=reporters, reasons=reasons)
            pipe.multi()
            pipe.hset(key, mapping={"reporters": reporters, "reasons": msgspec.json.encode(reasons)})
            pipe.hincrby(key, "version", 1)
            if item.state in {"pending", "claimed"}:
                pipe.zadd(keys.mod_index("urgent"), {item_id: _urgency_of(item)})
            self._ledger.announce(pipe, "item", id=item_id, state=item.state)

        await self._ledger.transact([key], body)

    # -- reading ----------------------------------------------------------------------------

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
        elif order == "urgency" and _INDEX_OF.get(state or "") == "open":
            index = keys.mod_index("urgent")
        else:
            index = keys.mod_index(_INDEX_OF.get(state or "", state or "all"))
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

    # -- moderators -------------------------------------------------------------------------

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
        key = keys.mod_item(item_id)

        async def body(pipe: Pipeline) -> Item:
            item = await self._load(pipe, item_id)
            if item.state != "claimed" or item.claimed_by != who.user:
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
            pipe.zrem(keys.mod_index(_INDEX_OF_STORED[stored]), item_id)
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


def _contains(item: Item, needle: str | None) -> bool:
    return needle is None or needle in item.text.casefold() or needle in item.actor.casefold()
