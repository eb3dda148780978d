"""The Python client's inbox model alone: changes applied in order."""

from __future__ import annotations

from notifier.client import Inbox


def group(gid: str) -> dict[str, object]:
    return {"id": gid, "verb": "like", "actors": ["a"], "count": 1, "first_at": 1, "last_at": 1, "read": 0}


def test_an_upsert_that_pushed_groups_past_the_cap_removes_what_it_dropped() -> None:
    inbox = Inbox()
    inbox.load({"groups": [group("like:p2:0"), group("like:p1:0")], "unread": 2})
    inbox.apply({"op": "upsert", "unread": 2, "group": group("like:p3:0"), "dropped": ["like:p1:0"]})
    assert sorted(inbox.groups) == ["like:p2:0", "like:p3:0"] and inbox.unread == 2
    inbox.apply({"op": "upsert", "unread": 3, "group": group("like:p4:0")})
    assert len(inbox.groups) == 3


def test_the_seen_mark_comes_with_the_page_and_with_a_seen_change_from_any_device() -> None:
    inbox = Inbox()
    assert inbox.seen_at == 0
    inbox.load({"groups": [group("like:p1:0")], "unread": 1, "unseen": 1, "seen_at": 500})
    assert inbox.seen_at == 500
    inbox.apply({"op": "seen", "seen_at": 900, "unread": 1, "unseen": 0})
    assert (inbox.seen_at, inbox.unseen) == (900, 0)
