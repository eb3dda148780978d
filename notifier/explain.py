""" "Why did I (not) get this?": one event followed from the log through fan-out and moderation
to each recipient's inbox, read from Redis as it is now (`notifier explain`, and the admin route
`GET /v1/admin/events/{id}/explain`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from feeds import registers
from feeds.changelog import entry_id
from feeds.inbox import Inbox
from feeds.items import ItemOp, plan
from feeds.limits import FeedLimits
from notifier.api.append import EventLog
from notifier.fanout.deadletter import DeadLetters
from notifier.moderation.components import Components
from notifier.moderation.routes import moderator
from notifier.runtime import query
from notifier.runtime.eventlog import LoggedEvent, decode_entry
from notifier.runtime.settings import Settings
from schemas import keys, layouts
from schemas.errors import Reason, Rejected

DEAD_LETTER_SCAN = 10_000  # dead letters of the event's partition looked through
PAGE = 200


@dataclass(slots=True)
class Recipient:
    user: str
    item: str
    group: str
    # applied | superseded | undone | retracted | capped_out | held | dropped | not_applied |
    # unreadable (the user's keys hold what the product did not write: `error` says what)
    state: str
    # the event that holds the item now, when not this one: its id, or for an id longer than 9
    # characters its register token (`{` and 8 characters: schemas/layouts.py register_token)
    by_event: str = ""
    pushed: bool | None = None  # a change was published for live push (None: cannot tell)
    error: str = ""


@dataclass(slots=True)
class Explanation:
    event_id: str
    log: dict[str, Any] = field(default_factory=dict)
    fanout: dict[str, Any] = field(default_factory=dict)
    moderation: dict[str, Any] | None = None
    recipients: list[Recipient] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> bytes:
        out = asdict(self)
        for recipient in out.get("recipients", []):
            if not recipient["error"]:  # only an unreadable recipient has one
                del recipient["error"]
        return orjson.dumps(out)


class Explainer:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._partitions = settings.ingest.partitions
        self._limits: FeedLimits = settings.feeds
        self._log = EventLog(redis, settings.ingest)
        self._queue = Components.build(redis, settings).queue
        self._inbox = Inbox(redis, settings.feeds)

    async def explain(self, event_id: str, user: str | None = None) -> Explanation | None:
        """None when the log knows nothing of `event_id` (never accepted, or longer ago than
        the dedupe window)."""
        found = await self._log.position_of(event_id)
        if found is None:
            return None
        partition, entry = found
        out = Explanation(
            event_id, log={"partition": partition, "entry": entry, "position": f"{partition}/{entry}"}
        )
        logged = await self._entry(partition, entry)
        out.fanout = await self._fanout(partition, entry)
        item = await self._queue.get(event_id)
        if item is not None:
            out.moderation = {
                "action": item.action,
                "state": item.state,
                "delivered": item.delivered,
                "verdicts": [{"rule": v.rule, "reason": v.reason, "score": v.score} for v in item.verdicts],
                "decided_by": item.decided_by,
                "note": item.note,
            }
        if logged is None:
            out.log["in_log"] = False
            out.note = "the entry was trimmed from the log: its recipients cannot be listed"
            return out
        out.log |= {"in_log": True, "service": logged.service, "accepted_at_ms": logged.accepted_ms}
        ops = plan(logged.event, self._limits)
        if user is not None:
            ops = [op for op in ops if op.user == user]
            if not ops:
                why = (
                    "it is their own action"
                    if logged.event.actor == user
                    else "the event does not concern them"
                )
                out.note = f"{user} is not a recipient: {why}"
        out.recipients = [await self._recipient(op, out) for op in ops]
        return out

    async def _entry(self, partition: int, entry: str) -> LoggedEvent | None:
        rows = await self._redis.xrange(keys.events(partition), min=entry, max=entry)
        if not rows:
            return None
        return decode_entry(rows[0][0], rows[0][1])

    async def _fanout(self, partition: int, entry: str) -> dict[str, Any]:
        stream = keys.events(partition)
        try:
            pending = await self._redis.xpending_range(
                stream, keys.FANOUT_GROUP, min=entry, max=entry, count=1
            )
        except ResponseError:  # no group yet: no worker ever read this partition
            return {"state": "waiting", "detail": "no fan-out worker has read this partition yet"}
        if pending:
            p = pending[0]
            errors = await self._redis.hget(keys.fanout_errors(partition), entry)
            return {
                "state": "pending",
                "consumer": p["consumer"].decode() if isinstance(p["consumer"], bytes) else p["consumer"],
                "deliveries": int(p["times_delivered"]),
                "idle_ms": int(p["time_since_delivered"]),
                "last_error": errors.decode() if errors else "",
            }
        letters = await DeadLetters(self._redis).entries_of(partition, entry, DEAD_LETTER_SCAN)
        if letters:
            letter = letters[-1]
            return {
                "state": "dead_lettered",
                "dead_letter": letter.ref,
                "deliveries": int(letter.fields.get("deliveries", "0")),
                "error": letter.fields.get("error", ""),
            }
        last = await self._last_delivered(stream)
        if last is not None and entry_id(entry) <= entry_id(last):
            return {"state": "applied"}
        return {"state": "waiting", "detail": "not read by fan-out yet (see notifier_fanout_lag_entries)"}

    async def _last_delivered(self, stream: str) -> str | None:
        for group in await self._redis.xinfo_groups(stream):
            if group["name"] in (keys.FANOUT_GROUP, keys.FANOUT_GROUP.encode()):
                last = group["last-delivered-id"]
                return last.decode() if isinstance(last, bytes) else str(last)
        return None

    async def _recipient(self, op: ItemOp, out: Explanation) -> Recipient:
        recipient = Recipient(op.user, op.item, op.group_id, "not_applied")
        try:
            return await self._recipient_state(op, out, recipient)
        except ResponseError as exc:  # a key of the wrong type, as what dead-lettered the event
            recipient.state, recipient.error = "unreadable", str(exc)
            return recipient

    async def _recipient_state(self, op: ItemOp, out: Explanation, recipient: Recipient) -> Recipient:
        [register] = await registers.read(self._redis, op.user, [op.item])
        moderation = out.moderation
        if register is None:
            if moderation is not None and not moderation["delivered"]:
                recipient.state = "dropped" if moderation["action"] == "drop" else "held"
            elif layouts.below_floor(await registers.floor(self._redis, op.user), op.at_ms, op.group_id):
                recipient.state = "capped_out"  # below what the cap dropped: its register went with it
            return recipient
        mine = register.set_by(out.event_id)
        if register.state == "x":
            recipient.state, recipient.by_event = "retracted", "" if mine else register.token
            return recipient
        if not mine:
            newer = (register.at_ms, register.token) > (op.at_ms, layouts.register_token(op.event_id))
            if not newer:
                return recipient  # an older event holds the item: this one is not applied yet
            recipient.state = "undone" if register.state == "i" and op.state == "a" else "superseded"
            recipient.by_event = register.token
            return recipient
        recipient.pushed = True  # the apply that wrote the register emitted (and published) a change
        if op.state == "a" and not await self._in_inbox(op.user, op.group_id):
            recipient.state = "capped_out"
        else:
            recipient.state = "applied"
        return recipient

    async def _in_inbox(self, user: str, group_id: str) -> bool:
        before: str | None = None
        while True:
            page = await self._inbox.page(user, before, PAGE)
            if any(orjson.loads(g)["id"] == group_id for g in page.groups):
                return True
            before = page.next_before
            if before is None:
                return False


def explain_routes(settings: Settings, redis: Redis) -> list[BaseRoute]:
    explainer = Explainer(redis, settings)

    async def explain(request: Request) -> Response:
        moderator(request, settings.auth)  # operators and moderators only
        event_id = request.path_params["event_id"]
        found = await explainer.explain(event_id, query.param(request, "user"))
        if found is None:
            raise Rejected(Reason.NOT_FOUND, f"no accepted event {event_id!r} in the log's dedupe window")
        return Response(found.to_json(), media_type="application/json")

    return [Route("/v1/admin/events/{event_id}/explain", explain, methods=["GET"])]
