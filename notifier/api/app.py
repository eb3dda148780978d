"""api_app(): the API (ingest for services, inbox REST for clients)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from redis.asyncio import Redis
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feeds.graph import FollowGraph
from feeds.hiding import Hiding
from feeds.home import HomeFeeds
from feeds.inbox import Inbox
from feeds.preferences import PreferenceStore, Relation
from feeds.timeline import Timelines
from notifier.runtime import logs, metrics, tracing
from notifier.runtime.health import http_app
from notifier.runtime.routing import by_method
from notifier.runtime.settings import Settings
from schemas.errors import Reason, Rejected

from . import feed, graph, me, preferences
from .append import EventLog
from .ingest import ingest
from .pressure import Pressure
from .problems import EXCEPTION_HANDLERS, REFUSALS, internal, problem, refusal
from .recent import RecentAppends
from .service_auth import authenticate

Endpoint = Callable[[Request], Awaitable[Response]]
INGEST_PATH: Final = "/v1/events"


def ingest_endpoint(
    settings: Settings, redis: Redis, pressure: Pressure, recent: RecentAppends | None = None
) -> Endpoint:
    log = EventLog(redis, settings.ingest, recent)
    counted = metrics.current()
    traced = tracing.current()
    in_flight = 0

    async def post_events(request: Request) -> Response:
        nonlocal in_flight
        try:
            service = authenticate(request, settings.ingest.services)
            logs.service.set(service.name)  # for this request's log lines
            pressure.check()
            if in_flight >= settings.ingest.max_in_flight:
                raise Rejected(Reason.OVERLOADED, "too many requests in flight; retry shortly")
            in_flight += 1
            try:
                if traced is None:
                    response = await ingest(request, log, settings.ingest, service, counted)
                else:
                    with traced.server("POST /v1/events", request.headers) as span:
                        span.set_attribute("notifier.service", service.name)
                        response = await ingest(request, log, settings.ingest, service, counted)
                        span.set_attribute("http.response.status_code", response.status_code)
            finally:
                in_flight -= 1
        except REFUSALS as exc:
            counted.ingest_requests_refused[
                exc.reason if isinstance(exc, Rejected) else Reason.UNAVAILABLE
            ].inc()
            raise
        if response.status_code == 202:
            counted.ingest_requests_accepted.inc()
        else:  # every event of the body was rejected (their reasons: notifier_ingest_events_total)
            counted.ingest_requests_rejected.inc()
        return response

    return post_events


def client_routes(settings: Settings, redis: Redis) -> list[BaseRoute]:
    inbox = Inbox(redis, settings.feeds)
    follow_graph = FollowGraph(redis)
    timelines = Timelines(redis, settings.feeds)
    home_feeds = HomeFeeds(redis, settings.feeds)
    prefs = PreferenceStore(redis)
    hiding = Hiding(redis, settings.feeds)
    auth = settings.auth

    async def get_notifications(request: Request) -> Response:
        return await me.list_notifications(request, inbox, auth)

    async def get_unread(request: Request) -> Response:
        return await me.unread(request, inbox, auth)

    async def post_read(request: Request) -> Response:
        return await me.mark_read(request, inbox, auth)

    async def post_seen(request: Request) -> Response:
        return await me.mark_seen(request, inbox, auth)

    async def get_followers(request: Request) -> Response:
        return await graph.list_side(request, follow_graph, auth, "followers")

    async def get_following(request: Request) -> Response:
        return await graph.list_side(request, follow_graph, auth, "following")

    async def get_follow_counts(request: Request) -> Response:
        return await graph.counts(request, follow_graph, auth)

    async def get_posts(request: Request) -> Response:
        return await graph.list_posts(request, timelines, follow_graph, auth)

    async def get_feed(request: Request) -> Response:
        return await feed.home_feed(request, home_feeds, auth)

    async def get_prefs(request: Request) -> Response:
        return await preferences.get_preferences(request, prefs, auth)

    async def put_prefs(request: Request) -> Response:
        return await preferences.put_preferences(request, prefs, auth)

    def relation_routes(relation: Relation) -> list[BaseRoute]:
        async def listed(request: Request) -> Response:
            return await preferences.list_relation(request, prefs, auth, relation)

        async def changed(request: Request) -> Response:
            on = request.method == "PUT"
            return await preferences.set_relation(request, prefs, hiding, auth, relation, on)

        param = "{post}" if relation == "muted-posts" else "{user}"
        return [
            Route(f"/v1/me/{relation}", listed, methods=["GET"]),
            Route(f"/v1/me/{relation}/{param}", changed, methods=["PUT", "DELETE"]),
        ]

    return [
        Route("/v1/me/notifications", get_notifications, methods=["GET"]),
        Route("/v1/me/unread", get_unread, methods=["GET"]),
        Route("/v1/me/notifications/read", post_read, methods=["POST"]),
        Route("/v1/me/notifications/seen", post_seen, methods=["POST"]),
        Route("/v1/me/feed", get_feed, methods=["GET"]),
        by_method("/v1/me/preferences", GET=get_prefs, PUT=put_prefs),
        *relation_routes("mutes"),
        *relation_routes("blocks"),
        *relation_routes("muted-posts"),
        Route("/v1/users/{user}/followers", get_followers, methods=["GET"]),
        Route("/v1/users/{user}/following", get_following, methods=["GET"]),
        Route("/v1/users/{user}/follows", get_follow_counts, methods=["GET"]),
        Route("/v1/users/{user}/posts", get_posts, methods=["GET"]),
    ]


def api_app(
    settings: Settings,
    redis: Redis,
    pressure: Pressure,
    more_routes: Sequence[BaseRoute] = (),
    recent: RecentAppends | None = None,
) -> ASGIApp:
    """The API: `POST /v1/events` served in front of Starlette, everything else (client REST,
    `more_routes`, lifespan) through it. Ingest is the one endpoint services call thousands of
    times a second, and Starlette's router and middleware cost about as much as the ingest
    handler itself on a single-event POST; its refusals are the same problem responses. With
    `recent`, accepted events are kept there for a Redis crash (recovery.py)."""
    post_events = ingest_endpoint(settings, redis, pressure, recent)
    rest = http_app(
        # the route answers only other methods (405): POSTs never reach it
        [Route(INGEST_PATH, post_events, methods=["POST"]), *client_routes(settings, redis), *more_routes],
        EXCEPTION_HANDLERS,
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await rest(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await _route(scope, receive, sending)
        except asyncio.CancelledError:
            # the stop's grace ran out with this request in hand (lifecycle.py): the server is
            # stopping, which is said as such, not as uvicorn's plain-text 500 and a traceback
            if not started:
                stopping = Rejected(Reason.SHUTTING_DOWN, "the server stopped before answering; retry")
                with contextlib.suppress(Exception):
                    await problem(stopping)(scope, receive, send)

    async def _route(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] != INGEST_PATH or scope["method"] != "POST":
            await rest(scope, receive, send)
            return
        try:
            response = await post_events(Request(scope, receive))
        except REFUSALS as exc:
            response = refusal(exc)
        except ClientDisconnect:  # gone before its body was whole: nobody to answer
            return
        except Exception:
            await internal()(scope, receive, send)
            raise  # for the server's log, as Starlette's ServerErrorMiddleware does
        await response(scope, receive, send)

    return app
