"""The body of every error response: an RFC 9457 problem (`application/problem+json`: type,
title, status, detail) with the product's reason as `error` and a JSON pointer into the input as
`pointer` (the API's responses: notifier/api/problems.py; the gateway's refused handshakes)."""

from __future__ import annotations

from typing import Final

from .errors import CODES, Reason

MEDIA_TYPE: Final = "application/problem+json"
TYPE_PREFIX: Final = "urn:notifier:problem:"  # + the reason: stable, and the same as `error`
TITLES: Final[dict[Reason, str]] = {
    Reason.MALFORMED: "Malformed request",
    Reason.INVALID: "Request breaks the contract",
    Reason.TOO_LATE: "Event older than the views' horizon",
    Reason.TOO_LARGE: "Request too large",
    Reason.UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
    Reason.UNAUTHORIZED: "Not authenticated",
    Reason.FORBIDDEN: "Not allowed",
    Reason.CONFLICT: "Event id reused with a different body",
    Reason.DUPLICATE: "Already done",
    Reason.NOT_FOUND: "Not found",
    Reason.METHOD_NOT_ALLOWED: "Method not allowed",
    Reason.OVERLOADED: "Too many requests in flight",
    Reason.BACKLOG: "Delivery is behind; retry later",
    Reason.UNAVAILABLE: "Storage unavailable",
    Reason.AUTH_TIMEOUT: "Authentication took too long",
    Reason.TOKEN_EXPIRED: "Token expired",
    Reason.SLOW_CONSUMER: "Client too slow",
    Reason.CURSOR_EXPIRED: "Cursor too old",
    Reason.SHUTTING_DOWN: "Shutting down",
    Reason.CLAIMED: "Claimed by another moderator",
    Reason.DECIDED: "Already decided",
    Reason.INTERNAL: "Internal error",
    Reason.RATE_LIMITED: "Too many requests; retry later",
}


def body_of(reason: Reason, detail: str, pointer: str = "") -> dict[str, object]:
    """The problem object for `reason` (callers may add their own extension members)."""
    body: dict[str, object] = {
        "type": TYPE_PREFIX + reason.value,
        "title": TITLES.get(reason, reason.value.replace("_", " ").capitalize()),
        "status": CODES[reason].http,
        "detail": detail,
        "error": reason.value,
    }
    if pointer:
        body["pointer"] = pointer
    return body
