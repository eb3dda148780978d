"""Client-facing inbox REST: a user reads and marks only their own notifications."""

from __future__ import annotations

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response

from feeds.inbox import Inbox
from notifier.runtime import tokens
from notifier.runtime.settings import AuthSettings
from schemas.errors import Reason, Rejected

from .ingest import read_body, require_json

MAX_PAGE = 100
MAX_READ_IDS = 500


class MarkRead(msgspec.Struct, forbid_unknown_fields=True):
    ids: list[str] | None = None
    all: bool = False


def user_of(request: Request, auth: AuthSettings) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Rejected(Reason.UNAUTHORIZED, "missing token (Authorization: Bearer JWT)")
    return tokens.verify(token.strip(), auth).user


def page_limit(request: Request) -> int:
    """The `limit` query parameter of a paged read: 1..MAX_PAGE, 20 when absent."""
    try:
        limit = int(request.query_params.get("limit", "20"))
    except ValueError:
        raise Rejected(Reason.INVALID, "limit must be an integer", "/limit") from None
    if not 1 <= limit <= MAX_PAGE:
        raise Rejected(Reason.INVALID, f"limit must be 1..{MAX_PAGE}", "/limit")
    return limit


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


async def list_notifications(request: Request, inbox: Inbox, auth: AuthSettings) -> Response:
    user = user_of(request, auth)
    limit = page_limit(request)
    before = request.query_params.get("before") or None
    if before is not None:
        score, _, gid = before.partition(":")
        if not score.isdigit() or not gid or len(before) > 300:
            raise Rejected(Reason.INVALID, "before must be a cursor from a previous page", "/before")
    page = await inbox.page(user, before, limit)
    groups = [msgspec.Raw(g) for g in page.groups]
    body = {"groups": groups, "unread": page.unread, "cursor": page.cursor, "next": page.next_before}
    return Response(msgspec.json.encode(body), media_type="application/json")


async def unread(request: Request, inbox: Inbox, auth: AuthSettings) -> Response:
    user = user_of(request, auth)
    return _json({"unread": await inbox.unread(user)})


async def mark_read(request: Request, inbox: Inbox, auth: AuthSettings) -> Response:
    user = user_of(request, auth)
    require_json(request)
    body = await read_body(request, 64 * 1024)
    try:
        command = msgspec.json.decode(body, type=MarkRead)
    except msgspec.ValidationError as exc:
        raise Rejected(Reason.INVALID, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Rejected(Reason.MALFORMED, f"body is not valid JSON: {exc}") from None
    if command.all == (command.ids is not None):
        raise Rejected(Reason.INVALID, 'send either {"ids": [...]} or {"all": true}')
    if command.ids is not None and not 1 <= len(command.ids) <= MAX_READ_IDS:
        raise Rejected(Reason.INVALID, f"ids must hold 1..{MAX_READ_IDS} group ids", "/ids")
    if command.ids is not None and any(len(i) > 300 for i in command.ids):
        raise Rejected(Reason.INVALID, "group id too long", "/ids")
    marked = await inbox.mark_read(user, None if command.all else command.ids)
    return _json({"marked": marked, "unread": await inbox.unread(user)})
