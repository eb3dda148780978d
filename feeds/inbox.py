"""Users' notification inboxes: aggregated groups, unread state and the change log they feed.

Every write to an inbox is atomic (Lua); a batch of writes is one pipelined round trip, several
items to a script call. Writes are idempotent and order-insensitive (see lua/apply.lua).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from schemas import keys

from .changelog import Cursor
from .items import ItemOp
from .limits import FeedLimits
from .scripts import SCRIPTS, STATE, State, head, run_commands, user_keys

# Items per apply script call: they share a call's fixed cost (the script's entry and prologue,
# ~5% of Redis's time per item when each had its own call), and a call holds Redis for at most
# this many items (~85 µs each on the benchmark machine, so ~1.4 ms).
ITEMS_PER_CALL = 16


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

    @property
    def redis(self) -> Redis:
        return self._redis

    def _head(self, user: str) -> list[str | int | bytes]:
        return head(user, self._limits)

    async def apply(self, ops: Sequence[ItemOp], tags: Sequence[str] = ()) -> list[BaseException | None]:
        """Apply `ops` in one round trip, ITEMS_PER_CALL to a script call; the error of each op
        that failed, else None. `tags` (one per op, optional: changelog.push_tag) ride on the
        changes published for live push: the event's acceptance time and trace context."""
        if not ops:
            return []
        apply, common = self._scripts.apply, head(None, self._limits)
        tags = list(tags) or [""] * len(ops)
        n = ITEMS_PER_CALL
        chunks = [(ops[i : i + n], tags[i : i + n]) for i in range(0, len(ops), n)]
        commands = []
        for chunk, chunk_tags in chunks:
            call_keys: list[str] = []
            args: list[str | int | bytes] = [*common]
            for op, tag in zip(chunk, chunk_tags, strict=True):
                call_keys += user_keys(op.user)
                args += (
                    keys.group_actors_prefix(op.user),
                    keys.user_channel(op.user),
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
                    tag,
                )
            commands.append(apply.command(call_keys, args))
        results = await run_commands(self._redis, [apply], commands)
        errors: list[BaseException | None] = []
        for (chunk, _), result in zip(chunks, results, strict=True):
            if isinstance(result, BaseException):  # the whole call failed
                errors += [result] * len(chunk)
            else:
                errors += [None if isinstance(r, int) else ResponseError(r.decode()) for r in result]
        return errors

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
        return {m.decode() for m in await self._redis.zrange(keys.followers(user), 0, -1)}
