"""Users' notification inboxes: aggregated groups, unread state and the change log they feed.

Every write is one Lua script run atomically on one user's slot; a batch of writes is one
pipelined round trip. Writes are idempotent and order-insensitive (see lua/apply.lua).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from schemas import keys

from .changelog import Cursor
from .items import ItemOp
from .limits import FeedLimits
from .scripts import SCRIPTS, STATE, State, head, new_epoch, run_commands, user_keys


@dataclass(frozen=True, slots=True)
class InboxPage:
    groups: list[bytes]  # each a JSON object, newest first
    more: bool
    unread: int
    cursor: str  # change-log cursor as of this read: resume the WebSocket from here

    @property
    def next_before(self) -> str | None:
        """Opaque cursor for the next page, or None on the last page."""
        if not self.more or not self.groups:
            return None
        return _page_cursor(self.groups[-1])


def _page_cursor(group_json: bytes) -> str:
    group = orjson.loads(group_json)
    return f"{group['last_at']}:{group['id']}"


class Inbox:
    """With `changelog`, the only code that reads or writes the inbox keys (`ni: nb: na: nr: nc:`)."""

    def __init__(self, redis: Redis, limits: FeedLimits) -> None:
        self._redis = redis
        self._limits = limits
        self._scripts = SCRIPTS

    def _head(self, user: str, epoch: str = "") -> list[str | int | bytes]:
        return head(user, self._limits, epoch)

    async def apply(self, ops: Sequence[ItemOp]) -> list[BaseException | None]:
        """Apply `ops` in one round trip; the error of each op that failed, else None."""
        if not ops:
            return []
        apply, epoch = self._scripts.apply, new_epoch()
        commands = [
            apply.command(
                user_keys(op.user),
                [
                    *self._head(op.user, epoch),
                    op.item,
                    op.state,
                    op.at_ms,
                    op.event_id,
                    op.group_id,
                    op.actor,
                    op.verb,
                    op.post,
                    op.comment,
                    op.text,
                    int(op.follows),
                ],
            )
            for op in ops
        ]
        results = await run_commands(self._redis, [apply], commands)
        return [r if isinstance(r, BaseException) else None for r in results]

    async def mark_read(self, user: str, group_ids: Sequence[str] | None) -> int:
        """Mark `group_ids` (None: all) read; returns how many were unread."""
        mode = ["all"] if group_ids is None else ["ids", *group_ids]
        marked = await self._scripts.mark_read(self._redis, user_keys(user), [*self._head(user), *mode])
        return int(marked)

    async def page(self, user: str, before: str | None, limit: int) -> InboxPage:
        """Groups newest first; `before` is a previous page's `next_before`."""
        at, after = "", ""
        if before:
            score, _, after = before.partition(":")
            at = str(int(score))
        reply = await self._scripts.page(self._redis, user_keys(user), [*self._head(user), at, after, limit])
        more, unread, epoch, last, *groups = reply
        return InboxPage(
            groups=list(groups),
            more=bool(more),
            unread=int(unread),
            cursor=str(Cursor(epoch.decode(), (int(last), 0))),
        )

    async def unread(self, user: str) -> int:
        return State.parse(await self._redis.hget(keys.toggles(user), STATE)).unread

    async def followers(self, user: str) -> set[str]:
        return {m.decode() for m in await self._redis.smembers(keys.followers(user))}
