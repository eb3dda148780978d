"""The rules' memory: how many comments and mentions an actor sent in the last minute (in their
content index: content.py), and to how many targets one text went (sorted sets by target).
Keyed by the event's position and by target, timed by acceptance (server time), so counting a
redelivered or replayed event again changes nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from feeds.scripts import Command, Query
from schemas import keys

from .content import ContentIndex
from .rules import Signals

MIN_DUPLICATE_CHARS: Final = 12  # 'thanks!' and 'nice' are said to everyone: not spam


@dataclass(frozen=True, slots=True)
class Observation:
    position: str  # in the event log: PARTITION/ENTRY
    first_position: str  # a redriven dead letter's first append ('' for any other event)
    actor: str
    accepted_ms: int
    canonical_text: str
    targets: tuple[str, ...]


def text_key(canonical_text: str) -> str | None:
    if len(canonical_text.replace(" ", "")) < MIN_DUPLICATE_CHARS:
        return None
    return hashlib.blake2b(canonical_text.encode(), digest_size=12).hexdigest()


class ActivityCounters:
    """The only code that touches `moddup:` keys; the velocity count lives in the actor's
    content index (content.py)."""

    def __init__(self, content: ContentIndex, *, duplicate_window_ms: int) -> None:
        self._content = content
        self._dup_window_ms = duplicate_window_ms

    def observe(self, seen: Sequence[Observation]) -> Query[list[Signals]]:
        """Record `seen` and return each one's counts (itself included), to `ask`."""
        dup_keys = [text_key(o.canonical_text) for o in seen]
        commands: list[Command] = []
        counts: list[tuple[int, int | None, int]] = []  # per observation: where its replies are, its targets
        for o, dup in zip(seen, dup_keys, strict=True):
            recent = len(commands)
            commands.append(self._content.count(o.actor, o.position, o.first_position))
            targets, sent = None, dict.fromkeys(o.targets, o.accepted_ms)
            if dup is not None:
                targets = len(commands) + 2
                commands += _count(keys.mod_duplicates(dup), sent, o, self._dup_window_ms)
            counts.append((recent, targets, len(sent)))

        def parse(replies: Sequence[Any]) -> list[Signals]:
            return [
                Signals(recent_events=int(replies[r]), same_text_targets=_sent_again(replies, t, own))
                for r, t, own in counts
            ]

        return Query(commands, parse, self._content.scripts)


def _sent_again(replies: Sequence[Any], at: int | None, own: int) -> int:
    """The text's distinct targets in the window (replies[at]), or 0 if this event alone sent it
    to them: one post that mentions eight friends is not spam, the same text sent again is."""
    if at is None:
        return 0
    targets = int(replies[at])
    return targets if targets > own else 0


def _count(key: str, members: dict[str, int], o: Observation, window_ms: int) -> list[Command]:
    start = o.accepted_ms - window_ms
    scored = [part for member, score in members.items() for part in (score, member)]
    return [
        ("ZADD", key, *scored),
        ("ZREMRANGEBYSCORE", key, "-inf", f"({start}"),
        ("ZCOUNT", key, f"({start}", o.accepted_ms),
        ("PEXPIRE", key, window_ms * 2),
    ]
