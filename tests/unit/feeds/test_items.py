"""Item planning: who is notified of what, which undo matches which do, and how items group."""

from __future__ import annotations

import pytest

from feeds.items import ItemOp, plan
from feeds.limits import FeedLimits
from schemas.events import Event
from tests.unit.builders import (
    DAY_S,
    comment,
    comment_deleted,
    follow,
    like,
    mention,
    unfollow,
    unlike,
)

LIMITS = FeedLimits()


def one(event: Event, limits: FeedLimits = LIMITS) -> ItemOp:
    ops = plan(event, limits)
    assert len(ops) == 1, ops
    return ops[0]


def test_a_like_notifies_the_post_owner() -> None:
    op = one(like("bob", post="p1", owner="olga", t=5))
    assert (op.user, op.state, op.actor, op.verb, op.post) == ("olga", "a", "bob", "like", "p1")
    assert op.event_id == "like-bob-p1-5"
    assert op.at_ms == like("bob", t=5).at_ms


def test_a_comment_notifies_the_post_owner_with_its_text() -> None:
    op = one(comment("bob", "c9", post="p1", owner="olga", text="nice"))
    assert (op.user, op.state, op.verb, op.post, op.comment, op.text) == (
        "olga",
        "a",
        "comment",
        "p1",
        "c9",
        "nice",
    )


def test_a_follow_notifies_the_followed_user() -> None:
    op = one(follow("bob", user="olga"))
    assert (op.user, op.state, op.verb) == ("olga", "a", "follow")


def test_a_mention_notifies_each_mentioned_user_once() -> None:
    ops = plan(mention("bob", ("carol", "dave", "carol", "dave", "erin")), LIMITS)
    assert [op.user for op in ops] == ["carol", "dave", "erin"]
    assert {(op.state, op.verb, op.actor, op.post) for op in ops} == {("a", "mention", "bob", "p1")}
    assert len({op.item for op in ops}) == 1 and len({op.group_id for op in ops}) == 1


@pytest.mark.parametrize(
    "event",
    [
        like("olga", owner="olga"),
        unlike("olga", owner="olga"),
        comment("olga", owner="olga"),
        follow("olga", user="olga"),
        unfollow("olga", user="olga"),
        mention("olga", ("olga",)),
    ],
    ids=lambda e: type(e).__name__,
)
def test_nobody_is_notified_of_their_own_action(event: Event) -> None:
    assert plan(event, LIMITS) == []


def test_a_retraction_reaches_everyone_even_the_one_deleting() -> None:
    # the post owner deleting someone's comment on their own post clears it from their inbox
    made = one(comment("bob", "c1", owner="olga"))
    [retract] = plan(comment_deleted("olga", "c1", owner="olga"), LIMITS)
    assert (retract.user, retract.item, retract.state) == ("olga", made.item, "x")


def test_mentioning_oneself_among_others_notifies_only_the_others() -> None:
    assert [op.user for op in plan(mention("bob", ("bob", "carol")), LIMITS)] == ["carol"]


@pytest.mark.parametrize(
    ("do", "undo"),
    [
        (like("bob", t=1), unlike("bob", t=2)),
        (follow("bob", t=1), unfollow("bob", t=2)),
    ],
    ids=["like", "follow"],
)
def test_undo_sets_the_same_item_inactive(do: Event, undo: Event) -> None:
    done, undone = one(do), one(undo)
    assert (undone.user, undone.item, undone.state, undone.actor) == (done.user, done.item, "i", done.actor)
    # in no group: it names the one its like or follow would be in at its time (the cap's floor)
    assert undone.group_id == done.group_id


@pytest.mark.parametrize("deleter", ["bob", "olga", "moderator"])
def test_comment_deleted_retracts_the_comment_and_the_mentions_made_in_it(deleter: str) -> None:
    made = one(comment("bob", "c1", owner="olga"))
    mentioned = plan(mention("bob", ("carol", "dave"), comment_id="c1"), LIMITS)
    gone = ("carol", "dave", "carol")
    deleted = plan(comment_deleted(deleter, "c1", owner="olga", mentioned=gone), LIMITS)
    assert [(op.user, op.item, op.state) for op in deleted] == [
        ("olga", made.item, "x"),
        ("carol", mentioned[0].item, "x"),
        ("dave", mentioned[1].item, "x"),
    ]


def test_mentions_in_a_post_are_not_retracted_by_deleting_a_comment() -> None:
    in_post = plan(mention("bob", ("carol",)), LIMITS)
    deleted = plan(comment_deleted("bob", "c1", mentioned=("carol",)), LIMITS)
    assert in_post[0].item not in {op.item for op in deleted}


def test_likes_of_one_post_group_by_aggregation_window() -> None:
    morning = one(like("bob", t=-11 * 3600))
    evening = one(like("carol", t=11 * 3600))
    next_day = one(like("dave", t=DAY_S))
    other_post = one(like("erin", post="p2"))
    assert morning.group_id == evening.group_id
    assert next_day.group_id != morning.group_id
    assert other_post.group_id != morning.group_id
    assert morning.item != evening.item  # one item per actor and post


def test_the_window_comes_from_the_limits() -> None:
    hourly = FeedLimits(aggregation_window_ms=3_600_000)
    assert one(like("bob", t=0), hourly).group_id != one(like("carol", t=3600), hourly).group_id
    assert one(like("bob", t=0), hourly).group_id == one(like("carol", t=3599), hourly).group_id


def test_follows_group_by_window_and_relikes_keep_their_item() -> None:
    assert one(follow("bob", t=0)).group_id == one(follow("carol", t=60)).group_id
    assert one(follow("bob", t=0)).group_id != one(follow("carol", t=DAY_S)).group_id
    assert one(like("bob", t=0)).item == one(like("bob", t=DAY_S)).item


def test_comments_and_mentions_group_by_their_source() -> None:
    assert one(comment("bob", "c1")).group_id != one(comment("bob", "c2")).group_id
    in_post = plan(mention("bob", ("carol",)), LIMITS)[0]
    in_comment = plan(mention("bob", ("carol",), comment_id="c1"), LIMITS)[0]
    by_other = plan(mention("dave", ("carol",)), LIMITS)[0]
    assert len({in_post.group_id, in_comment.group_id, by_other.group_id}) == 3
    assert in_comment.comment == "c1" and in_post.comment == ""
