"""The OpenAPI 3.1 document of every HTTP route, built from the msgspec types that decode the
requests (and type the answers); served at /openapi.json with a static page at /docs, and
committed as schemas/openapi.json: `python -m notifier.openapi` rewrites it."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from notifier.api.me import MAX_PAGE as INBOX_MAX_PAGE
from notifier.api.me import MarkRead
from notifier.demo import DemoSession, SessionBody
from notifier.explain import Explanation
from notifier.moderation import replies
from notifier.moderation.queue import STATES
from notifier.moderation.records import Stats
from notifier.moderation.routes import MAX_PAGE as MODERATION_MAX_PAGE
from notifier.moderation.routes import BanBody, BulkBody, DecisionBody, LiftBody, ReportBody
from schemas import http
from schemas.events import ID_PATTERN, Event
from schemas.preferences import Preferences

DOCUMENT_FILE: Final = Path(__file__).resolve().parents[1] / "schemas" / "openapi.json"
_REF: Final = "#/components/schemas/{name}"
JSON: Final = "application/json"
PROBLEM: Final = "application/problem+json"

Json = dict[str, Any]


@dataclass(frozen=True)
class Param:
    name: str
    schema: Json
    where: str = "query"
    description: str = ""


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    tag: str  # who calls it: ingest (service key), inbox (user token), moderation, meta (anyone), demo
    summary: str
    reply: object = None  # a msgspec type (or dataclass), or a media type for non-JSON answers
    status: int = 200
    body: object = None
    params: tuple[Param, ...] = field(default_factory=tuple)
    also: tuple[int, ...] = ()  # more success statuses with the same answer
    body_required: bool = True  # False: no body (or an empty one) is taken too


def _limit(high: int, default: int) -> Param:
    return Param("limit", {"type": "integer", "minimum": 1, "maximum": high, "default": default})


_ITEM: Final = (Param("item_id", {"type": "string"}, "path", "a review item id"),)
_MODERATION_PAGE: Final = (
    Param("state", {"type": "string", "enum": sorted(STATES)}),
    Param("reason", {"type": "string"}, description="a rule name"),
    Param("actor", {"type": "string"}),
    Param("q", {"type": "string", "maxLength": 200}, description="text or actor contains (any case)"),
    Param("order", {"type": "string", "enum": ["arrival", "urgency"], "default": "arrival"}),
    Param("after", {"type": "integer", "minimum": 0}, description="the previous page's `next`"),
    _limit(MODERATION_MAX_PAGE, 50),
)
_ID: Final = {"type": "string", "pattern": ID_PATTERN, "maxLength": 128}
_USER: Final = Param("user", _ID, "path", "a user id")
_POST: Final = Param("post", _ID, "path", "a post id")
_FEED_PAGE: Final = (
    Param("before", {"type": "string"}, description="the previous page's `next` (opaque)"),
    _limit(INBOX_MAX_PAGE, 20),
)


def _relation_ops(relation: str, what: str) -> tuple[Op, ...]:
    path = f"/v1/me/{relation}"
    page: type = http.MemberPage
    subject, thing = _USER, "a user"
    if relation == "muted-posts":
        page, subject, thing = http.MutedPostPage, _POST, "a post (its thread)"
    return (
        Op("get", path, "inbox", f"What the caller {what}s, newest first", page, params=_FEED_PAGE),
        Op(
            "put",
            f"{path}/{{{subject.name}}}",
            "inbox",
            f"{what.title()} {thing}, hiding what already reached the caller",
            http.Changed,
            params=(subject,),
        ),
        Op(
            "delete",
            f"{path}/{{{subject.name}}}",
            "inbox",
            f"Un{what} {thing}",
            http.Changed,
            params=(subject,),
        ),
    )


OPERATIONS: Final[tuple[Op, ...]] = (
    Op("post", "/v1/events", "ingest", "Send one event or a batch", http.IngestReply, 202, Event),
    Op(
        "get",
        "/v1/me/notifications",
        "inbox",
        "A page of the caller's notification groups, newest first",
        http.InboxPage,
        params=(
            _limit(INBOX_MAX_PAGE, 20),
            Param("before", {"type": "string"}, description="the previous page's `next` (opaque)"),
        ),
    ),
    Op("get", "/v1/me/unread", "inbox", "The caller's unread count", http.Unread),
    Op("post", "/v1/me/notifications/read", "inbox", "Mark groups (or all) read", http.Marked, body=MarkRead),
    Op(
        "post",
        "/v1/me/notifications/seen",
        "inbox",
        "Mark the inbox seen (not read) up to a time or the newest group; synced to every device",
        http.Seen,
        body=http.MarkSeen,
        body_required=False,
    ),
    Op("get", "/v1/me/feed", "inbox", "The caller's home feed", http.FeedPage, params=_FEED_PAGE),
    Op("get", "/v1/me/preferences", "inbox", "The caller's preferences", Preferences),
    Op(
        "put",
        "/v1/me/preferences",
        "inbox",
        "Replace the caller's preferences; answers them as stored",
        Preferences,
        body=Preferences,
    ),
    *_relation_ops("mutes", "mute"),
    *_relation_ops("blocks", "block"),
    *_relation_ops("muted-posts", "mute"),
    Op(
        "get",
        "/v1/users/{user}/followers",
        "inbox",
        "Who follows the user, newest first",
        http.MemberPage,
        params=(_USER, *_FEED_PAGE),
    ),
    Op(
        "get",
        "/v1/users/{user}/following",
        "inbox",
        "Whom the user follows, newest first",
        http.MemberPage,
        params=(_USER, *_FEED_PAGE),
    ),
    Op(
        "get",
        "/v1/users/{user}/follows",
        "inbox",
        "The user's follow counts",
        http.FollowCounts,
        params=(_USER,),
    ),
    Op(
        "get",
        "/v1/users/{user}/posts",
        "inbox",
        "The user's live posts, newest first",
        http.PostPage,
        params=(_USER, *_FEED_PAGE),
    ),
    Op(
        "get", "/v1/moderation/items", "moderation", "Review items", replies.ItemPage, params=_MODERATION_PAGE
    ),
    Op("get", "/v1/moderation/items/{item_id}", "moderation", "One item", replies.ItemView, params=_ITEM),
    Op(
        "post", "/v1/moderation/items/{item_id}/claim", "moderation", "Claim", replies.ItemReply, params=_ITEM
    ),
    Op(
        "post",
        "/v1/moderation/items/{item_id}/release",
        "moderation",
        "Release",
        replies.ItemReply,
        params=_ITEM,
    ),
    Op(
        "post",
        "/v1/moderation/items/{item_id}/approve",
        "moderation",
        "Approve",
        replies.Decision,
        200,
        DecisionBody,
        _ITEM,
    ),
    Op(
        "post",
        "/v1/moderation/items/{item_id}/reject",
        "moderation",
        "Reject",
        replies.Decision,
        200,
        DecisionBody,
        _ITEM,
    ),
    Op("post", "/v1/moderation/decisions", "moderation", "Decide many", replies.BulkReply, body=BulkBody),
    Op("get", "/v1/moderation/bans", "moderation", "Banned actors", replies.Bans),
    Op("post", "/v1/moderation/bans", "moderation", "Ban an actor", replies.BanReply, body=BanBody),
    Op(
        "get",
        "/v1/moderation/audit",
        "moderation",
        "The audit trail, oldest first (or newest)",
        replies.AuditPage,
        params=(
            Param("after", {"type": "string"}, description="the previous page's `next`"),
            Param("order", {"type": "string", "enum": ["oldest", "newest"], "default": "oldest"}),
            _limit(MODERATION_MAX_PAGE, 50),
        ),
    ),
    Op("get", "/v1/moderation/audit/verify", "moderation", "Check the audit hash chain", replies.AuditCheck),
    Op(
        "post",
        "/v1/moderation/bans/{actor}/lift",
        "moderation",
        "Lift a ban",
        replies.Lifted,
        body=LiftBody,
        params=(Param("actor", {"type": "string"}, "path"),),
    ),
    Op(
        "get",
        "/v1/moderation/actors/{actor}",
        "moderation",
        "An actor's enforcement history",
        replies.ActorView,
        params=(
            Param("actor", {"type": "string"}, "path"),
            _limit(MODERATION_MAX_PAGE, 50),
        ),
    ),
    Op("get", "/v1/moderation/stats", "moderation", "Queue numbers", Stats),
    Op(
        "get", "/v1/moderation/live", "moderation", "Queue changes as server-sent events", "text/event-stream"
    ),
    Op(
        "get",
        "/v1/admin/events/{event_id}/explain",
        "moderation",
        "Where an event is: log, fan-out, moderation, recipients",
        Explanation,
        params=(Param("event_id", {"type": "string"}, "path"), Param("user", {"type": "string"})),
    ),
    Op(
        "post",
        "/v1/me/reports",
        "inbox",
        "Report content: 201 when filed, 200 when the caller had reported it already",
        replies.ReportFiled,
        201,
        ReportBody,
        also=(200,),
    ),
    Op(
        "get",
        "/v1/me/reports",
        "inbox",
        "The caller's reports",
        replies.MyReports,
        params=(_limit(MODERATION_MAX_PAGE, 50),),
    ),
    Op(
        "get",
        "/readyz",
        "meta",
        "Ready once Redis answers and every service started",
        http.Ready,
        also=(503,),
    ),
    Op("get", "/livez", "meta", "Alive", http.Live),
    Op("get", "/metrics", "meta", "Prometheus metrics", "text/plain"),
    Op("get", "/openapi.json", "meta", "This document", "application/json"),
    Op("get", "/docs", "meta", "This document as a page", "text/html"),
    Op("get", "/moderation", "meta", "Redirects to the console", 308, 308),
    Op("get", "/moderation/", "meta", "The moderator console", "text/html"),
    Op("get", "/moderation/console.js", "meta", "The console's script", "text/javascript"),
    Op("get", "/moderation/console.css", "meta", "The console's style", "text/css"),
    Op("get", "/", "demo", "The demo page (dev mode only)", "text/html"),
    Op("get", "/demo/app.js", "demo", "The demo page's script", "text/javascript"),
    Op("get", "/demo/demo.css", "demo", "The demo page's style", "text/css"),
    Op("get", "/demo/notifier-client.js", "demo", "The JS client (clients/js)", "text/javascript"),
    Op("post", "/demo/session", "demo", "A demo token, the dev key", DemoSession, body=SessionBody),
)
_SECURITY: Final = {"ingest": "serviceKey", "inbox": "userToken", "moderation": "moderatorToken"}


def document(version: str, *, demo: bool = True) -> Json:
    """The whole HTTP API; without the demo page's routes (served in dev mode only) unless `demo`."""
    operations = [op for op in OPERATIONS if demo or op.tag != "demo"]
    types: list[Any] = [http.Problem, http.IngestRefused]
    for op in operations:
        types += [t for t in (op.body, op.reply) if isinstance(t, type) or t is Event]
    refs, components = msgspec.json.schema_components(types, ref_template=_REF)
    ref = {id(t): r for t, r in zip(types, refs, strict=True)}
    components["Event"] = ref[id(Event)]
    paths: Json = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, ref)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "notifier",
            "version": version,
            "description": "Social notifications: ingest for services, the inbox for users, moderation. "
            "Every error is an RFC 9457 problem (application/problem+json).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "serviceKey": {"type": "http", "scheme": "bearer", "description": "a service key"},
                "userToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "moderatorToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "a JWT with role=moderator",
                },
            },
        },
    }


