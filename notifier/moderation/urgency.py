"""The order a moderator works the open queue in: held before flagged, then severity, then how
many people reported it, then waiting time. One sorted-set score, ascending = most urgent."""

from __future__ import annotations

from typing import Final

_TIME_BITS: Final = 41  # the arrival sequence; 2**41 items is more than any queue sees
_CLASSES: Final = 4095  # 12 bits of class: held (1) x severity 0..10 (4) x reporters 0..127 (7)
MAX_REPORTERS: Final = 127


def urgency(*, held: bool, severity: float, reporters: int, seq: int) -> int:
    """Below 2**53, so the score is exact as a double."""
    bucket = max(0, min(10, round(severity * 10)))
    rank = ((int(held) * 16 + bucket) * (MAX_REPORTERS + 1)) + min(reporters, MAX_REPORTERS)
    return ((_CLASSES - rank) << _TIME_BITS) + seq
