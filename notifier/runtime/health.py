"""Health: `/livez` (the event loop answers), `/readyz` (every readiness check passes: Redis
answers, the role's services started, plus what each role adds), and `/metrics`, as routes every
role serves (api and gateway on their port, worker and jobs on a small port of their own)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import anyio
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ExceptionHandler

from schemas.errors import Reason, Rejected

from .metrics import Metrics

Check = Callable[[], Awaitable[str | None]]  # None: ready; else why not
CHECK_TIMEOUT_S: Final = 2.0
PROMETHEUS_TEXT: Final = "text/plain; version=0.0.4; charset=utf-8"


class Health:
    """The role's readiness checks; `Started` (the last service) flips `started`."""

    def __init__(self, redis: Redis) -> None:
        self.started = False
        self.stopping = False
        self._checks: list[tuple[str, Check]] = [("redis", lambda: _ping(redis))]

    def add(self, name: str, check: Check) -> None:
        self._checks.append((name, check))

    async def reasons(self) -> list[str]:
        """Why the role is not ready; empty when it is. The checks run at once, so a frozen
        Redis costs the probe one CHECK_TIMEOUT_S, not one per check."""
        if self.stopping:
            return ["stopping"]
        if not self.started:
            return ["services starting"]
        found: list[str | None] = [None] * len(self._checks)

        async def judge(i: int, name: str, check: Check) -> None:
            try:
                with anyio.fail_after(CHECK_TIMEOUT_S):
                    reason = await check()
            except TimeoutError:
                reason = f"no answer within {CHECK_TIMEOUT_S}s"
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if reason is not None:
                found[i] = f"{name}: {reason}"

        async with anyio.create_task_group() as tg:
            for i, (name, check) in enumerate(self._checks):
                tg.start_soon(judge, i, name, check)
        return [reason for reason in found if reason is not None]


async def _ping(redis: Redis) -> str | None:
    return None if await redis.ping() else "no PONG"


class Started:
    """A Service placed last: the role is ready once every service before it started, and stops
    being ready as soon as shutdown begins (it is stopped first), so load balancers drain it."""

    def __init__(self, health: Health) -> None:
        self._health = health
        self._stopped = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._health.started = True
        task_status.started()
        await self._stopped.wait()

    def stop(self) -> None:
        self._health.stopping = True
        self._stopped.set()


def ops_routes(health: Health, metrics: Metrics) -> list[BaseRoute]:
    async def livez(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def readyz(request: Request) -> Response:
        reasons = await health.reasons()
        if reasons:
            return JSONResponse({"ready": False, "reasons": reasons}, status_code=503)
        return JSONResponse({"ready": True})

    async def scrape(request: Request) -> Response:
        if not metrics.enabled:  # a problem response, by the app's exception handlers
            raise Rejected(Reason.NOT_FOUND, "metrics are off (NOTIFIER_METRICS_ENABLED)")
        return Response(await metrics.render(), media_type=PROMETHEUS_TEXT)

    return [
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", scrape, methods=["GET"]),
    ]


def ops_app(
    health: Health,
    metrics: Metrics,
    more: Sequence[BaseRoute] = (),
    exception_handlers: Mapping[Any, ExceptionHandler] | None = None,
) -> Starlette:
    """The HTTP app of the roles that serve nothing else (worker, jobs)."""
    return http_app([*ops_routes(health, metrics), *more], exception_handlers)


def http_app(
    routes: Sequence[BaseRoute], exception_handlers: Mapping[Any, ExceptionHandler] | None = None
) -> Starlette:
    """Every role's Starlette app. `/path/` is not redirected to `/path` (Starlette's default
    answers 307 with a Location built from the client's Host header): a path no route takes is
    a 404 problem, trailing slash or not."""
    app = Starlette(routes=routes, exception_handlers=exception_handlers)
    app.router.redirect_slashes = False
    return app