def _operation(op: Op, ref: dict[int, Json]) -> Json:
    out: Json = {"tags": [op.tag], "summary": op.summary, "operationId": _operation_id(op)}
    if op.tag in _SECURITY:
        out["security"] = [{_SECURITY[op.tag]: []}]
    if op.params:
        out["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.where == "path", "schema": p.schema}
            | ({"description": p.description} if p.description else {})
            for p in op.params
        ]
    if op.body is Event:
        one = ref[id(Event)]
        batch = {"type": "array", "items": one, "minItems": 1}
        out["requestBody"] = {"required": True, "content": {JSON: {"schema": {"oneOf": [one, batch]}}}}
    elif op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": {JSON: {"schema": ref[id(op.body)]}}}
    problem = {"content": {PROBLEM: {"schema": {"$ref": _REF.format(name="Problem")}}}}
    responses: Json = {"default": {"description": "a problem: `error` says which", **problem}}
    for status in (op.status, *op.also):
        if isinstance(op.reply, str):
            responses[str(status)] = {"description": op.summary, "content": {op.reply: {}}}
        elif isinstance(op.reply, int):
            responses[str(op.reply)] = {"description": op.summary}
        else:
            content = {JSON: {"schema": ref[id(op.reply)]}}
            responses[str(status)] = {"description": op.summary, "content": content}
    if op.body is Event:  # every event refused: the problem carries the verdicts
        either = {"anyOf": [{"$ref": _REF.format(name=n)} for n in ("IngestRefused", "Problem")]}
        for refused in ("400", "403", "413", "422"):
            responses[refused] = {
                "description": "a problem; with the verdicts when every event was refused",
                "content": {PROBLEM: {"schema": either}},
            }
    out["responses"] = responses
    return out


