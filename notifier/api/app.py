"""create_app(): the API's Starlette application (ingest for services, inbox REST for clients)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from feeds.inbox import Inbox
from notifier.runtime.settings import Settings
from schemas.errors import Reason, Rejected

from . import me
from .append import EventLog
from .ingest import ingest
from .pressure import Pressure
from .problems import on_redis_down, on_rejected
from .service_auth import authenticate


def api_routes(settings: Settings, redis: Redis, pressure: Pressure) -> list[BaseRoute]:
    log = EventLog(redis, settings.ingest)
    inbox = Inbox(redis, settings.feeds)
    auth = settings.auth
    in_flight = 0

    async def post_events(request: Request) -> Response:
        nonlocal in_flight
        service = authenticate(request, settings.ingest.services)
        pressure.check()
        if in_flight >= settings.ingest.max_in_flight:
            raise Rejected(Reason.OVERLOADED, "too many requests in flight; retry shortly")
        in_flight += 1
        try:
            return await ingest(request, log, settings.ingest, service)
        finally:
            in_flight -= 1

    async def get_notifications(request: Request) -> Response:
        return await me.list_notifications(request, inbox, auth)

    async def get_unread(request: Request) -> Response:
        return await me.unread(request, inbox, auth)

    async def post_read(request: Request) -> Response:
        return await me.mark_read(request, inbox, auth)

    async def ready(request: Request) -> Response:
        await redis.ping()
        return JSONResponse({"ready": True})

    return [
        Route("/v1/events", post_events, methods=["POST"]),
        Route("/v1/me/notifications", get_notifications, methods=["GET"]),
        Route("/v1/me/unread", get_unread, methods=["GET"]),
        Route("/v1/me/notifications/read", post_read, methods=["POST"]),
        Route("/readyz", ready, methods=["GET"]),
    ]


EXCEPTION_HANDLERS = {
    Rejected: on_rejected,
    RedisConnectionError: on_redis_down,
    RedisTimeoutError: on_redis_down,
}


def create_app(settings: Settings, redis: Redis, pressure: Pressure) -> Starlette:
    routes = api_routes(settings, redis, pressure)
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
