"""create_app(): the gateway's Starlette application (WebSocket at /v1/ws)."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from notifier.runtime.settings import Settings

from .hub import Hub
from .session import Session

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008  # before accept, uvicorn turns this close into HTTP 403


def gateway_routes(settings: Settings, redis: Redis, hub: Hub) -> list[BaseRoute]:
    allowed = settings.gateway.allowed_origins

    async def ws_endpoint(ws: WebSocket) -> None:
        origin = ws.headers.get("origin")
        if origin is not None and origin not in allowed:
            # cross-site WebSocket hijacking guard: exact allowlist; non-browser clients send none
            log.warning("ws origin refused origin=%r", origin[:200])
            await ws.close(POLICY_VIOLATION)
            return
        await Session(ws, redis, hub, settings.gateway, settings.auth).serve()

    return [WebSocketRoute("/v1/ws", ws_endpoint)]


def create_app(settings: Settings, redis: Redis, hub: Hub) -> Starlette:
    return Starlette(routes=gateway_routes(settings, redis, hub))