def _operation_id(op: Op) -> str:
    words = [w.strip("{}") for w in op.path.strip("/").replace(".", "_").split("/") if w]
    return "_".join([op.method, *words]) or op.method


def render(version: str, *, demo: bool = True) -> str:
    """The committed file's exact text (with the demo routes): sorted keys, two-space indent,
    trailing newline."""
    return json.dumps(document(version, demo=demo), indent=2, sort_keys=True) + "\n"


def routes(version: str, *, demo: bool) -> list[BaseRoute]:
    """/openapi.json and /docs: with the demo page's routes only where they are served (dev)."""
    body = render(version, demo=demo).encode()
    page = docs_page(document(version, demo=demo)).encode()

    async def openapi_json(request: Request) -> Response:
        return Response(body, media_type=JSON)

    async def docs(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    return [Route("/openapi.json", openapi_json, methods=["GET"]), Route("/docs", docs, methods=["GET"])]


def docs_page(doc: Json) -> str:
    """A self-contained page (no script, nothing fetched): each operation with its schemas."""
    esc = html.escape
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8><title>notifier API</title>",
        "<style>body{font:15px system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "code,pre{background:#f4f4f4;padding:.1em .3em}pre{overflow:auto;padding:.6em}"
        "h3 code{font-size:1em}summary{cursor:pointer}</style>",
        f"<h1>{esc(doc['info']['title'])} {esc(doc['info']['version'])}</h1>",
        f"<p>{esc(doc['info']['description'])}",
        "The document itself: <a href=/openapi.json>/openapi.json</a>.</p>",
    ]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            parts.append(f"<h3><code>{esc(method.upper())} {esc(path)}</code></h3><p>{esc(op['summary'])}")
            if "security" in op:
                parts.append(f" · <em>{esc(next(iter(op['security'][0])))}</em>")
            parts.append("</p>")
            for part in ("parameters", "requestBody", "responses"):
                if part in op:
                    text = json.dumps(op[part], indent=2)
                    parts.append(f"<details><summary>{part}</summary><pre>{esc(text)}</pre></details>")
    text = json.dumps(doc["components"]["schemas"], indent=2, sort_keys=True)
    parts.append(f"<h2>Schemas</h2><pre>{esc(text)}</pre></html>")
    return "\n".join(parts)


def main() -> None:
    from notifier import __version__

    DOCUMENT_FILE.write_text(render(__version__), encoding="utf-8")
    print(f"wrote {DOCUMENT_FILE}")


if __name__ == "__main__":
    main()
