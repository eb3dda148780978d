"""The moderator API's answers as types, for the OpenAPI document (notifier/openapi.py); the
contract test checks every live answer against them."""

from __future__ import annotations

import msgspec

from .records import Ban, Item


class ItemPage(msgspec.Struct):
    items: list[Item]
    next: int | None


class ItemView(msgspec.Struct):
    item: Item
    actor_banned: bool


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
