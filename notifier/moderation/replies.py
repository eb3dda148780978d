"""The moderator API's answers as types, for the OpenAPI document (notifier/openapi.py); the
contract test checks every live answer against them."""

from __future__ import annotations

import msgspec

from .records import Ban, Enforcement, Item, Recent
from .reports import Mine


class ItemPage(msgspec.Struct):
    items: list[Item]
    next: int | None


class FiledReport(msgspec.Struct):
    reporter: str
    reason: str
    note: str
    at_ms: int


class ItemView(msgspec.Struct):
    """One item with its actor's ban, the event's recipients and post ("" for an actor item),
    the users' reports and the actor's latest items."""

    item: Item
    actor_banned: bool
    ban: Ban | None
    recipients: list[str]
    post: str
    reports: list[FiledReport]
    history: list[Recent]


class ItemReply(msgspec.Struct):
    item: Item


class Decision(msgspec.Struct):
    item: Item
    changed: bool
    effect: str | None


class BulkResult(msgspec.Struct):
    id: str
    status: str
    error: str | None = None
    detail: str | None = None


class BulkReply(msgspec.Struct):
    results: list[BulkResult]


class Bans(msgspec.Struct):
    bans: list[Ban]


class BanReply(msgspec.Struct):
    ban: Ban
    rejected: list[str]


class AuditLink(msgspec.Struct):
    id: str
    record: msgspec.Raw
    prev: str
    hash: str


class AuditPage(msgspec.Struct):
    records: list[AuditLink]
    next: str | None


class AuditCheck(msgspec.Struct):
    ok: bool
    checked: int
    broken_at: str | None
    problem: str


class Lifted(msgspec.Struct):
    lifted: Ban


class DroppedEvent(msgspec.Struct):
    id: str
    accepted_ms: int


class DroppedEvents(msgspec.Struct):
    """Events of the actor the fan-out dropped for the ban: how many, and the latest."""

    count: int
    events: list[DroppedEvent]


class ActorView(msgspec.Struct):
    actor: str
    ban: Ban | None
    enforcement: list[Enforcement]
    dropped: DroppedEvents
    history: list[Recent]


class ReportFiled(msgspec.Struct):
    """`items`: the review items the report went to; `new` false (200): the caller had reported
    them all already."""

    items: list[str]
    new: bool


class MyReports(msgspec.Struct):
    reports: list[Mine]
