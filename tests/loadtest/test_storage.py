"""The storage benchmark's workload: seeded, the promised size and mix, texts of ~60 characters."""

from __future__ import annotations

from collections import Counter

from feeds.limits import FeedLimits
from loadtest.metrics import Footprint, bytes_by_kind, family
from loadtest.storage import Workload, batches, events
from schemas import keys
from schemas.events import Comment, Mention

SMALL = Workload(users=100, per_user=30, fanout=10, seed=3, batch=64)


def test_the_workload_is_seeded() -> None:
    assert list(events(SMALL)) == list(events(SMALL))
    assert list(events(SMALL)) != list(events(Workload(100, 30, 10, seed=4)))


def test_it_notifies_about_per_user_times_users_recipients_mostly_by_mentions() -> None:
    kinds: Counter[str] = Counter()
    ops = [op for batch in batches(SMALL, FeedLimits(), kinds) for op in batch]
    target = SMALL.users * SMALL.per_user
    assert target <= len(ops) < target + SMALL.fanout
    assert sum(op.verb == "mention" for op in ops) / len(ops) > 0.6
    assert {"mention", "like", "comment", "follow"} <= set(kinds)
    assert all(len(b) <= SMALL.batch for b in batches(SMALL, FeedLimits(), Counter()))


def test_texts_are_short_and_nobody_is_notified_of_their_own_action() -> None:
    for event in events(SMALL):
        if isinstance(event, Comment | Mention):
            assert 50 <= len(event.text) <= 60
        if isinstance(event, Mention):
            assert event.actor not in event.users and len(event.users) == SMALL.fanout


def test_key_families_are_the_text_before_the_hash_tag() -> None:
    actors = keys.group_actors("u7", "like:p1:3")
    assert family(actors.encode()) == actors[: actors.index("{")]
    assert family(keys.gateway_control().encode()) == keys.gateway_control()


def test_bytes_by_kind_sums_families_by_purpose_and_names_the_rest() -> None:
    inbox, log = family(keys.inbox("u1").encode()), family(keys.events(0).encode())
    dedupe, graph = family(keys.idempotency(0, "e1").encode()), family(keys.following("u1").encode())
    families = {inbox: {"bytes": 600}, log: {"bytes": 200}, dedupe: {"bytes": 100}, graph: {"bytes": 50}}

    kinds = bytes_by_kind(families, Footprint(100, 30), Footprint(1_100, 60), stored=10)

    assert {k: v["bytes"] for k, v in kinds.items()} == {
        "inbox": 600,
        "event log": 300,
        "other": 50,
        "expiry table": 30,
        "not in any key": 20,
    }
    assert kinds["inbox"]["bytes_per_notification"] == 60.0
