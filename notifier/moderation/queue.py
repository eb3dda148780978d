"""The review queue: a hash per item (keyed by its event id), indexes by state and by actor,
claims as expiring leases, decisions committed together with their audit record in one MULTI,
bans, and the outbox of side effects (deliver, recall) that the jobs carry out.

The only code that touches `mod:`, `modq:`, `modseq:`, `modh:`, `modban:`, `modfx:` and
`audit:`/`audit-head:` keys. Every change is a WATCH/MULTI transaction on the item (and the
audit head), so two moderators never both win a claim or a decision."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Literal, TypeVar

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from feeds.cluster import client_for
from notifier.runtime.eventlog import LoggedEvent
from notifier.runtime.settings import ModerationSettings
from schemas import keys
from schemas.errors import Reason, Rejected
from schemas.events import encode_event, type_name

from . import audit
from .audit import AuditRecord, Link, Verification
from .policy import Action
from .records import (
    POLICY,
    Ban,
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
    wall_ms,
)
from .rules import Verdict

Decision = Literal["approve", "reject"]
Clock = Callable[[], int]
T = TypeVar("T")

_ATTEMPTS: Final = 16  # optimistic retries before answering "busy"
_SCAN_BUDGET: Final = 500  # items examined per page request (filters may skip many)
_BATCH: Final = 100
_ACTOR_INDEX_CAP: Final = 1_000
_INDEX_OF: Final = {"pending": "open", "claimed": "open", "open": "open", "approved": "approved"}
_INDEX_OF_STORED: Final = {"pending": "open", "approved": "approved", "rejected": "rejected"}
STATES: Final = frozenset({"pending", "claimed", "open", "approved", "rejected"})


class ReviewQueue:
    def __init__(self, redis: Redis, settings: ModerationSettings, *, clock: Clock = wall_ms) -> None:
        self._redis = redis
        self._settings = settings
        self._clock = clock

    # -- the fan-out's side ---------------------------------------------------------------

    async def bans_of(self, actors: Sequence[str]) -> dict[str, int]:
        """Banned actors among `actors` → when they were banned (ms)."""
        if not actors:
            return {}
        found = await self._redis.hmget(keys.mod_bans(), list(actors))
        return {
            a: msgspec.json.decode(raw, type=Ban).at_ms for a, raw in zip(actors, found, strict=True) if raw
        }

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

    async def record(self, logged: LoggedEvent, action: Action, verdicts: Sequence[Verdict]) -> bool:
        """Enter an event the policy flagged, held or dropped (a drop is recorded as rejected by
        the policy, with an audit record). Recording the same event again changes nothing."""
        event = logged.event
        item_key = keys.mod_item(event.id)
        if await self._redis.exists(item_key):
            return False
        context = await self._context(event.actor)
        seq = int(await self._redis.incr(keys.mod_sequence()))
        now = self._clock()
        dropped = action is Action.DROP
        state = "rejected" if dropped else "pending"
        fields: dict[str, str | int | bytes] = {
            "id": event.id,
            "seq": seq,
            "type": type_name(event),
            "actor": event.actor,
            "text": text_of(event),
            "action": action.value,
            "verdicts": msgspec.json.encode(list(verdicts)),
            "context": msgspec.json.encode(context),
            "state": state,
            "delivered": int(action is Action.FLAG),
            "created_ms": now,
            "position": logged.entry_id.decode(),
            "event": encode_event(event),
            "version": 1,
        }
        if dropped:
            fields |= {"decided_by": POLICY.user, "decided_role": POLICY.role, "decided_at_ms": now}

        async def body(pipe: Pipeline) -> bool:
            if await pipe.exists(item_key):
                return False
            head = await pipe.get(keys.audit_head()) if dropped else None
            pipe.multi()
            pipe.hset(item_key, mapping=fields)
            pipe.zadd(keys.mod_index("all"), {event.id: seq})
            pipe.zadd(keys.mod_index(_INDEX_OF_STORED[state]), {event.id: seq})
            pipe.zadd(keys.mod_actor(event.actor), {event.id: seq})
            pipe.zremrangebyrank(keys.mod_actor(event.actor), 0, -_ACTOR_INDEX_CAP - 1)
            if dropped:
                reasons = "; ".join(v.reason for v in verdicts)
                record = self._record(POLICY, "drop", event.id, event.actor, {}, {"state": state}, reasons)
                self._append_audit(pipe, head, record)
            return True

        watched = [item_key, keys.audit_head()] if dropped else [item_key]
        return await self._transact(watched, body)

    async def _context(self, actor: str) -> Context:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.mod_actor(actor))
            pipe.zrevrange(keys.mod_actor(actor), 0, self._settings.history_items - 1)
            pipe.hexists(keys.mod_bans(), actor)
            count, ids, banned = await pipe.execute()
        async with self._redis.pipeline(transaction=False) as pipe:
            for raw_id in ids:
                pipe.hmget(keys.mod_item(raw_id.decode()), ["action", "state", "verdicts", "created_ms"])
            rows = await pipe.execute()
        recent = [
            Recent(
                id=raw_id.decode(),
                action=action.decode(),
                state=state.decode(),
                rules=sorted({v.rule for v in msgspec.json.decode(verdicts, type=list[Verdict])}),
                created_ms=int(created),
            )
            for raw_id, (action, state, verdicts, created) in zip(ids, rows, strict=True)
            if action is not None
        ]
        return Context(earlier_items=int(count), recent=recent, banned=bool(banned))

    # -- reading ----------------------------------------------------------------------------

    async def get(self, item_id: str) -> Item | None:
        raw = await self._redis.hgetall(keys.mod_item(item_id))
        return decode_item(raw, self._clock()) if raw else None

    async def page(
        self,
        *,
        state: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
        after: int = 0,
        limit: int = 50,
    ) -> Page:
        """Items oldest first, filtered; `after` is a previous page's `next`."""
        if actor:
            index = keys.mod_actor(actor)
        else:
            index = keys.mod_index(_INDEX_OF.get(state or "", state or "all"))
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
            now = self._clock()
            for (_, score), raw in zip(rows, fetched, strict=True):
                scanned += 1
                cursor = int(score)
                if raw:
                    item = decode_item(raw, now)
                    if matches(item, state, reason):
                        found.append(item)
                        if len(found) == limit:
                            return Page(found, cursor)
            if len(rows) < _BATCH:
                return Page(found, None)
        return Page(found, cursor)

    async def bans(self) -> list[Ban]:
        raw = await self._redis.hgetall(keys.mod_bans())
        return sorted((msgspec.json.decode(v, type=Ban) for v in raw.values()), key=lambda b: b.at_ms)

    # -- moderators -------------------------------------------------------------------------

    async def claim(self, item_id: str, who: Moderator) -> Item:
        """Lease the item to `who` for `claim_ttl_s` (renewed if already theirs)."""
        key = keys.mod_item(item_id)

        async def body(pipe: Pipeline) -> Item:
            item = await self._load(pipe, item_id)
            if item.state in {"approved", "rejected"}:
                raise Rejected(Reason.DECIDED, f"already {item.state}")
            check_claim(item, who)
            until = self._clock() + int(self._settings.claim_ttl_s * 1000)
            pipe.multi()
            pipe.hset(key, mapping={"claimed_by": who.user, "claim_until_ms": until})
            pipe.hincrby(key, "version", 1)
            return msgspec.structs.replace(
                item, state="claimed", claimed_by=who.user, claim_until_ms=until, version=item.version + 1
            )

        return await self._transact([key], body)

    async def release(self, item_id: str, who: Moderator) -> Item:
        key = keys.mod_item(item_id)

        async def body(pipe: Pipeline) -> Item:
            item = await self._load(pipe, item_id)
            if item.state != "claimed" or item.claimed_by != who.user:
                return item
            pipe.multi()
            pipe.hset(key, mapping={"claimed_by": "", "claim_until_ms": 0})
            pipe.hincrby(key, "version", 1)
            return msgspec.structs.replace(item, state="pending", claimed_by="", claim_until_ms=0)

        return await self._transact([key], body)

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
            effect = None
            if target == "approved" and not item.delivered:
                effect = f"deliver|{item_id}"
            elif target == "rejected" and (item.delivered or stored == "approved"):
                effect = f"recall|{item_id}"
            delivered = item.delivered or target == "approved"
            now = self._clock()
            head = await pipe.get(keys.audit_head())
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
            pipe.zadd(keys.mod_index(target), {item_id: item.seq})
            if target == "rejected":
                pipe.srem(keys.mod_effects(), f"deliver|{item_id}")
            if effect:
                pipe.sadd(keys.mod_effects(), effect)
            before = {"state": item.state, "delivered": str(int(item.delivered))}
            after = {"state": target, "delivered": str(int(delivered))}
            record = self._record(who, decision, item_id, item.actor, before, after, note)
            self._append_audit(pipe, head, record)
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

        return await self._transact([key, keys.audit_head()], body)

    async def ban(self, actor: str, who: Moderator, reason: str) -> tuple[Ban, list[Outcome]]:
        """Ban `actor` (once: a repeated ban keeps the first) and reject their open items."""
        ban = Ban(actor, self._clock(), who.user, reason)

        async def body(pipe: Pipeline) -> Ban:
            existing = await pipe.hget(keys.mod_bans(), actor)
            if existing:
                return msgspec.json.decode(existing, type=Ban)
            head = await pipe.get(keys.audit_head())
            pipe.multi()
            pipe.hset(keys.mod_bans(), actor, msgspec.json.encode(ban))
            record = self._record(who, "ban", "", actor, {"banned": "no"}, {"banned": "yes"}, reason)
            self._append_audit(pipe, head, record)
            return ban

        banned = await self._transact([keys.mod_bans(), keys.audit_head()], body)
        ids = [i.decode() for i in await self._redis.zrange(keys.mod_actor(actor), 0, -1)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for item_id in ids:
                pipe.zscore(keys.mod_index("open"), item_id)
            open_scores = await pipe.execute()
        outcomes = []
        for item_id, score in zip(ids, open_scores, strict=True):
            if score is None:
                continue
            try:
                note = f"actor banned: {reason}"
                outcomes.append(await self.decide(item_id, "reject", who, note, force=True))
            except Rejected:  # decided meanwhile
                continue
        return banned, outcomes

    # -- the outbox of side effects ------------------------------------------------------------

    async def effects(self) -> list[str]:
        return sorted(m.decode() for m in await self._redis.smembers(keys.mod_effects()))

    async def effect_done(self, effect: str) -> None:
        await self._redis.srem(keys.mod_effects(), effect)

    # -- the audit trail (read-only from outside) ------------------------------------------------

    async def audit_page(self, after: str | None, limit: int) -> tuple[list[Link], str | None]:
        start = f"({after}" if after else "-"
        rows = await self._redis.xrange(keys.audit(), min=start, max="+", count=limit)
        links = [_link(entry_id, fields) for entry_id, fields in rows]
        return links, (links[-1].entry if len(links) == limit else None)

    async def verify_audit(self) -> Verification:
        links: list[Link] = []
        after: str | None = None
        while True:
            page, after = await self.audit_page(after, 1_000)
            links += page
            if after is None:
                break
        head = await self._redis.get(keys.audit_head())
        return audit.verify(links, head.decode() if head else None)

    # -- internals ---------------------------------------------------------------------------

    async def _load(self, pipe: Pipeline, item_id: str) -> Item:
        raw = await pipe.hgetall(keys.mod_item(item_id))
        if not raw:
            raise Rejected(Reason.NOT_FOUND, f"no review item {item_id!r}")
        return decode_item(raw, self._clock())

    def _record(
        self,
        who: Moderator,
        action: str,
        item_id: str,
        actor: str,
        before: dict[str, str],
        after: dict[str, str],
        reason: str,
    ) -> AuditRecord:
        return AuditRecord(
            at_ms=self._clock(),
            who=who.user,
            role=who.role,
            action=action,
            item=item_id,
            actor=actor,
            before=before,
            after=after,
            reason=reason,
            request=who.request,
        )

    @staticmethod
    def _append_audit(pipe: Pipeline, head: bytes | None, record: AuditRecord) -> None:
        """Queue the record's XADD and the new head; `head` was read under WATCH."""
        prev = head.decode() if head else audit.GENESIS
        body = audit.encode(record)
        digest = audit.chain_hash(prev, body)
        pipe.xadd(keys.audit(), {"d": body, "p": prev, "h": digest})
        pipe.set(keys.audit_head(), digest)

    async def _transact(self, watched: Sequence[str], body: Callable[[Pipeline], Awaitable[T]]) -> T:
        """Run `body` under WATCH; it reads, then `multi()`s and queues writes. Retried when a
        watched key changed before EXEC."""
        for _ in range(_ATTEMPTS):
            client = await client_for(self._redis, watched[0])
            async with client.pipeline(transaction=True) as pipe:
                await pipe.watch(*watched)
                try:
                    result = await body(pipe)
                    if pipe.explicit_transaction:
                        await pipe.execute()
                    return result
                except WatchError:
                    continue
        raise Rejected(Reason.UNAVAILABLE, "the item kept changing; retry")


def _link(entry_id: bytes, fields: dict[bytes, bytes]) -> Link:
    return Link(entry_id.decode(), fields[b"d"], fields[b"p"].decode(), fields[b"h"].decode())
