"""What every part of the review queue shares: the Redis and ledger it works on, the item
states and their indexes, and an item's urgency."""

from __future__ import annotations

from typing import Final, Literal

from notifier.runtime.settings import ModerationSettings

from ..ledger import Ledger
from ..policy import Action
from ..records import Item
from ..urgency import urgency

Decision = Literal["approve", "reject"]
Order = Literal["arrival", "urgency"]

# the index each state (asked for, or stored) is listed in
INDEX_OF: Final = {"pending": "open", "claimed": "open", "open": "open", "approved": "approved"}
INDEX_OF_STORED: Final = {"pending": "open", "approved": "approved", "rejected": "rejected"}
STATES: Final = frozenset({"pending", "claimed", "open", "approved", "rejected"})
# every index an item may be listed in (keys.mod_index)
INDEXES: Final = ("all", "open", "approved", "rejected", "held", "urgent", "claimed")
REPORT: Final = "report"  # the action of an item that only people's reports put in the queue


def actor_item(actor: str) -> str:
    """The id of the review item for reports on an actor (no event id contains `~`)."""
    return f"actor~{actor}"


def urgency_of(item: Item) -> int:
    severity = max((v.score for v in item.verdicts), default=0.0)
    return urgency(held=item.action == Action.HOLD, severity=severity, reporters=item.reporters, seq=item.seq)


class QueueStore:
    def __init__(self, ledger: Ledger, settings: ModerationSettings) -> None:
        self._ledger = ledger
        self._redis = ledger.redis
        self._settings = settings
