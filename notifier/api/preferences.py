"""Preferences REST: a user reads and replaces their preferences, mutes and blocks others, and
mutes posts."""

from __future__ import annotations

import time

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response

from feeds.hiding import Hiding
from feeds.preferences import PreferenceStore, Relation
from notifier.runtime.settings import AuthSettings
from notifier.runtime.tokens import user_of
from schemas import decoding
from schemas import preferences as wire
from schemas.errors import Reason, Rejected
from schemas.events import is_id

from .graph import before_cursor, subject
from .ingest import read_body, require_json
from .me import page_limit

NO_BODY_BYTES = 64  # what a route without a body reads at most: a client's `{}` and some spaces

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
    except msgspec.DecodeError as exc:  # ValidationError included
        raise decoding.refusal(exc, body=body) from None
    except wire.InvalidTimezone as exc:
        raise Rejected(Reason.INVALID, str(exc), "/quiet_hours/timezone") from None
    await store.put(user, prefs, int(time.time() * 1000))
    return Response(wire.encode(prefs), media_type="application/json")


async def list_relation(
    request: Request, store: PreferenceStore, auth: AuthSettings, relation: Relation
) -> Response:
    """`GET /v1/me/mutes`, `/v1/me/blocks` or `/v1/me/muted-posts`: newest first, `next` for
    the next page."""
    user = user_of(request, auth)
    page = await store.page(user, relation, before_cursor(request), page_limit(request))
    body = {
        "posts" if relation == "muted-posts" else "users": [{"id": m, "since": at} for m, at in page.members],
        "count": page.count,
        "next": page.next_before,
    }
    return _json(body)


def _other(request: Request, relation: Relation) -> str:
    if relation != "muted-posts":
        return subject(request)
    post = str(request.path_params["post"])
    if not is_id(post):
        raise Rejected(Reason.INVALID, "post must be 1-128 chars of A-Z a-z 0-9 _ . : @ -", "/post")
    return post


async def set_relation(
    request: Request,
    store: PreferenceStore,
    hiding: Hiding,
    auth: AuthSettings,
    relation: Relation,
    on: bool,
) -> Response:
    """`PUT` (mute, block) or `DELETE` (undo) `/v1/me/{mutes,blocks}/{user}` or
    `/v1/me/muted-posts/{post}`; idempotent. A mute or block also hides what already reached
    the caller (feeds/hiding.py), every time, so a retry after a failure completes it."""
    user = user_of(request, auth)
    other = _other(request, relation)
    if other == user and relation != "muted-posts":
        raise Rejected(Reason.INVALID, f"one cannot be in one's own {relation}", "/user")
    if (await read_body(request, NO_BODY_BYTES)).strip() not in (b"", b"{}"):
        raise Rejected(Reason.INVALID, f"{request.method} {request.url.path} takes no body (or {{}})")
    at_ms = int(time.time() * 1000)
    changed = await store.relate(user, relation, other, on, at_ms)
    hidden = 0
    if on and relation == "mutes":
        hidden = await hiding.mute(user, other, at_ms)
    elif on and relation == "blocks":
        hidden = await hiding.block(user, other, at_ms)
    elif on:
        hidden = await hiding.mute_post(user, other, at_ms)
    return _json({"changed": changed, "hidden": hidden})
