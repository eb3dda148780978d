"""The ledger checker: it must see a dropped and a doubled notification, and compute reach right."""

from __future__ import annotations

from loadtest.ledger import Ledger, Receipts, Status, check


def ledger_of(*events: tuple[tuple[int, ...], Status]) -> Ledger:
    ledger = Ledger()
    for recipients, status in events:
        entry = ledger.add(recipients, scheduled_ns=1_000)
        entry.sent_ns, entry.acked_ns, entry.status = 2_000, 3_000, status
    return ledger


def everything(ledger: Ledger) -> Receipts:
    receipts = Receipts()
    for entry in ledger.entries:
        for user in entry.recipients:
            receipts.add(user, entry.seq, 10_000 + entry.seq)
    return receipts


def test_complete_delivery_has_reach_one() -> None:
    ledger = ledger_of(((1, 2, 3), "accepted"), ((2, 4), "accepted"))
    verdict = check(ledger, everything(ledger))
    assert (verdict.expected, verdict.received, verdict.reach) == (5, 5, 1.0)
    assert verdict.ok
    assert list(verdict.received_ns) == [10_000, 10_000, 10_000, 10_001, 10_001]
    assert set(verdict.sent_ns) == {2_000}


def test_a_dropped_notification_is_lost() -> None:
    ledger = ledger_of(((1, 2, 3), "accepted"), ((2, 4), "accepted"))
    receipts = Receipts()
    for user, seq in [(1, 0), (2, 0), (3, 0), (2, 1)]:  # user 4 never got event 1
        receipts.add(user, seq, 5_000)
    verdict = check(ledger, receipts)
    assert (verdict.lost, verdict.received, verdict.expected) == (1, 4, 5)
    assert verdict.reach == 4 / 5
    assert verdict.lost_examples == [(4, 1)]
    assert not verdict.ok


def test_a_doubled_notification_is_duplicated() -> None:
    ledger = ledger_of(
        ((1, 2), "accepted"),
    )
    receipts = everything(ledger)
    receipts.add(2, 0, 20_000)  # user 2 got event 0 twice
    verdict = check(ledger, receipts)
    assert (verdict.duplicated, verdict.lost, verdict.reach) == (1, 0, 1.0)
    assert verdict.duplicated_examples == [(2, 0)]
    assert list(verdict.received_ns) == [10_000, 10_000]  # latency counts the first copy
    assert not verdict.ok


def test_a_notification_for_someone_else_is_unexpected() -> None:
    ledger = ledger_of(((1,), "accepted"), ((2,), "rejected"))
    receipts = everything(ledger)  # includes user 2 receiving the rejected event
    receipts.add(9, 0, 10_000)  # and user 9 receiving an event meant for user 1
    verdict = check(ledger, receipts)
    assert (verdict.expected, verdict.unexpected, verdict.lost) == (1, 2, 0)
    assert not verdict.ok


def test_indeterminate_posts_are_neither_expected_nor_unexpected() -> None:
    ledger = ledger_of(((1,), "error"), ((2,), "error"), ((3,), "refused"))
    receipts = Receipts()
    receipts.add(1, 0, 10_000)  # the timed-out POST had landed after all
    verdict = check(ledger, receipts)
    assert (verdict.expected, verdict.recovered, verdict.unexpected, verdict.lost) == (0, 1, 0, 0)
    assert verdict.reach == 1.0
    assert verdict.ok


def test_duplicate_verdicts_of_ingest_still_count_as_expected() -> None:
    ledger = ledger_of(
        ((1, 2), "duplicate"),
    )
    assert ledger.expected_pairs() == 2
    assert check(ledger, Receipts()).lost == 2
