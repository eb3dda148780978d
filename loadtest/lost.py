"""What became of the pairs the ledger counts as lost, asked of the product itself
(`notifier explain`, notifier/explain.py).

A pair is lost by the inbox cap's design when the change was never pushed: the recipient's
client saw their whole stream of changes (each change's number the one after the last, no
refetch: loadtest/clients.py), so nothing pushed to them went unseen, and explain finds the
event `capped_out` with no register left (a late event at or below the cap's floor of a full
inbox, README "The horizon", or one the cap dropped the moment it came in). Any other pair
is a loss to look into."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Final

from redis.asyncio import Redis

from loadtest.graph import user_id
from notifier.explain import Explainer
from notifier.runtime.settings import Settings

MAX_CHECKED: Final = 5_000  # pairs explained at most (each ~8 reads)
BY_DESIGN: Final = "capped_out, never pushed"


async def explain_lost(
    redis: Redis,
    settings: Settings,
    run_id: str,
    pairs: Sequence[tuple[int, int]],
    unseen: Collection[int],
) -> dict[str, int]:
    """How many of `pairs` ((user, seq), as the ledger has them) are in each state: BY_DESIGN;
    `not seen whole` (the user's client missed changes: cannot tell); otherwise explain's state,
    with `, pushed` when it says a change was published; `unknown` when the log no longer knows
    the event; `unchecked` past MAX_CHECKED."""
    explainer = Explainer(redis, settings)
    states: Counter[str] = Counter()
    for user, seq in pairs[:MAX_CHECKED]:
        if user in unseen:
            states["not seen whole"] += 1
            continue
        found = await explainer.explain(f"{run_id}.{seq}", user_id(user))
        if found is None or not found.recipients:
            states["unknown"] += 1
            continue
        recipient = found.recipients[0]
        if recipient.state == "capped_out" and recipient.pushed is None:
            states[BY_DESIGN] += 1
        else:
            states[recipient.state + (", pushed" if recipient.pushed else "")] += 1
    if len(pairs) > MAX_CHECKED:
        states["unchecked"] = len(pairs) - MAX_CHECKED
    return dict(states)
