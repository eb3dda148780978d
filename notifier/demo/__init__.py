"""The demo page `up` serves at / in dev mode: sign in as any user, watch the live inbox through
the JS client (clients/js), post sample events. `/demo/session` mints a token and hands out the
dev service key, so it exists only in dev mode."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from notifier.runtime import tokens
from notifier.runtime.settings import Settings
from schemas import decoding
from schemas.errors import Reason, Rejected
from schemas.events import Id

# the client is its own npm-style package at the repository's top: served from the source tree
CLIENT_FILE: Final = Path(__file__).resolve().parents[2] / "clients" / "js" / "notifier-client.js"
_FILES: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/demo/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/demo/demo.css": ("demo.css", "text/css; charset=utf-8"),
}
HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class SessionBody(msgspec.Struct, forbid_unknown_fields=True):
    user: Id


class DemoSession(msgspec.Struct):
    user: str
    token: str
    service_key: str


def demo_routes(settings: Settings) -> list[BaseRoute]:
    folder = resources.files(__package__)
    bodies = {path: (folder.joinpath(name).read_bytes(), kind) for path, (name, kind) in _FILES.items()}
    if CLIENT_FILE.is_file():
        bodies["/demo/notifier-client.js"] = (CLIENT_FILE.read_bytes(), "text/javascript; charset=utf-8")

    def serve(path: str) -> Route:
        body, kind = bodies[path]

        async def endpoint(request: Request) -> Response:
            return Response(body, media_type=kind, headers=HEADERS)

        return Route(path, endpoint, methods=["GET"])

    async def session(request: Request) -> Response:
        try:
            wanted = msgspec.json.decode(await request.body() or b"{}", type=SessionBody)
        except msgspec.DecodeError as exc:
            raise decoding.refusal(exc) from None
        if not settings.ingest.services:
            raise Rejected(Reason.UNAVAILABLE, "no service key configured")
        token = tokens.issue(settings.auth, wanted.user, ttl_s=300)
        reply = DemoSession(wanted.user, token, settings.ingest.services[0].key)
        return Response(msgspec.json.encode(reply), media_type="application/json", headers=HEADERS)

    return [*(serve(p) for p in bodies), Route("/demo/session", session, methods=["POST"])]
