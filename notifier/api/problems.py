"""Error responses: every refusal is JSON `{"error": reason, "detail": ..., "pointer": ...}`."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from feeds.cluster import CLUSTER_UNAVAILABLE
from schemas.errors import Reason, Rejected

RETRY_AFTER_S = "1"


def problem(exc: Rejected, *, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, str] = {"error": exc.reason.value, "detail": exc.detail}
    if exc.pointer:
        body["pointer"] = exc.pointer
    if exc.http_status == 503:
        headers = {"Retry-After": RETRY_AFTER_S, **(headers or {})}
    if exc.reason is Reason.UNAUTHORIZED:
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


# What a handler may raise to refuse a request: each has its problem response in refusal().
REFUSALS = (Rejected, RedisConnectionError, RedisTimeoutError, *CLUSTER_UNAVAILABLE)


def refusal(exc: Exception) -> JSONResponse:
    """The problem response for one of REFUSALS (the API's front route and its Starlette
    exception handlers answer through this one mapping)."""
    if isinstance(exc, Rejected):
        return problem(exc)
    return problem(Rejected(Reason.UNAVAILABLE, "storage unavailable, retry shortly"))


async def on_refusal(request: Request, exc: Exception) -> Response:
    return refusal(exc)
