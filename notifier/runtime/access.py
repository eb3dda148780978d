"""The outermost ASGI layer of every HTTP port: an `X-Request-ID` on every response (the
client's, or a new one), the id in the context of every log line of the request, and one access
line per HTTP request (logger `notifier.access`, INFO). WebSockets get the id in their log
context (their open/close lines come from the gateway session)."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import ACCESS_LOGGER, request_id, service

access_log = logging.getLogger(ACCESS_LOGGER)

_HEADER: Final = b"x-request-id"
_VALID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,128}")  # anything else is replaced: ids reach logs


def with_request_ids(app: ASGIApp) -> ASGIApp:
    # a generated id is this server's random prefix and a sequence number: unique across
    # processes in practice, and free of a random-bytes system call per request
    prefix, numbers = secrets.token_hex(6), itertools.count()

    def incoming(scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == _HEADER and _VALID.fullmatch(value):
                return str(value.decode("ascii"))
        return f"{prefix}-{next(numbers):x}"

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await app(scope, receive, send)
            return
        rid = incoming(scope)
        token, caller = request_id.set(rid), service.set("")
        try:
            if kind == "websocket":
                # no wrapper on a socket's send: it would cost a call on every pushed frame
                await app(scope, receive, send)
                return
            await _served(app, scope, receive, send, rid)
        finally:
            request_id.reset(token)
            service.reset(caller)

    return wrapped


async def _served(app: ASGIApp, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
    status = 0
    header = (_HEADER, rid.encode())

    async def sending(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            message["headers"] = [*message.get("headers", ()), header]
        await send(message)

    logged = access_log.isEnabledFor(logging.INFO)
    started = time.perf_counter() if logged else 0.0
    try:
        await app(scope, receive, sending)
    finally:
        if logged:
            client = scope.get("client")
            # the path only: a query string may carry a token
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            extra = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status or 500,
                "duration_ms": duration_ms,
                "client": client[0] if client else "",
            }
            access_log.info("%(method)s %(path)s %(status)d %(duration_ms)sms %(client)s", extra, extra=extra)
