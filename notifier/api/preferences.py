"""Preferences REST: a user reads and replaces their preferences, and mutes and blocks others."""

from __future__ import annotations

import time

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response

from feeds.preferences import PreferenceStore, Relation
from notifier.runtime.settings import AuthSettings
from notifier.runtime.tokens import user_of
from schemas import preferences as wire
from schemas.errors import Reason, Rejected

from .graph import before_cursor, subject
from .ingest import read_body, require_json
from .me import page_limit

MAX_BODY = 4 * 1024


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


async def get_preferences(request: Request, store: PreferenceStore, auth: AuthSettings) -> Response:
    user = user_of(request, auth)
    return Response(wire.encode(await store.get(user)), media_type="application/json")


async def put_preferences(request: Request, store: PreferenceStore, auth: AuthSettings) -> Response:
    """Replaces the whole document; answers it as stored."""
    user = user_of(request, auth)
    require_json(request)
    body = await read_body(request, MAX_BODY)
    try:
        prefs = wire.decode(body)
    except msgspec.ValidationError as exc:
        raise Rejected(Reason.INVALID, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Rejected(Reason.MALFORMED, f"body is not valid JSON: {exc}") from None
    except wire.InvalidTimezone as exc:
        raise Rejected(Reason.INVALID, str(exc), "/quiet_hours/timezone") from None
    await store.put(user, prefs)
    return Response(wire.encode(prefs), media_type="application/json")


async def list_relation(
    request: Request, store: PreferenceStore, auth: AuthSettings, relation: Relation
) -> Response:
    """`GET /v1/me/mutes` or `/v1/me/blocks`: newest first, `next` for the next page."""
    user = user_of(request, auth)
    page = await store.page(user, relation, before_cursor(request), page_limit(request))
    body = {
        "users": [{"id": m, "since": at} for m, at in page.members],
        "count": page.count,
        "next": page.next_before,
    }
    return _json(body)


async def set_relation(
    request: Request, store: PreferenceStore, auth: AuthSettings, relation: Relation, on: bool
) -> Response:
    """`PUT` (mute, block) or `DELETE` (undo) `/v1/me/{mutes,blocks}/{user}`; idempotent."""
    user = user_of(request, auth)
    other = subject(request)
    if other == user:
        raise Rejected(Reason.INVALID, f"one cannot be in one's own {relation}", "/user")
    changed = await store.relate(user, relation, other, on, int(time.time() * 1000))
    return _json({"changed": changed})
