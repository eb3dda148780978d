"""The error root, machine-readable reasons, and the one table mapping reasons to HTTP and WS codes."""

from __future__ import annotations

from enum import StrEnum
from typing import Final, NamedTuple


class Reason(StrEnum):
    MALFORMED = "malformed"  # not JSON, or not the shape the contract requires
    INVALID = "invalid"  # well-formed JSON that breaks the contract
    TOO_LATE = "too_late"  # an event older than the views' horizon (feeds/horizon.py)
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    CONFLICT = "conflict"  # an event id reused with a different body
    DUPLICATE = "duplicate"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    OVERLOADED = "overloaded"  # too many requests in flight here
    BACKLOG = "backlog"  # fan-out is behind or Redis memory is nearly full: accept later
    UNAVAILABLE = "unavailable"
    AUTH_TIMEOUT = "auth_timeout"
    TOKEN_EXPIRED = "token_expired"
    SLOW_CONSUMER = "slow_consumer"
    CURSOR_EXPIRED = "cursor_expired"
    SHUTTING_DOWN = "shutting_down"
    CLAIMED = "claimed"  # a review item under another moderator's live claim
    DECIDED = "decided"  # a review item already decided otherwise (a rejection is final)
    INTERNAL = "internal"  # a bug on our side: the request may be retried, the log says more
    RATE_LIMITED = "rate_limited"  # too many of this kind of request from one user; retry later


class WireCodes(NamedTuple):
    http: int
    ws_close: int


CODES: Final[dict[Reason, WireCodes]] = {
    Reason.MALFORMED: WireCodes(400, 4400),
    Reason.INVALID: WireCodes(422, 4422),
    Reason.TOO_LATE: WireCodes(422, 4422),
    Reason.TOO_LARGE: WireCodes(413, 4413),
    Reason.UNSUPPORTED_MEDIA_TYPE: WireCodes(415, 4415),
    Reason.UNAUTHORIZED: WireCodes(401, 4401),
    Reason.FORBIDDEN: WireCodes(403, 4403),
    Reason.CONFLICT: WireCodes(422, 4422),
    Reason.DUPLICATE: WireCodes(409, 4409),
    Reason.NOT_FOUND: WireCodes(404, 4404),
    Reason.METHOD_NOT_ALLOWED: WireCodes(405, 4405),
    Reason.RATE_LIMITED: WireCodes(429, 4429),
    Reason.OVERLOADED: WireCodes(503, 4429),
    Reason.BACKLOG: WireCodes(503, 4503),
    Reason.UNAVAILABLE: WireCodes(503, 4503),
    Reason.AUTH_TIMEOUT: WireCodes(408, 4408),
    Reason.TOKEN_EXPIRED: WireCodes(401, 4419),
    Reason.SLOW_CONSUMER: WireCodes(503, 4504),
    Reason.CURSOR_EXPIRED: WireCodes(410, 4410),
    Reason.SHUTTING_DOWN: WireCodes(503, 4505),
    Reason.CLAIMED: WireCodes(409, 4409),
    Reason.DECIDED: WireCodes(409, 4409),
    Reason.INTERNAL: WireCodes(500, 4500),
}


class NotifierError(Exception):
    """Root of every error the product raises on purpose."""


class Rejected(NotifierError):
    """A request, event or frame refused for `reason`; `pointer` is a JSON pointer into the input."""

    def __init__(
        self, reason: Reason, detail: str, pointer: str = "", *, retry_after_s: int | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.pointer = pointer
        self.retry_after_s = retry_after_s  # when a retry may succeed, if known (429, 503)

    @property
    def http_status(self) -> int:
        return CODES[self.reason].http

    @property
    def ws_close_code(self) -> int:
        return CODES[self.reason].ws_close


class NoCredentials(Rejected):
    """401 for a request that presented no credentials at all: its challenge names no error
    (RFC 6750 §3.1), where a bad or expired one says `invalid_token`."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.UNAUTHORIZED, detail)


class ConfigError(NotifierError):
    """The environment describes a configuration the product refuses to run with."""
