"""Follow graph REST: any signed-in user reads whom a user follows and who follows them."""

from __future__ import annotations

import re

import orjson
from starlette.requests import Request
from starlette.responses import Response

from feeds.graph import FollowGraph, Side
from feeds.ranked import parse_cursor
from notifier.runtime.settings import AuthSettings
from schemas.errors import Reason, Rejected
from schemas.events import ID_PATTERN

from .me import page_limit, user_of

_ID = re.compile(ID_PATTERN)


def _subject(request: Request) -> str:
    user = str(request.path_params["user"])
    if not _ID.fullmatch(user):
        raise Rejected(Reason.INVALID, "user must be 1-128 chars of A-Z a-z 0-9 _ . : @ -", "/user")
    return user


async def list_side(request: Request, graph: FollowGraph, auth: AuthSettings, side: Side) -> Response:
    """`GET /v1/users/{user}/followers` or `/following`: newest follow first, `next` for the next page."""
    user_of(request, auth)
    user = _subject(request)
    limit = page_limit(request)
    before = None
    if raw := request.query_params.get("before"):
        before = parse_cursor(raw)
        if before is None:
            raise Rejected(Reason.INVALID, "before must be a cursor from a previous page", "/before")
    page = await graph.page(user, side, before, limit)
    body = {
        "users": [{"id": m.user, "since": m.since_ms} for m in page.members],
        "count": page.count,
        "next": page.next_before,
    }
    return Response(orjson.dumps(body), media_type="application/json")


async def counts(request: Request, graph: FollowGraph, auth: AuthSettings) -> Response:
    """`GET /v1/users/{user}/follows`: how many follow the user and how many they follow."""
    user_of(request, auth)
    followers, following = await graph.counts(_subject(request))
    return Response(
        orjson.dumps({"followers": followers, "following": following}), media_type="application/json"
    )
