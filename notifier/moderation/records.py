"""The review queue's records as stored and served: items (with the actor's context), the
moderator acting, outcomes of decisions, pages and bans; decoding an item from its hash."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import msgspec

from schemas.errors import Reason, Rejected
from schemas.events import Comment, Event, Mention

from .rules import Verdict


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Moderator:
    user: str
    role: str
    request: str = ""  # the interaction id recorded in the audit trail


POLICY: Final = Moderator("policy", "system")


class Recent(msgspec.Struct, frozen=True):
    id: str
    action: str
    state: str
    rules: list[str]
    created_ms: int
    text: str = ""


class Context(msgspec.Struct, frozen=True):
    """The actor's history as the item was recorded: earlier review items, the latest first."""

    earlier_items: int = 0
    recent: list[Recent] = []
    banned: bool = False


class Item(msgspec.Struct, frozen=True):
    id: str
    seq: int
    type: str
    actor: str
    text: str
    action: str  # what the policy did: flag | hold | drop
    verdicts: list[Verdict]
    context: Context
    state: str  # pending | claimed | approved | rejected
    delivered: bool  # its notifications were applied to the recipients' inboxes
    created_ms: int
    position: str  # the event-log entry as ingest reports it: PARTITION/ENTRY ("" for an actor)
    event: msgspec.Raw
    claimed_by: str = ""
    claim_until_ms: int = 0
    decided_by: str = ""
    decided_at_ms: int = 0
    note: str = ""
    version: int = 0
    reporters: int = 0  # distinct users who reported it
    reasons: dict[str, int] = {}  # report reason -> how many reporters gave it


@dataclass(frozen=True, slots=True)
class Outcome:
    item: Item
    changed: bool
    effect: str | None = None  # `deliver|ID` or `recall|ID`, now in the outbox


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Item]
    next: int | None  # `after` for the next page, None at the end


class Ban(msgspec.Struct, frozen=True):
    actor: str
    at_ms: int
    by: str
    reason: str
    until_ms: int = 0  # a suspension ends here; 0: a ban, until lifted
    # banned with their content removed: what they sent before the ban and the fan-out had not
    # screened yet is dropped too (screening.py), as the ban would have recalled it
    remove_content: bool = False

    def covers(self, accepted_ms: int) -> bool:
        """Whether an event accepted at `accepted_ms` falls under this ban or suspension."""
        return accepted_ms >= self.at_ms and (not self.until_ms or accepted_ms < self.until_ms)

    def window(self, now_ms: int) -> tuple[int, int]:
        """The time it covered [from, to), were it lifted at `now_ms`."""
        return self.at_ms, min(now_ms, self.until_ms) if self.until_ms else now_ms


class Enforcement(msgspec.Struct, frozen=True):
    """One ban, suspension or unban of an actor, as the actor's enforcement history keeps it."""

    action: str  # ban | suspend | unban
    at_ms: int
    by: str
    reason: str
    until_ms: int = 0


class Report(msgspec.Struct, frozen=True):
    reason: str
    note: str
    at_ms: int


class Stats(msgspec.Struct, frozen=True):
    """Counts per state and the oldest open item's wait: what the console shows and alerts read."""

    pending: int
    claimed: int
    held: int  # open items the policy held (nobody was notified yet)
    approved: int
    rejected: int
    oldest_open_ms: int  # when the oldest open item arrived; 0 when none is open
    oldest_wait_s: float
    dropped_for_bans: int  # events dropped in the fan-out because their actor was banned


def text_of(event: Event) -> str:
    return event.text if isinstance(event, Comment | Mention) else ""


def audience(event: Event) -> tuple[list[str], str]:
    """Who a comment or mention notified, and the post (thread) it belongs to."""
    if isinstance(event, Comment):
        return [event.owner], event.post
    if isinstance(event, Mention):
        return list(dict.fromkeys(event.users)), event.post
    return [], ""


def stored_fields(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def decode_item(raw: dict[bytes, bytes], now_ms: int) -> Item:
    f = stored_fields(raw)
    until = int(f.get("claim_until_ms") or 0)
    state = f["state"]
    if state == "pending" and until > now_ms:
        state = "claimed"
    return Item(
        id=f["id"],
        seq=int(f["seq"]),
        type=f["type"],
        actor=f["actor"],
        text=f.get("text", ""),
        action=f["action"],
        verdicts=msgspec.json.decode(f["verdicts"], type=list[Verdict]),
        context=msgspec.json.decode(f["context"], type=Context),
        state=state,
        delivered=f.get("delivered") == "1",
        created_ms=int(f["created_ms"]),
        position=f.get("position", ""),
        event=msgspec.Raw(raw[b"event"]),
        claimed_by=f.get("claimed_by", "") if state == "claimed" else "",
        claim_until_ms=until if state == "claimed" else 0,
        decided_by=f.get("decided_by", ""),
        decided_at_ms=int(f.get("decided_at_ms") or 0),
        note=f.get("note", ""),
        version=int(f.get("version") or 0),
        reporters=int(f.get("reporters") or 0),
        reasons=msgspec.json.decode(f["reasons"], type=dict[str, int]) if f.get("reasons") else {},
    )


def check_claim(item: Item, who: Moderator) -> None:
    """Whether `who` may claim or decide `item`: not one about themselves, nor one another
    moderator holds."""
    if item.actor == who.user:
        raise Rejected(Reason.FORBIDDEN, "a moderator cannot claim or decide an item about themselves")
    if item.state == "claimed" and item.claimed_by != who.user:
        raise Rejected(Reason.CLAIMED, f"claimed by {item.claimed_by} until {item.claim_until_ms} (ms)")


def matches(item: Item, state: str | None, reason: str | None) -> bool:
    if state == "open":
        if item.state not in {"pending", "claimed"}:
            return False
    elif state and item.state != state:
        return False
    return not reason or any(v.rule == reason for v in item.verdicts)
