"""Error responses: every refusal is JSON `{"error": reason, "detail": ..., "pointer": ...}`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

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


async def on_rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Rejected)
    return problem(exc)


def storage_down() -> JSONResponse:
    return problem(Rejected(Reason.UNAVAILABLE, "storage unavailable, retry shortly"))


async def on_redis_down(request: Request, exc: Exception) -> Response:
    return storage_down()
