"""Client-facing inbox REST: a user reads and marks only their own notifications."""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response

from feeds.inbox import Inbox
from notifier.runtime import query
from notifier.runtime.settings import AuthSettings
from notifier.runtime.tokens import user_of
from schemas import decoding
from schemas.errors import Reason, Rejected
from schemas.http import MarkSeen

from .ingest import read_body, require_json

MAX_PAGE = 100
MAX_READ_IDS = 500
# a page's `next`: the last group's time (ms, negative before 1970) and id (feeds.inbox)
_PAGE_CURSOR: Final = re.compile(r"-?[0-9]{1,16}:[A-Za-z0-9_.:@~-]{1,290}")


# a group id (feeds/items.py): a kind, then ids of the event contract's alphabet, `:` and `~`
GroupId = Annotated[str, msgspec.Meta(max_length=300, pattern=r"^[A-Za-z0-9_.:@~-]+$")]


class MarkRead(msgspec.Struct, forbid_unknown_fields=True):
    """`{"ids": [...]}` or `{"all": true}`."""

    ids: Annotated[list[GroupId], msgspec.Meta(min_length=1, max_length=MAX_READ_IDS)] | None = None
    all: bool = False


def page_limit(request: Request) -> int:
    """The `limit` query parameter of a paged read: 1..MAX_PAGE, 20 when absent."""
    return query.integer(request, "limit", 20, 1, MAX_PAGE)


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


async def list_notifications(request: Request, inbox: Inbox, auth: AuthSettings) -> Response:
    user = user_of(request, auth)
    limit = page_limit(request)
    before = query.param(request, "before")
    if before is not None and not _PAGE_CURSOR.fullmatch(before):
        raise Rejected(Reason.INVALID, "before must be a cursor from a previous page", "/before")
    page = await inbox.page(user, before, limit)
    groups = [msgspec.Raw(g) for g in page.groups]
    body = {
        "groups": groups,
        "unread": page.unread,
        "unseen": page.unseen,
        "seen_at": page.seen_at,
        "cursor": page.cursor,
        "next": page.next_before,
    }
    return Response(msgspec.json.encode(body), media_type="application/json")


async def unread(request: Request, inbox: Inbox, auth: AuthSettings) -> Response:
    user = user_of(request, auth)
    unread, unseen = await inbox.badge(user)
    return _json({"unread": unread, "unseen": unseen})


async def mark_read(request: Request, inbox: Inbox, auth: AuthSettings) -> Response:
    user = user_of(request, auth)
    require_json(request)
    body = await read_body(request, 64 * 1024)
    try:
        command = msgspec.json.decode(body, type=MarkRead)
    except msgspec.DecodeError as exc:
        raise decoding.refusal(exc, body=body) from None
    if command.all == (command.ids is not None):
        raise Rejected(Reason.INVALID, 'send either {"ids": [...]} or {"all": true}')
    marked = await inbox.mark_read(user, None if command.all else command.ids)
    return _json({"marked": marked, "unread": await inbox.unread(user)})


async def mark_seen(request: Request, inbox: Inbox, auth: AuthSettings) -> Response:
    """`POST /v1/me/notifications/seen`: an empty body or `{}` marks up to the newest group."""
    user = user_of(request, auth)
    body = await read_body(request, 1024)
    command = MarkSeen()
    if body.strip():
        require_json(request)
        try:
            command = msgspec.json.decode(body, type=MarkSeen)
        except msgspec.DecodeError as exc:
            raise decoding.refusal(exc, body=body) from None
    unseen, mark = await inbox.mark_seen(user, command.at)
    return _json({"unseen": unseen, "seen_at": mark})
