"""The audit trail's records and their hash chain: each record carries the hash of the one
before it, so an edited, inserted or deleted record breaks the chain where it happened.
`verify` is pure; the queue appends records in the same MULTI as the change they describe."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

GENESIS: Final = "0" * 64  # the `prev` of the first record


class AuditRecord(msgspec.Struct, frozen=True):
    """Who (and in which role) did what to which item, the item before and after, and why."""

    at_ms: int
    who: str
    role: str
    action: str  # approve | reject | ban | drop
    item: str  # review item id; "" for a ban
    actor: str  # whose content it was, or who was banned
    before: dict[str, str]
    after: dict[str, str]
    reason: str
    request: str  # the interaction (HTTP request) id


@dataclass(frozen=True, slots=True)
class Link:
    """One stored record: the stream entry id, the record's canonical JSON, and its chain."""

    entry: str
    body: bytes
    prev: str
    hash: str

    def record(self) -> AuditRecord:
        return msgspec.json.decode(self.body, type=AuditRecord)


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    checked: int
    broken_at: str | None = None  # the first entry that does not fit the chain
    problem: str = ""


def encode(record: AuditRecord) -> bytes:
    return msgspec.json.encode(record)


def chain_hash(prev: str, body: bytes) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + body).hexdigest()


def verify(links: Sequence[Link], head: str | None) -> Verification:
    """Check every link against its predecessor and its own body, and the last against `head`
    (the separately stored anchor, which catches a truncated tail)."""
    prev = GENESIS
    for n, link in enumerate(links):
        if link.prev != prev:
            return Verification(False, n, link.entry, "does not follow the record before it")
        if chain_hash(link.prev, link.body) != link.hash:
            return Verification(False, n, link.entry, "content does not match its hash")
        prev = link.hash
    expected = head or GENESIS
    if prev != expected:
        where = links[-1].entry if links else None
        return Verification(False, len(links), where, "the trail ends before the recorded head")
    return Verification(True, len(links))
