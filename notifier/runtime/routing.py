"""Routes whose endpoint depends on the method: one route per path, so that a 405 names every
method the path takes (Starlette answers a wrong method with the first route matching the path,
and two routes of one path each named only their own)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


def by_method(path: str, **endpoints: Endpoint) -> Route:
    """`by_method("/x", GET=read, PUT=write)`: HEAD goes where GET does."""

    async def endpoint(request: Request) -> Response:
        return await endpoints["GET" if request.method == "HEAD" else request.method](request)

    return Route(path, endpoint, methods=list(endpoints))
