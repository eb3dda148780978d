"""What a mute or block hides of what already reached a user: the muted or blocked actor's
notifications (a block: both users' of each other), or a muted post's, leave the inbox through
the apply path (each item set inactive, so the group loses that actor or is removed, unread is
corrected and the change is pushed to open sockets, like a moderation recall); a block also
severs the follows between the two users (graph, followers, home feeds).

Each hiding item is inactive as of the mute or block, or of the item's own time if later, with
an event id (`~...`) above any event's at the same time: an older or replayed activity stays
hidden, a newer one shows again once the mute or block is undone (the fan-out drops whatever
happens while it holds: feeds/preferences.py). Every step is idempotent: a retried request
redoes it whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

from redis.asyncio import Redis

from schemas import keys

from .graph import FollowGraph
from .home import HomeFeeds
from .inbox import Inbox
from .items import ItemOp
from .limits import FeedLimits
from .scripts import head, run_checked, scripts_for, user_keys

# the event ids of hiding items: '~' sorts after every event id (schemas.events.ID_PATTERN) and
# every register token (schemas/layouts.py register_token: `{` and a digest)
MUTE_ID: Final = "~mute"
BLOCK_ID: Final = "~block"

Target = Literal["actor", "post"]


class Hiding:
    def __init__(self, redis: Redis, limits: FeedLimits) -> None:
        self._redis = redis
        self._inbox = Inbox(redis, limits)
        self._home = HomeFeeds(redis, limits)
        self._graph = FollowGraph(redis)

    async def mute(self, user: str, actor: str, at_ms: int) -> int:
        """Hide `actor`'s notifications and posts from `user`; how many items left the inbox."""
        hidden = await self._hide(user, "actor", actor, at_ms, MUTE_ID)
        await self._home.drop_authors([(user, actor)])
        return hidden

    async def mute_post(self, user: str, post: str, at_ms: int) -> int:
        """Hide the notifications of activity on `post` from `user`."""
        return await self._hide(user, "post", post, at_ms, MUTE_ID)

    async def block(self, user: str, other: str, at_ms: int) -> int:
        """Hide each user's notifications and posts from the other and sever their follows."""
        hidden = 0
        for one, two in ((user, other), (other, user)):
            hidden += await self._hide(one, "actor", two, at_ms, BLOCK_ID)
            await self._graph.sever(two, one, at_ms, BLOCK_ID)  # both sides: following, followers
            await self._home.drop_authors([(one, two)])
        return hidden

    async def enforce(self, ops: Sequence[ItemOp]) -> int:
        """Hide again, for the recipients of `ops` (written by the fan-out), what a mute, muted
        post or block they hold now hides: one added after the fan-out read the preferences and
        whose hiding pass ran before its writes. How many items left the inbox."""
        pairs = sorted({(op.user, op.actor, op.post) for op in ops})
        found = await run_checked(
            self._redis,
            [
                command
                for user, actor, post in pairs
                for command in (
                    ("ZSCORE", keys.mutes(user), actor),
                    ("ZSCORE", keys.blocks(user), actor),
                    ("ZSCORE", keys.blocks(actor), user),
                    ("ZSCORE", keys.muted_posts(user), post or "\n"),  # no post: no member
                )
            ],
        )
        hidden = 0
        for n, (user, actor, post) in enumerate(pairs):
            muted, blocked, blocked_by, post_muted = found[4 * n : 4 * n + 4]
            if blocked is not None or blocked_by is not None:
                hidden += await self.block(
                    user, actor, int(float(blocked if blocked is not None else blocked_by))
                )
            elif muted is not None:
                hidden += await self.mute(user, actor, int(float(muted)))
            if post_muted is not None:
                hidden += await self.mute_post(user, post, int(float(post_muted)))
        return hidden

    async def retract_post(self, author: str, post: str, at_ms: int, event_id: str) -> int:
        """A deleted post's notifications in its author's inbox (likes, comments, mentions on
        it) retracted for good (`x`: a redelivery of those events does not bring them back);
        how many. What is applied about the post after the deletion (another partition behind,
        or a `replay --fresh` that reaches the deletion first) shows as any activity."""
        ops = [
            ItemOp(author, item, "x", at_ms, event_id, actor, gid, verb, item_post)
            for item, _, gid, verb, item_post, actor in await self._active(author, "post", post)
        ]
        await self._apply(ops)
        return len(ops)

    async def _hide(self, user: str, target: Target, value: str, at_ms: int, event_id: str) -> int:
        """Set inactive the active items of `user`'s inbox groups from the actor or on the post;
        how many."""
        ops = [
            ItemOp(user, item, "i", max(at_ms, int(t)), event_id, actor, gid, verb, post)
            for item, t, gid, verb, post, actor in await self._active(user, target, value)
        ]
        await self._apply(ops)
        return len(ops)

    async def _active(self, user: str, target: Target, value: str) -> list[tuple[str, ...]]:
        """lua/hidden.lua: the active items of `user`'s inbox from the actor or on the post, each
        ITEM, TIME_MS, GROUP_ID, VERB, POST, ACTOR."""
        found = await scripts_for(self._redis).hidden(
            self._redis, user_keys(user), [*head(user, None), target, value]
        )
        return [tuple(f.decode() for f in found[n : n + 6]) for n in range(0, len(found), 6)]

    async def _apply(self, ops: list[ItemOp]) -> None:
        for error in await self._inbox.apply(ops):
            if error is not None:
                raise error
