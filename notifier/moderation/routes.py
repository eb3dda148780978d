"""The moderator API under /v1/moderation: moderator tokens only (401 without a valid token,
403 for any other role), on every route. The audit trail is read-only here: no route changes it
except as the record of a decision or ban."""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Final, Literal, TypeVar

import msgspec
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from notifier.runtime import jobqueue, tokens
from notifier.runtime.settings import AuthSettings, Settings
from schemas import decoding
from schemas.errors import Reason, Rejected
from schemas.events import ID_PATTERN, Id

from . import console, effects
from .queue import STATES, ReviewQueue
from .records import Moderator, Outcome

MODERATOR_ROLE: Final = "moderator"
MAX_BODY_BYTES: Final = 64 * 1024
MAX_PAGE: Final = 100
MAX_BULK: Final = 100
_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ID: Final = re.compile(ID_PATTERN)

T = TypeVar("T")
Note = Annotated[str, msgspec.Meta(max_length=2_000)]


class DecisionBody(msgspec.Struct, forbid_unknown_fields=True):
    note: Note = ""


class BulkBody(msgspec.Struct, forbid_unknown_fields=True):
    decision: Literal["approve", "reject"]
    ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=MAX_BULK)]
    note: Note = ""


class BanBody(msgspec.Struct, forbid_unknown_fields=True):
    actor: Id
    reason: Note = ""


def moderator(request: Request, auth: AuthSettings) -> Moderator:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Rejected(Reason.UNAUTHORIZED, "missing token (Authorization: Bearer JWT)")
    claims = tokens.verify(token.strip(), auth)
    if claims.role != MODERATOR_ROLE:
        raise Rejected(Reason.FORBIDDEN, "moderators only")
    given = request.headers.get("x-request-id", "")
    request_id = given if _REQUEST_ID.fullmatch(given) else secrets.token_hex(8)
    return Moderator(claims.user, claims.role, request_id)


async def _body(request: Request, kind: type[T]) -> T:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise Rejected(Reason.UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json")
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Rejected(Reason.TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    try:
        return msgspec.json.decode(b"".join(chunks) or b"{}", type=kind)
    except msgspec.DecodeError as exc:
        raise decoding.refusal(exc) from None


def _json(body: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise Rejected(Reason.INVALID, f"{name} must be an integer {low}..{high}", f"/{name}")
    return int(text)


def _item_id(request: Request) -> str:
    item_id = str(request.path_params["item_id"])
    if not _ID.fullmatch(item_id):
        raise Rejected(Reason.NOT_FOUND, "no such review item")
    return item_id


def moderation_routes(settings: Settings, redis: Redis) -> list[BaseRoute]:
    queue = ReviewQueue(redis, settings.moderation)
    pool = jobqueue.job_pool(redis)
    auth = settings.auth

    async def settle(outcome: Outcome) -> dict[str, object]:
        if outcome.effect:  # in the outbox already: if this enqueue fails, the sweep does it
            await effects.enqueue(pool, outcome.effect)
        return {"item": outcome.item, "changed": outcome.changed, "effect": outcome.effect}

    async def list_items(request: Request) -> Response:
        moderator(request, auth)
        state = request.query_params.get("state") or None
        if state is not None and state not in STATES:
            raise Rejected(Reason.INVALID, f"state must be one of {sorted(STATES)}", "/state")
        actor = request.query_params.get("actor") or None
        if actor is not None and not _ID.fullmatch(actor):
            raise Rejected(Reason.INVALID, "actor is not a valid id", "/actor")
        page = await queue.page(
            state=state,
            reason=request.query_params.get("reason") or None,
            actor=actor,
            after=_int(request, "after", 0, 0, 2**62),
            limit=_int(request, "limit", 50, 1, MAX_PAGE),
        )
        return _json({"items": page.items, "next": page.next})

    async def get_item(request: Request) -> Response:
        moderator(request, auth)
        item = await queue.get(_item_id(request))
        if item is None:
            raise Rejected(Reason.NOT_FOUND, "no such review item")
        banned = bool(await queue.bans_of([item.actor]))
        return _json({"item": item, "actor_banned": banned})

    async def claim(request: Request) -> Response:
        who = moderator(request, auth)
        return _json({"item": await queue.claim(_item_id(request), who)})

    async def release(request: Request) -> Response:
        who = moderator(request, auth)
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
        return _json({"bans": await queue.bans()})

    async def ban(request: Request) -> Response:
        who = moderator(request, auth)
        body = await _body(request, BanBody)
        banned, outcomes = await queue.ban(body.actor, who, body.reason)
        for outcome in outcomes:
            await settle(outcome)
        return _json({"ban": banned, "rejected": [o.item.id for o in outcomes if o.changed]})

    async def audit_trail(request: Request) -> Response:
        moderator(request, auth)
        after = request.query_params.get("after") or None
        if after is not None and not re.fullmatch(r"\d{1,20}-\d{1,20}", after):
            raise Rejected(Reason.INVALID, "after must be a previous page's next", "/after")
        links, next_after = await queue.audit_page(after, _int(request, "limit", 50, 1, MAX_PAGE))
        records = [
            {"id": link.entry, "record": msgspec.Raw(link.body), "prev": link.prev, "hash": link.hash}
            for link in links
        ]
        return _json({"records": records, "next": next_after})

    async def audit_verify(request: Request) -> Response:
        moderator(request, auth)
        result = await queue.verify_audit()
        return _json(
            {
                "ok": result.ok,
                "checked": result.checked,
                "broken_at": result.broken_at,
                "problem": result.problem,
            }
        )

    return [
        Route("/v1/moderation/items", list_items, methods=["GET"]),
        Route("/v1/moderation/items/{item_id}", get_item, methods=["GET"]),
        Route("/v1/moderation/items/{item_id}/claim", claim, methods=["POST"]),
        Route("/v1/moderation/items/{item_id}/release", release, methods=["POST"]),
        Route("/v1/moderation/items/{item_id}/approve", approve, methods=["POST"]),
        Route("/v1/moderation/items/{item_id}/reject", reject, methods=["POST"]),
        Route("/v1/moderation/decisions", bulk, methods=["POST"]),
        Route("/v1/moderation/bans", list_bans, methods=["GET"]),
        Route("/v1/moderation/bans", ban, methods=["POST"]),
        Route("/v1/moderation/audit", audit_trail, methods=["GET"]),
        Route("/v1/moderation/audit/verify", audit_verify, methods=["GET"]),
        *console.console_routes(),
    ]
