"""The moderator API under /v1/moderation: moderator tokens only (401 without a valid token,
403 for any other role), on every route. The audit trail is read-only here: no route changes it
except as the record of a decision or ban. Users report under /v1/me/reports with their own
token."""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Final, Literal, TypeVar, cast

import msgspec
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from notifier.runtime import jobqueue, query, tokens
from notifier.runtime.routing import by_method
from notifier.runtime.settings import AuthSettings, Settings
from schemas import decoding
from schemas.errors import Reason, Rejected
from schemas.events import ID_PATTERN, Id, decode_event, is_id
from schemas.nesting import shallow

from . import console, effects
from .components import Components
from .live import changes
from .queue import STATES, Order
from .records import Moderator, Outcome, Stats, audience
from .reports import ReportReason, TargetKind

MODERATOR_ROLE: Final = "moderator"
MAX_BODY_BYTES: Final = 64 * 1024
MAX_PAGE: Final = 100
_RULE_NAME: Final = re.compile(r"[a-z0-9_-]{1,64}")
MAX_BULK: Final = 100
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # fullmatch
_AUDIT_ID: Final = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")  # a stream id below 2^64-1 (fullmatch)

T = TypeVar("T")
Note = Annotated[str, msgspec.Meta(max_length=2_000)]


class DecisionBody(msgspec.Struct, forbid_unknown_fields=True):
    note: Note = ""


# a review item: an event's id, or `actor~ID` for a reported actor (queue/store.actor_item)
ItemId = Annotated[
    str,
    msgspec.Meta(
        pattern=f"^(actor~)?{ID_PATTERN.removeprefix('^')}",
        description="a review item: an event id, or actor~ID for a reported actor",
    ),
]


class BulkBody(msgspec.Struct, forbid_unknown_fields=True):
    decision: Literal["approve", "reject"]
    ids: Annotated[list[ItemId], msgspec.Meta(min_length=1, max_length=MAX_BULK)]
    note: Note = ""


Reason_ = Annotated[str, msgspec.Meta(min_length=1, max_length=2_000)]
MAX_SUSPENSION_S: Final = 365 * 86_400


class BanBody(msgspec.Struct, forbid_unknown_fields=True):
    actor: Id
    reason: Reason_
    duration_s: Annotated[int, msgspec.Meta(ge=0, le=MAX_SUSPENSION_S)] = 0  # 0: until lifted
    remove_content: bool = False  # also recall what they delivered (within the log's retention)


class LiftBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason_


class Target(msgspec.Struct, forbid_unknown_fields=True):
    kind: TargetKind
    # an id, or a group id (which may hold layouts.MENTION_IN_POST)
    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:@~-]{1,300}$(?!\n)")]


class ReportBody(msgspec.Struct, forbid_unknown_fields=True):
    target: Target
    reason: ReportReason
    note: Annotated[str, msgspec.Meta(max_length=1_000)] = ""


def moderator(request: Request, auth: AuthSettings) -> Moderator:
    claims = tokens.claims_of(request, auth)
    if claims.role != MODERATOR_ROLE:
        raise Rejected(Reason.FORBIDDEN, "moderators only")
    given = request.headers.get("x-request-id", "")
    request_id = given if _REQUEST_ID.fullmatch(given) else secrets.token_hex(8)
    return Moderator(claims.user, claims.role, request_id)


class NoBody(msgspec.Struct, forbid_unknown_fields=True):
    """What claim and release take: nothing, or `{}`."""


