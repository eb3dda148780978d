"""Follow graph and timeline REST: any signed-in user reads whom a user follows, who follows
them, and their posts."""

from __future__ import annotations

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response

from feeds.graph import FollowGraph, Side
from feeds.ranked import parse_cursor
from feeds.timeline import Timelines, followers_only
from notifier.runtime import query
from notifier.runtime.settings import AuthSettings
from notifier.runtime.tokens import user_of
from schemas.errors import Reason, Rejected
from schemas.events import is_id

from .me import page_limit


def subject(request: Request) -> str:
    user = str(request.path_params["user"])
    if not is_id(user):
        raise Rejected(Reason.INVALID, "user must be 1-128 chars of A-Z a-z 0-9 _ . : @ -", "/user")
    return user


def before_cursor(request: Request) -> tuple[int, str] | None:
    raw = query.param(request, "before")
    if not raw:
        return None
    before = parse_cursor(raw)
    if before is None:
        raise Rejected(Reason.INVALID, "before must be a cursor from a previous page", "/before")
    return before


async def list_side(request: Request, graph: FollowGraph, auth: AuthSettings, side: Side) -> Response:
    """`GET /v1/users/{user}/followers` or `/following`: newest follow first, `next` for the next page."""
    user_of(request, auth)
    user = subject(request)
    page = await graph.page(user, side, before_cursor(request), page_limit(request))
    body = {
        "users": [{"id": m.user, "since": m.since_ms} for m in page.members],
        "count": page.count,
        "next": page.next_before,
    }
    return Response(orjson.dumps(body), media_type="application/json")


async def counts(request: Request, graph: FollowGraph, auth: AuthSettings) -> Response:
    """`GET /v1/users/{user}/follows`: how many follow the user and how many they follow."""
    user_of(request, auth)
    followers, following = await graph.counts(subject(request))
    return Response(
        orjson.dumps({"followers": followers, "following": following}), media_type="application/json"
    )


async def list_posts(
    request: Request, timelines: Timelines, graph: FollowGraph, auth: AuthSettings
) -> Response:
    """`GET /v1/users/{user}/posts`: the author's live posts, newest first; a `followers` post
    only for the author and their followers (a page may then hold fewer than `limit`)."""
    viewer = user_of(request, auth)
    author = subject(request)
    page = await timelines.page(author, before_cursor(request), page_limit(request))
    posts = page.posts
    hidden = [followers_only(p) for p in posts]
    if viewer != author and any(hidden) and not await graph.follows(viewer, author):
        posts = [p for p, h in zip(posts, hidden, strict=True) if not h]
    body = {"posts": [msgspec.Raw(p) for p in posts], "count": page.count, "next": page.next_before}
    return Response(msgspec.json.encode(body), media_type="application/json")
