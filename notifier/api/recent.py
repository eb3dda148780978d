"""The append script calls of the events this api accepted lately, kept until Redis has surely
written them to disk, so they can be appended again if a Redis crash took them back."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from feeds.scripts import Command


@dataclass(slots=True)
class Kept:
    at_s: float  # monotonic: accepted, or appended again
    at_ms: int  # wall clock, when accepted (for reports)
    partition: int
    command: Command


@dataclass(frozen=True, slots=True)
class Dropped:
    """Accepted events dropped from the buffer by its count limit before Redis was known to keep them."""

    first_ms: int
    last_ms: int
    count: int


class RecentAppends:
    """Oldest first. An event leaves once the same Redis run was seen alive `keep_s` after it
    was accepted (`confirm`): by then AOF `everysec` has written it. A Redis outage keeps
    everything until the restart is noticed. Past `keep_events`, the oldest go first, and are
    remembered as a window that is not covered."""

    def __init__(self, keep_s: float, keep_events: int) -> None:
        self._keep_s = keep_s
        self._max = keep_events
        self._kept: deque[Kept] = deque()
        self._dropped: Dropped | None = None
        self._dropped_at_s = 0.0  # monotonic acceptance time of the newest dropped event
        self.enabled = True

    def __len__(self) -> int:
        return len(self._kept)

    def add(self, partition: int, command: Command, at_ms: int) -> None:
        if not self.enabled:
            return
        kept = self._kept
        if len(kept) >= self._max:
            old = kept.popleft()
            d = self._dropped
            self._dropped = Dropped(d.first_ms if d else old.at_ms, old.at_ms, (d.count if d else 0) + 1)
            self._dropped_at_s = old.at_s
        kept.append(Kept(time.monotonic(), at_ms, partition, command))

    def confirm(self, alive_at_s: float) -> None:
        """The Redis run that took these appends was alive at `alive_at_s` (monotonic)."""
        cutoff = alive_at_s - self._keep_s
        kept = self._kept
        while kept and kept[0].at_s <= cutoff:
            kept.popleft()
        if self._dropped is not None and self._dropped_at_s <= cutoff:
            self._dropped = None

    def snapshot(self) -> list[Kept]:
        return list(self._kept)

    def appended_again(self, kept: list[Kept]) -> None:
        """`kept` were just appended again (on a new run): they wait for it to write them."""
        now_s = time.monotonic()
        for k in kept:
            k.at_s = now_s

    def take_dropped(self) -> Dropped | None:
        dropped, self._dropped = self._dropped, None
        return dropped
