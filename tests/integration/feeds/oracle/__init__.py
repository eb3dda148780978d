"""The inbox as it was before the issue-12 storage rework: the oracle of the differential test.

The Lua files here are copies of feeds/lua at main fa37a3e (the scripts the product ran then,
and one rule added since: the cap's floor, marked 2026-12-07),
driven the way feeds/inbox.py and feeds/changelog.py drove them. They are frozen on purpose: the
product's scripts may change shape (calls, records, keys), these must not, so that the test
compares the new implementation with the old one. Delete this package once the new one has
landed and the comparison is no longer needed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from feeds.items import ItemOp
from feeds.limits import FeedLimits
from schemas import keys, layouts

_LUA = Path(__file__).parent
ITEMS_PER_CALL = 16


def _script(redis: Redis, *names: str) -> AsyncScript:
    return redis.register_script("\n".join((_LUA / n).read_text() for n in ("common.lua", *names)))


def _keys(user: str) -> list[str]:
    return [
        keys.toggles(user),
        keys.inbox(user),
        keys.read_marks(user),
        keys.changelog(user),
        keys.followers(user),
    ]


@dataclass(frozen=True, slots=True)
class Page:
    groups: list[bytes]
    more: bool
    unread: int
    epoch: str
    last: int
    check: int


class OracleInbox:
    """apply, mark_read, page and replay exactly as before; ids and cursors as the scripts return them."""

    def __init__(self, redis: Redis, limits: FeedLimits) -> None:
        self._redis = redis
        self._limits = limits
        self._apply = _script(redis, "apply.lua")
        self._mark_read = _script(redis, "reads.lua", "mark_read.lua")
        self._page = _script(redis, "page.lua")
        self._replay = _script(redis, "reads.lua", "replay.lua")

    def _head(self, user: str | None, write: bool = True) -> list[Any]:
        limits = self._limits
        return [
            keys.group_actors_prefix(user) if user else "",
            keys.user_channel(user) if user else "",
            os.urandom(6).hex(),
            limits.max_groups if write else 0,
            limits.max_changes if write else 0,
            limits.shown_actors if write else 0,
        ]

    async def apply(self, ops: Sequence[ItemOp]) -> list[Any]:
        results: list[Any] = []
        for start in range(0, len(ops), ITEMS_PER_CALL):
            call_keys: list[str] = []
            args: list[Any] = self._head(None)
            for op in ops[start : start + ITEMS_PER_CALL]:
                call_keys += _keys(op.user)
                args += (
                    keys.group_actors_prefix(op.user),
                    keys.user_channel(op.user),
                    op.item,
                    op.state,
                    op.at_ms,
                    layouts.register_token(op.event_id),  # 2026-12-07: registers keep a token
                    op.group_id,
                    op.actor,
                    op.verb,
                    op.post,
                    op.comment,
                    op.text,
                    0,
                    "",
                )
            results += await self._apply(call_keys, args)
        return results

    async def mark_read(self, user: str, group_ids: Sequence[str] | None) -> int:
        mode = ["all"] if group_ids is None else ["ids", *group_ids]
        return int(await self._mark_read(_keys(user), [*self._head(user), *mode]))

    async def page(self, user: str, before: tuple[int, str] | None, limit: int) -> Page:
        at, after = ("", "") if before is None else (str(before[0]), before[1])
        reply = await self._page(_keys(user), [*self._head(user), at, after, limit])
        more, unread, epoch, last, check, *groups = reply
        return Page(list(groups), bool(more), int(unread), epoch.decode(), int(last), int(check))

    async def replay(self, user: str, epoch: str, after: int, check: int, count: int) -> list[Any]:
        """{kind, epoch, number, ...} as lua/replay.lua returns it (count 0: the log's end)."""
        reply = await self._replay(_keys(user), [*self._head(user, write=False), epoch, after, check, count])
        return list(reply)
