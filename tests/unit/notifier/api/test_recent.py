"""RecentAppends: what the api keeps to append again after a Redis crash, and when it lets go."""

from __future__ import annotations

import time

from notifier.api.recent import Dropped, RecentAppends


def command(n: int) -> tuple[str, ...]:
    return ("EVALSHA", "sha", "2", f"events-{n}", f"dedupe-{n}")


def test_events_stay_until_redis_was_seen_alive_long_enough_after_them() -> None:
    recent = RecentAppends(keep_s=5.0, keep_events=100)
    for n in range(3):
        recent.add(n % 2, command(n), 1_000 + n)
    now = time.monotonic()
    recent.confirm(now)  # however long Redis was down before: kept until seen alive after them
    assert [k.command for k in recent.snapshot()] == [command(n) for n in range(3)]
    recent.confirm(now + 5.0)
    assert len(recent) == 0


def test_appended_again_they_wait_for_the_new_run_to_write_them() -> None:
    recent = RecentAppends(keep_s=5.0, keep_events=100)
    recent.add(0, command(0), 1_000)
    kept = recent.snapshot()
    recent.confirm(kept[0].at_s + 4.0)
    recent.appended_again(kept)
    recent.confirm(kept[0].at_s + 4.0)
    assert len(recent) == 1


def test_past_the_count_limit_the_oldest_go_and_their_window_is_reported_once() -> None:
    recent = RecentAppends(keep_s=5.0, keep_events=2)
    for n in range(5):
        recent.add(0, command(n), 1_000 + n)
    assert [k.command for k in recent.snapshot()] == [command(3), command(4)]
    assert recent.take_dropped() == Dropped(first_ms=1_000, last_ms=1_002, count=3)
    assert recent.take_dropped() is None


def test_a_dropped_window_is_forgotten_once_redis_surely_wrote_it() -> None:
    recent = RecentAppends(keep_s=5.0, keep_events=1)
    recent.add(0, command(0), 1_000)
    recent.add(0, command(1), 1_001)
    recent.confirm(time.monotonic() + 5.0)
    assert recent.take_dropped() is None and len(recent) == 0


def test_disabled_it_keeps_nothing() -> None:
    recent = RecentAppends(keep_s=5.0, keep_events=10)
    recent.enabled = False
    recent.add(0, command(0), 1_000)
    assert len(recent) == 0
