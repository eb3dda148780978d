"""Service credentials for ingest: per-service API keys, compared in constant time."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from notifier.runtime import tokens
from notifier.runtime.settings import ServiceKey
from schemas.errors import Reason, Rejected


def authenticate(request: Request, services: tuple[ServiceKey, ...]) -> ServiceKey:
    presented = tokens.bearer(request.headers.get("authorization", ""), "service key")
    match = None
    given = presented.encode()
    for service in services:  # no early exit: every key is compared
        if hmac.compare_digest(given, service.key.encode()):
            match = service
    if match is None:
        raise Rejected(Reason.UNAUTHORIZED, "unknown service key")
    return match
