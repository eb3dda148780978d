"""Home feed REST: a user reads the posts of the accounts they follow, newest first."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from feeds.home import HomeFeeds
from notifier.runtime.settings import AuthSettings
from notifier.runtime.tokens import user_of

from .graph import before_cursor
from .me import page_limit


async def home_feed(request: Request, feeds: HomeFeeds, auth: AuthSettings) -> Response:
    """`GET /v1/me/feed`: `items` (post records) and `next`, the cursor of the next page or null.
    A page may hold fewer than `limit` items (a post deleted or unfollowed since it was pushed
    is left out): follow `next` until it is null."""
    user = user_of(request, auth)
    page = await feeds.page(user, before_cursor(request), page_limit(request))
    body = {"items": [msgspec.Raw(p) for p in page.items], "next": page.next_before}
    return Response(msgspec.json.encode(body), media_type="application/json")
