"""The review queue: a hash per item (keyed by its event id, or `actor~ID` for a reported actor),
indexes by state, by actor and by urgency, claims as expiring leases, and decisions committed
with their audit record and side effect in one MULTI. The only code that touches `mod:`,
`modq:`, `modseq:` and `modh:` keys: entering items (`intake`), reading them (`reads`), and
moderators' claims and decisions (`decisions`), over what they share (`store`)."""

from __future__ import annotations

from .decisions import QueueDecisions
from .intake import QueueIntake
from .store import REPORT, STATES, Decision, Order, actor_item

__all__ = ["REPORT", "STATES", "Decision", "Order", "ReviewQueue", "actor_item"]


class ReviewQueue(QueueIntake, QueueDecisions):
    """The whole queue, as the screener, the API, the jobs and the CLI use it."""
