"""The HTTP API's answers as types: what the OpenAPI document (notifier/openapi.py) describes and
tests/e2e/test_contract.py checks every live response against. Requests are typed where they are
decoded (events here in schemas/, the inbox and moderator bodies next to their routes)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec


class Problem(msgspec.Struct):
    """RFC 9457 problem details; `error` is the machine-readable reason, `pointer` a JSON pointer
    into the request where it applies."""

    type: Annotated[str, msgspec.Meta(description="urn:notifier:problem:REASON")]
    title: str
    status: int
    detail: str
    error: Annotated[str, msgspec.Meta(description="the reason, as in the README's tables")]
    pointer: str | None = None


class EventVerdict(msgspec.Struct):
    """One event's fate, in request order."""

    status: Literal["accepted", "duplicate", "rejected"]
    id: str | None = None
    position: Annotated[str | None, msgspec.Meta(description="PARTITION/STREAM-ID in the log")] = None
    error: str | None = None
    detail: str | None = None
    pointer: str | None = None


class IngestReply(msgspec.Struct):
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventVerdict]


class IngestRefused(msgspec.Struct):
    """Every event refused: a problem carrying the per-event verdicts."""

    type: str
    title: str
    status: int
    detail: str
    error: str
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventVerdict]
    pointer: str | None = None


class Group(msgspec.Struct):
    """One aggregated notification: `post`, `comment`, `text` where they apply."""

    id: str
    verb: str
    actors: list[str]
    count: int
    first_at: int
    last_at: int
    read: bool


class InboxPage(msgspec.Struct):
    groups: list[Group]
    unread: int
    cursor: Annotated[str, msgspec.Meta(description="opaque: open the WebSocket with it")]
    next: Annotated[str | None, msgspec.Meta(description="opaque: `before` for the next page")]


class Unread(msgspec.Struct):
    unread: int


class Marked(msgspec.Struct):
    marked: int
    unread: int


class Ready(msgspec.Struct):
    ready: bool
    reasons: list[str] | None = None  # with 503: what is not ready yet
