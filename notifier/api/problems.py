"""Error responses: every refusal is JSON `{"error": reason, "detail": ..., "pointer": ...}`."""

from __future__ import annotations

import re
from typing import Final

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from feeds.cluster import CLUSTER_UNAVAILABLE
from schemas.errors import NoCredentials, Reason, Rejected

RETRY_AFTER_S = "1"
REALM = "notifier"
_NOT_IN_DESCRIPTION: Final = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")  # RFC 6750 §3 error_description


def problem(exc: Rejected, *, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, str] = {"error": exc.reason.value, "detail": exc.detail}
    if exc.pointer:
        body["pointer"] = exc.pointer
    if exc.http_status == 503:
        headers = {"Retry-After": RETRY_AFTER_S, **(headers or {})}
    if exc.http_status == 401:
        headers = {"WWW-Authenticate": challenge(exc), **(headers or {})}
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


def challenge(exc: Rejected) -> str:
    """The `WWW-Authenticate` of a 401 (RFC 6750 §3): no error code when no credentials were
    sent, else `invalid_token` (unknown, malformed or expired) with the refusal's detail."""
    if isinstance(exc, NoCredentials):
        return f'Bearer realm="{REALM}"'
    description = _NOT_IN_DESCRIPTION.sub("", exc.detail)
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'


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


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, or not this method) in the same format."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return problem(
            Rejected(Reason.METHOD_NOT_ALLOWED, "method not allowed here"), headers=dict(exc.headers or {})
        )
    return problem(Rejected(Reason.NOT_FOUND, "no such path"))


# the status codes Starlette itself refuses with (the router's), for on_http_exception
HTTP_REFUSALS = (404, 405)
