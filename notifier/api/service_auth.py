"""Service credentials for ingest: per-service API keys, compared in constant time."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from notifier.runtime.settings import ServiceKey
from schemas.errors import Reason, Rejected


def authenticate(request: Request, services: tuple[ServiceKey, ...]) -> ServiceKey:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise Rejected(Reason.UNAUTHORIZED, "missing service key (Authorization: Bearer KEY)")
    match = None
    given = presented.strip().encode()
    for service in services:  # no early exit: every key is compared
        if hmac.compare_digest(given, service.key.encode()):
            match = service
    if match is None:
        raise Rejected(Reason.UNAUTHORIZED, "unknown service key")
    return match
