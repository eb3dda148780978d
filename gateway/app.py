"""gateway_app(): the WebSocket endpoint at /v1/ws as a bare ASGI app in front of the others."""

from __future__ import annotations

import logging
from typing import Final

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from notifier.runtime.settings import Settings
from schemas.errors import Reason, Rejected
from schemas.problems import MEDIA_TYPE, body_of

from .hub import Hub
from .session import Session
from .wsserver import SEND_FRAMES

log = logging.getLogger(__name__)

WS_PATH: Final = "/v1/ws"


async def _needs_upgrade(request: Request) -> Response:
    raise Rejected(Reason.MALFORMED, f"{WS_PATH} takes WebSocket connections only (Upgrade: websocket)")


# for the app behind gateway_app: a plain HTTP request to the WebSocket's path is told what it
# is, not answered 404 as if nothing were there
UPGRADE_ROUTE: Final = Route(WS_PATH, _needs_upgrade)


def gateway_app(settings: Settings, redis: Redis, hub: Hub, rest: ASGIApp) -> ASGIApp:
    """Serves WebSocket sessions at /v1/ws and hands every other request (HTTP, lifespan,
    other paths) to `rest`. Sessions sit outside `rest`'s middleware on purpose: each pushed
    frame then goes straight to the server's send, with no wrapper per message."""
    allowed = settings.gateway.allowed_origins
    connections = hub.metrics.connections

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or scope["path"] != WS_PATH:
            await rest(scope, receive, send)
            return
        # read in a call of its own: no local of this frame, which lives as long as the
        # connection, keeps the handshake headers (or a dict of them) after the check
        refused = _refused_origin(scope["headers"], allowed, settings.dev)
        # past the origin check nothing reads the handshake headers, while the scope lives as
        # long as the connection: let them go (~1 KB per connection, more from browsers)
        scope["headers"] = []
        ws = WebSocket(scope, receive, send)
        if refused is not None:
            # cross-site WebSocket hijacking guard: exact allowlist; non-browser clients send none
            log.warning("ws origin refused origin=%r", refused[:200])
            denied = body_of(Reason.FORBIDDEN, "this Origin may not open a WebSocket here")
            await ws.send_denial_response(JSONResponse(denied, status_code=403, media_type=MEDIA_TYPE))
            return
        connections.inc()
        # live frames in batches, straight to the server, where it offers that (wsserver.py)
        write_frames = (scope.get("extensions") or {}).get(SEND_FRAMES)
        send_frames = send if write_frames is not None else None
        try:
            session = Session(ws, redis, hub, settings.gateway, settings.auth, send_frames, write_frames)
            await session.serve()
        finally:
            connections.dec()

    return app


def _refused_origin(headers: list[tuple[bytes, bytes]], allowed: frozenset[str], dev: bool) -> str | None:
    """The handshake's Origin when it is not allowed (None when it is, or there is none:
    non-browser clients send none). Dev mode (`up`) also admits its own pages (the demo at
    /): the same scheme-less host:port."""
    found = dict(headers)
    if b"origin" not in found:
        return None
    origin = found[b"origin"].decode("latin-1")
    if origin in allowed or (dev and origin.partition("://")[2] == found.get(b"host", b"").decode("latin-1")):
        return None
    return origin
