"""Entering the review queue: an event the policy flagged, held or dropped, or something people
report; each item once, with its context, indexed by state, actor and urgency; reports raise it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec
from redis.asyncio.client import Pipeline

from feeds.scripts import Query, run_checked
from schemas import keys
from schemas.events import Event, encode_event, type_name

from ..policy import Action
from ..records import POLICY, Context, decode_item, text_of
from ..rules import Verdict
from ..urgency import urgency
from .reads import QueueReads
from .store import INDEX_OF_STORED, REPORT, urgency_of

_ACTOR_INDEX_CAP: Final = 1_000


class QueueIntake(QueueReads):
    def known(self, ids: Sequence[str]) -> Query[dict[str, tuple[str, str, str]]]:
        """Items already recorded among `ids` → (stored state, action, actor), to `ask`."""

        def parse(replies: Sequence[Any]) -> dict[str, tuple[str, str, str]]:
            return {
                item_id: (state.decode(), action.decode(), (actor or b"").decode())
                for item_id, (state, action, actor) in zip(ids, replies, strict=True)
                if state is not None
            }

        return Query([("HMGET", keys.mod_item(i), "state", "action", "actor") for i in ids], parse)

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
            pipe.zadd(keys.mod_index(INDEX_OF_STORED[state]), {item_id: seq})
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
        # run_checked, not redis-py's cluster pipeline: that one gave up ("TTL exhausted") on the
        # ASK redirections of a {mod} slot being migrated, stalling every screened batch
        count, ids, banned = await run_checked(
            self._redis,
            [
                ("ZCARD", keys.mod_actor(actor)),
                ("ZREVRANGE", keys.mod_actor(actor), 0, self._settings.history_items - 1),
                ("HEXISTS", keys.mod_bans(), actor),
            ],
        )
        recent = await self.recent([raw_id.decode() for raw_id in ids])
        return Context(earlier_items=int(count), recent=recent, banned=bool(banned))

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
                pipe.zadd(keys.mod_index("urgent"), {item_id: urgency_of(item)})
            self._ledger.announce(pipe, "item", id=item_id, state=item.state)

        await self._ledger.transact([key], body)
