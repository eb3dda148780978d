"""Error responses: RFC 9457 problem details (`application/problem+json`: type, title, status,
detail) with the product's reason as `error` and a JSON pointer into the input as `pointer`."""

from __future__ import annotations

import re
from typing import Final

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from feeds.cluster import CLUSTER_UNAVAILABLE
from schemas.errors import NoCredentials, Reason, Rejected
from schemas.problems import MEDIA_TYPE, body_of

RETRY_AFTER_S = "1"
REALM = "notifier"
_NOT_IN_DESCRIPTION: Final = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")  # RFC 6750 §3 error_description


def problem(exc: Rejected, *, headers: dict[str, str] | None = None) -> JSONResponse:
    body = body_of(exc.reason, exc.detail, exc.pointer)
    if exc.http_status in (429, 503):
        after = RETRY_AFTER_S if exc.retry_after_s is None else str(exc.retry_after_s)
        headers = {"Retry-After": after, **(headers or {})}
    if exc.http_status == 401:
        headers = {"WWW-Authenticate": challenge(exc), **(headers or {})}
    return JSONResponse(body, status_code=exc.http_status, headers=headers, media_type=MEDIA_TYPE)


def challenge(exc: Rejected) -> str:
    """The `WWW-Authenticate` of a 401 (RFC 6750 §3): no error code when no credentials were
    sent, else `invalid_token` (unknown, malformed or expired) with the refusal's detail."""
    if isinstance(exc, NoCredentials):
        return f'Bearer realm="{REALM}"'
    description = _NOT_IN_DESCRIPTION.sub("", exc.detail)
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'


# What a handler may raise to refuse a request: each has its problem response in refusal().
# (Redis at maxmemory refuses writes; a replica just promoted, or one written to, is read-only:
# both pass, and the request may be retried.)
REFUSALS = (
    Rejected,
    RedisConnectionError,
    RedisTimeoutError,
    OutOfMemoryError,
    ReadOnlyError,
    *CLUSTER_UNAVAILABLE,
)


def refusal(exc: Exception) -> JSONResponse:
    """The problem response for one of REFUSALS (the API's front route and its Starlette
    exception handlers answer through this one mapping)."""
    if isinstance(exc, Rejected):
        return problem(exc)
    if isinstance(exc, OutOfMemoryError):
        return problem(Rejected(Reason.UNAVAILABLE, "storage is full (Redis at maxmemory); retry later"))
    if isinstance(exc, ReadOnlyError):
        return problem(Rejected(Reason.UNAVAILABLE, "storage is read-only (failing over?); retry shortly"))
    return problem(Rejected(Reason.UNAVAILABLE, "storage unavailable, retry shortly"))


async def on_refusal(request: Request, exc: Exception) -> Response:
    return refusal(exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route: 404, wrong method: 405) as problems, not plain text."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette joins a set: sort it, so the answer does not change between processes
        allowed = headers["Allow"] = ", ".join(sorted(headers.get("Allow", "").split(", ")))
        detail = f"{request.method} is not allowed on {request.url.path} (allowed: {allowed})"
        return problem(Rejected(Reason.METHOD_NOT_ALLOWED, detail), headers=headers)
    if exc.status_code == 404:
        return problem(Rejected(Reason.NOT_FOUND, f"nothing at {request.url.path}"), headers=headers)
    reason = Reason.INTERNAL if exc.status_code >= 500 else Reason.MALFORMED
    return problem(Rejected(reason, str(exc.detail)), headers=headers)


def internal() -> JSONResponse:
    return problem(Rejected(Reason.INTERNAL, "the server failed to handle this request"))


async def on_disconnect(request: Request, exc: Exception) -> Response:
    """The client went (or was cut off: notifier/runtime/httpguard.py) before its body was whole:
    nobody reads the answer, and it is no error of ours to log."""
    return problem(Rejected(Reason.MALFORMED, "the request body was cut off"))


async def on_error(request: Request, exc: Exception) -> Response:
    """A bug: the client gets a problem, the log gets the traceback (Starlette re-raises it)."""
    return internal()


EXCEPTION_HANDLERS: Final = {
    **dict.fromkeys(REFUSALS, on_refusal),
    HTTPException: on_http_exception,
    ClientDisconnect: on_disconnect,
    Exception: on_error,
}