async def _body(request: Request, kind: type[T]) -> T:
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Rejected(Reason.TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    # no body at all is `{}`, whatever the type says: a body whose fields are optional (a
    # decision's note) may be left out, and a required field missing is named
    json_type = request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"
    if raw and not json_type:
        raise Rejected(Reason.UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json")
    raw = raw or b"{}"
    try:
        return shallow(lambda b: msgspec.json.decode(b, type=kind), raw)
    except msgspec.DecodeError as exc:
        raise decoding.refusal(exc, body=raw) from None


def _stored_json(body: bytes) -> msgspec.Raw | str:
    """A record's stored JSON, spliced into the answer as it is; if someone edited it into
    something that is not JSON, the text as a string (verify reports the break), never invalid
    JSON in the answer."""
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body.decode(errors="replace")
    return msgspec.Raw(body)


def _json(body: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def _item_id(request: Request) -> str:
    item_id = str(request.path_params["item_id"])
    bare = item_id.removeprefix("actor~")  # the item of a reported actor
    if not is_id(bare):
        raise Rejected(Reason.NOT_FOUND, "no such review item")
    return item_id


def _actor(request: Request) -> str:
    actor = str(request.path_params["actor"])
    if not is_id(actor):
        raise Rejected(Reason.NOT_FOUND, "no such actor")
    return actor


def moderation_routes(settings: Settings, redis: Redis) -> list[BaseRoute]:
    parts = Components.build(redis, settings)
    queue, bans, reports = parts.queue, parts.bans, parts.reports
    pool = jobqueue.job_pool(redis)
    auth = settings.auth
    history_items = settings.moderation.history_items

    async def settle(outcome: Outcome) -> dict[str, object]:
        if outcome.effect:  # in the outbox already: if this enqueue fails, the sweep does it
            await effects.enqueue(pool, outcome.effect)
        return {"item": outcome.item, "changed": outcome.changed, "effect": outcome.effect}

    async def list_items(request: Request) -> Response:
        moderator(request, auth)
        state = query.param(request, "state")
        if state is not None and state not in STATES:
            raise Rejected(Reason.INVALID, f"state must be one of {sorted(STATES)}", "/state")
        actor = query.param(request, "actor")
        if actor is not None and not is_id(actor):
            raise Rejected(Reason.INVALID, "actor is not a valid id", "/actor")
        order = query.param(request, "order") or "arrival"
        if order not in {"arrival", "urgency"}:
            raise Rejected(Reason.INVALID, "order must be arrival or urgency", "/order")
        if order == "urgency" and state not in {None, "open", "pending", "claimed"}:
            raise Rejected(
                Reason.INVALID, "order=urgency ranks open items: state pending, claimed or open", "/order"
            )
        text = query.param(request, "q")
        if text is not None and len(text) > 200:
            raise Rejected(Reason.INVALID, "q is at most 200 characters", "/q")
        reason = query.param(request, "reason")
        if reason is not None and not _RULE_NAME.fullmatch(reason):
            raise Rejected(
                Reason.INVALID, "reason must be a rule's name (a-z, 0-9, _ and -, at most 64)", "/reason"
            )
        page = await queue.page(
            state=state,
            reason=reason,
            actor=actor,
            text=text,
            order=cast("Order", order),
            after=query.integer(request, "after", 0, 0, 2**62),
            limit=query.integer(request, "limit", 50, 1, MAX_PAGE),
        )
        return _json({"items": page.items, "next": page.next})

    async def get_item(request: Request) -> Response:
        moderator(request, auth)
        item = await queue.get(_item_id(request))
        if item is None:
            raise Rejected(Reason.NOT_FOUND, "no such review item")
        ban = (await bans.of([item.actor])).get(item.actor)
        recipients, post = audience(decode_event(bytes(item.event))) if item.type != "actor" else ([], "")
        filed = [
            {"reporter": who, "reason": r.reason, "note": r.note, "at_ms": r.at_ms}
            for who, r in await reports.of_item(item.id)
        ]
        return _json(
            {
                "item": item,
                "actor_banned": ban is not None and ban.covers(parts.ledger.clock()),
                "ban": ban,
                "recipients": recipients,
                "post": post,
                "reports": filed,
                "history": await queue.history(item.actor, history_items),
            }
        )

    async def claim(request: Request) -> Response:
        who = moderator(request, auth)
        await _body(request, NoBody)
        return _json({"item": await queue.claim(_item_id(request), who)})

    async def release(request: Request) -> Response:
        who = moderator(request, auth)
        await _body(request, NoBody)
        return _json({"item": await queue.release(_item_id(request), who)})

    async def approve(request: Request) -> Response:
        who = moderator(request, auth)
        body = await _body(request, DecisionBody)
        return _json(await settle(await queue.decide(_item_id(request), "approve", who, body.note)))

    async def reject(request: Request) -> Response:
        who = moderator(request, auth)
        body = await _body(request, DecisionBody)
        return _json(await settle(await queue.decide(_item_id(request), "reject", who, body.note)))

    async def bulk(request: Request) -> Response:
        who = moderator(request, auth)
        body = await _body(request, BulkBody)
        results: list[dict[str, object]] = []
        for item_id in dict.fromkeys(body.ids):
            try:
                outcome = await queue.decide(item_id, body.decision, who, body.note)
            except Rejected as exc:
                results.append(
                    {"id": item_id, "status": "refused", "error": exc.reason.value, "detail": exc.detail}
                )
                continue
            await settle(outcome)
            results.append({"id": item_id, "status": "changed" if outcome.changed else "unchanged"})
        return _json({"results": results})

    async def list_bans(request: Request) -> Response:
        moderator(request, auth)
        return _json({"bans": await bans.active()})

    async def ban(request: Request) -> Response:
        who = moderator(request, auth)
        body = await _body(request, BanBody)
        banned, outcomes = await bans.ban(
            body.actor, who, body.reason, duration_s=body.duration_s, remove_content=body.remove_content
        )
        for outcome in outcomes:
            await settle(outcome)
        return _json({"ban": banned, "rejected": [o.item.id for o in outcomes if o.changed]})

    async def lift(request: Request) -> Response:
        who = moderator(request, auth)
        body = await _body(request, LiftBody)
        return _json({"lifted": await bans.unban(_actor(request), who, body.reason)})

    async def actor(request: Request) -> Response:
        moderator(request, auth)
        name = _actor(request)
        dropped = await bans.dropped(name, query.integer(request, "limit", 50, 1, MAX_PAGE))
        return _json(
            {
                "actor": name,
                "ban": (await bans.of([name])).get(name),
                "enforcement": await bans.history(name),
                "dropped": {
                    "count": dropped.count,
                    "events": [{"id": i, "accepted_ms": t} for i, t in dropped.events],
                },
                "history": await queue.history(name, history_items),
            }
        )

    async def stats(request: Request) -> Response:
        moderator(request, auth)
        counts = await queue.counts()
        now = parts.ledger.clock()
        oldest = counts["oldest_open_ms"]
        return _json(
            Stats(
                pending=counts["pending"],
                claimed=counts["claimed"],
                held=counts["held"],
                approved=counts["approved"],
                rejected=counts["rejected"],
                oldest_open_ms=oldest,
                oldest_wait_s=round((now - oldest) / 1000, 3) if oldest else 0.0,
                dropped_for_bans=await bans.dropped_total(),
            )
        )

    async def audit_trail(request: Request) -> Response:
        moderator(request, auth)
        after = query.param(request, "after")
        if after is not None and not _AUDIT_ID.fullmatch(after):
            raise Rejected(Reason.INVALID, "after must be a previous page's next", "/after")
        order = query.param(request, "order") or "oldest"
        if order not in {"oldest", "newest"}:
            raise Rejected(Reason.INVALID, "order must be oldest or newest", "/order")
        limit = query.integer(request, "limit", 50, 1, MAX_PAGE)
        links, next_after = await parts.ledger.page(after, limit, newest_first=order == "newest")
        records = [
            {"id": link.entry, "record": _stored_json(link.body), "prev": link.prev, "hash": link.hash}
            for link in links
        ]
        return _json({"records": records, "next": next_after})

    async def audit_verify(request: Request) -> Response:
        moderator(request, auth)
        result = await parts.ledger.verify()
        return _json(
            {
                "ok": result.ok,
                "checked": result.checked,
                "broken_at": result.broken_at,
                "problem": result.problem,
            }
        )

    async def live(request: Request) -> Response:
        moderator(request, auth)
        until_s = tokens.claims_of(request, auth).expires_at  # no change reaches an expired token
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(changes(redis, until_s), media_type="text/event-stream", headers=headers)

    async def file_report(request: Request) -> Response:
        user = tokens.user_of(request, auth)
        body = await _body(request, ReportBody)
        filed = await reports.file(user, body.target.kind, body.target.id, body.reason, body.note)
        return _json({"items": filed.items, "new": filed.new}, 201 if filed.new else 200)

    async def my_reports(request: Request) -> Response:
        user = tokens.user_of(request, auth)
        return _json({"reports": await reports.mine(user, query.integer(request, "limit", 50, 1, MAX_PAGE))})

    return [
        Route("/v1/moderation/items", list_items, methods=["GET"]),
        Route("/v1/moderation/items/{item_id}", get_item, methods=["GET"]),
        Route("/v1/moderation/items/{item_id}/claim", claim, methods=["POST"]),
        Route("/v1/moderation/items/{item_id}/release", release, methods=["POST"]),
        Route("/v1/moderation/items/{item_id}/approve", approve, methods=["POST"]),
        Route("/v1/moderation/items/{item_id}/reject", reject, methods=["POST"]),
        Route("/v1/moderation/decisions", bulk, methods=["POST"]),
        by_method("/v1/moderation/bans", GET=list_bans, POST=ban),
        Route("/v1/moderation/bans/{actor}/lift", lift, methods=["POST"]),
        Route("/v1/moderation/actors/{actor}", actor, methods=["GET"]),
        Route("/v1/moderation/stats", stats, methods=["GET"]),
        Route("/v1/moderation/live", live, methods=["GET"]),
        Route("/v1/moderation/audit", audit_trail, methods=["GET"]),
        Route("/v1/moderation/audit/verify", audit_verify, methods=["GET"]),
        by_method("/v1/me/reports", GET=my_reports, POST=file_report),
        *console.console_routes(),
    ]
