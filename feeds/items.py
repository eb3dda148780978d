"""Pure mapping from an event to the per-user inbox items it sets (who is notified of what)."""

from __future__ import annotations

from typing import Literal

import msgspec

from schemas import layouts
from schemas.events import (
    Comment,
    CommentDeleted,
    Event,
    Follow,
    Like,
    Mention,
    PostCreated,
    PostDeleted,
    Unfollow,
    Unlike,
)

from .limits import FeedLimits

State = Literal["a", "i", "x"]  # active, inactive (may come back), retracted for good


class ItemOp(msgspec.Struct, frozen=True):
    """Set `item` of `user`'s inbox to `state` as of (`at_ms`, `event_id`), last writer wins.
    (A struct, not a dataclass: one or more per event, and a frozen dataclass costs ~15x as
    much to build.)

    `group_id` is the group the item is in while active; a comment or a mention (an item that is
    a group of its own) names it whatever the state, so that a retraction finds it; an unlike or
    an unfollow, the group its like or follow would be in at its time (what the cap's floor
    compares it with: lua/common.lua below_floor)."""

    user: str
    item: str
    state: State
    at_ms: int
    event_id: str
    actor: str
    group_id: str = ""
    verb: str = ""
    post: str = ""
    comment: str = ""
    text: str = ""

    @property
    def single(self) -> bool:
        """A comment or a mention: a group of its own, one actor (a like or follow aggregates).
        The item names its verb (lua/apply.lua)."""
        return self.item[0] in "cm"


def plan(event: Event, limits: FeedLimits) -> list[ItemOp]:
    """Every item `event` sets, one per recipient. Nobody is notified of their own action, but
    a retraction reaches everyone (a post owner deleting a comment on their own post)."""
    ops = _ops(event, limits.aggregation_window_ms)
    return [op for op in ops if op.user != event.actor or op.state == "x"]


def retract(event: Event, limits: FeedLimits) -> list[ItemOp]:
    """The items `event` made active, retracted for good: a moderator's recall. Retracted is
    final in the views, so the recall is idempotent and wins over a late or repeated apply."""
    return [msgspec.structs.replace(op, state="x") for op in plan(event, limits) if op.state == "a"]


def _ops(event: Event, window_ms: int) -> list[ItemOp]:
    at, eid, actor = event.at_ms, event.id, event.actor
    bucket = at // window_ms
    match event:
        case Like(post=post, owner=owner):
            gid = f"like:{post}:{bucket}"
            return [ItemOp(owner, f"l|{post}|{actor}", "a", at, eid, actor, gid, "like", post)]
        case Unlike(post=post, owner=owner):
            return [ItemOp(owner, f"l|{post}|{actor}", "i", at, eid, actor, f"like:{post}:{bucket}")]
        case Follow(user=user):
            gid = f"follow:{bucket}"
            return [ItemOp(user, f"f|{actor}", "a", at, eid, actor, gid, "follow")]
        case Unfollow(user=user):
            return [ItemOp(user, f"f|{actor}", "i", at, eid, actor, f"follow:{bucket}")]
        case Comment(post=post, owner=owner, comment=comment, text=text):
            gid = f"comment:{comment}"
            item = f"c|{comment}"
            return [ItemOp(owner, item, "a", at, eid, actor, gid, "comment", post, comment, text)]
        case CommentDeleted(owner=owner, comment=comment, mentioned=mentioned):
            # whoever deletes it (author, post owner, moderation), the comment and its mentions go
            retract = [ItemOp(owner, f"c|{comment}", "x", at, eid, actor, f"comment:{comment}")]
            for user in dict.fromkeys(mentioned):
                retract.append(ItemOp(user, f"m|c:{comment}", "x", at, eid, actor, f"mention:{comment}"))
            return retract
        case Mention(post=post, users=users, comment=None, text=text):
            gid = layouts.mention_in_post(post, actor)
            item = f"m|p:{post}|{actor}"
            return [
                ItemOp(user, item, "a", at, eid, actor, gid, "mention", post, "", text)
                for user in dict.fromkeys(users)
            ]
        case Mention(post=post, users=users, comment=str(comment), text=text):
            gid = f"mention:{comment}"  # a comment has one author: its mentions are one item
            item = f"m|c:{comment}"
            return [
                ItemOp(user, item, "a", at, eid, actor, gid, "mention", post, comment, text)
                for user in dict.fromkeys(users)
            ]
        case PostDeleted(post=post, mentioned=mentioned):
            # the mentions the post made go for good; what notified its author about it is
            # found in their inbox when applied (feeds/hiding.py retract_post)
            gid = layouts.mention_in_post(post, actor)
            return [
                ItemOp(user, f"m|p:{post}|{actor}", "x", at, eid, actor, gid)
                for user in dict.fromkeys(mentioned)
            ]
        case PostCreated():
            return []  # posts notify nobody: they go to home feeds, not inboxes
    raise TypeError(f"unknown event {event!r}")
