"""The ledger of what was sent and the checker of what was received (Jepsen-style): per
(recipient, event) pair, `lost` = accepted but never received, `duplicated` = received more than
once, `unexpected` = received but never accepted for that user. Reach = received ÷ expected."""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Final, Literal

Status = Literal["pending", "accepted", "duplicate", "rejected", "refused", "error", "skipped"]
DELIVERED_STATUSES: Final = frozenset({"accepted", "duplicate"})  # a 2xx verdict: must arrive
INDETERMINATE: Final = frozenset({"error", "pending"})  # may or may not have been appended
_USER_BITS: Final = 24  # pair key = seq << 24 | user: users < 16.7 M


@dataclass(slots=True)
class Sent:
    """One event: whom it must reach (online recipients only) and what happened to its POST."""

    seq: int
    recipients: tuple[int, ...]
    scheduled_ns: int
    sent_ns: int = 0
    acked_ns: int = 0
    status: Status = "pending"


@dataclass(slots=True)
class Ledger:
    entries: list[Sent] = field(default_factory=list)  # entries[seq].seq == seq

    def add(self, recipients: tuple[int, ...], scheduled_ns: int) -> Sent:
        sent = Sent(len(self.entries), recipients, scheduled_ns)
        self.entries.append(sent)
        return sent

    def counts(self) -> Counter[str]:
        return Counter(e.status for e in self.entries)

    def expected_pairs(self) -> int:
        return sum(len(e.recipients) for e in self.entries if e.status in DELIVERED_STATUSES)


@dataclass(slots=True)
class Receipts:
    """What the WebSocket clients saw: one row per change frame naming one of our events."""

    users: array[int] = field(default_factory=lambda: array("q"))
    seqs: array[int] = field(default_factory=lambda: array("q"))
    received_ns: array[int] = field(default_factory=lambda: array("q"))

    def add(self, user: int, seq: int, received_ns: int) -> None:
        self.users.append(user)
        self.seqs.append(seq)
        self.received_ns.append(received_ns)

    def extend(self, other: Receipts) -> None:
        self.users.extend(other.users)
        self.seqs.extend(other.seqs)
        self.received_ns.extend(other.received_ns)

    def __len__(self) -> int:
        return len(self.seqs)


@dataclass(slots=True)
class Verdict:
    expected: int  # (online recipient, accepted event) pairs
    received: int  # of those, received at least once
    lost: int
    duplicated: int  # extra copies of expected pairs
    unexpected: int  # pairs received that were never accepted for that user
    recovered: int  # pairs of events with an indeterminate POST result that arrived anyway
    lost_examples: list[tuple[int, int]]  # (user, seq), a few
    lost_pairs: list[tuple[int, int]]  # (user, seq), all
    duplicated_examples: list[tuple[int, int]]
    # first receipt of each expected pair: receive time and its event's send/schedule/ack times
    received_ns: array[int] = field(default_factory=lambda: array("q"))
    sent_ns: array[int] = field(default_factory=lambda: array("q"))
    scheduled_ns: array[int] = field(default_factory=lambda: array("q"))
    acked_ns: array[int] = field(default_factory=lambda: array("q"))

    @property
    def reach(self) -> float:
        return self.received / self.expected if self.expected else 1.0

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.unexpected == 0


def check(ledger: Ledger, receipts: Receipts, *, examples: int = 10) -> Verdict:
    seen: Counter[int] = Counter()
    first: dict[int, int] = {}
    for user, seq, at in zip(receipts.users, receipts.seqs, receipts.received_ns, strict=True):
        key = seq << _USER_BITS | user
        seen[key] += 1
        if key not in first or at < first[key]:
            first[key] = at
    verdict = Verdict(0, 0, 0, 0, 0, 0, [], [], [])
    expected: set[int] = set()
    for entry in ledger.entries:
        if entry.status not in DELIVERED_STATUSES:
            continue
        for user in entry.recipients:
            key = entry.seq << _USER_BITS | user
            expected.add(key)
            verdict.expected += 1
            copies = seen.get(key, 0)
            if copies == 0:
                verdict.lost += 1
                verdict.lost_pairs.append((user, entry.seq))
                if len(verdict.lost_examples) < examples:
                    verdict.lost_examples.append((user, entry.seq))
                continue
            verdict.received += 1
            if copies > 1:
                verdict.duplicated += copies - 1
                if len(verdict.duplicated_examples) < examples:
                    verdict.duplicated_examples.append((user, entry.seq))
            verdict.received_ns.append(first[key])
            verdict.sent_ns.append(entry.sent_ns)
            verdict.scheduled_ns.append(entry.scheduled_ns)
            verdict.acked_ns.append(entry.acked_ns)
    for key, copies in seen.items():
        if key in expected:
            continue
        seq, user = key >> _USER_BITS, key & ((1 << _USER_BITS) - 1)
        entry_ok = 0 <= seq < len(ledger.entries)
        if (
            entry_ok
            and ledger.entries[seq].status in INDETERMINATE
            and user in ledger.entries[seq].recipients
        ):
            verdict.recovered += 1
            verdict.duplicated += copies - 1
        else:
            verdict.unexpected += copies
    return verdict
