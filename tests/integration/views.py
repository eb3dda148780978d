"""What the integration tests compare: a user's views as the clients see them, and event builders."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
from redis.asyncio import Redis

from feeds import changelog
from feeds.inbox import Inbox
from schemas import cursor, keys

BASE_TIME: Final = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # one aggregation day

View = tuple[list[Any], int, bool]  # groups (parsed), unread, more


def at(seconds: float) -> datetime:
    return BASE_TIME + timedelta(seconds=seconds)


async def inbox_view(inbox: Inbox, user: str) -> View:
    """The first page as parsed JSON (key order aside), the unread count and whether more exist."""
    page = await inbox.page(user, None, 100)
    return [orjson.loads(g) for g in page.groups], page.unread, page.more


async def snapshot(redis: Redis, inbox: Inbox, users: Iterable[str]) -> dict[str, tuple[bytes, ...]]:
    """Everything a client can observe, byte for byte: page JSON, unread, change-log cursor and length."""
    out: dict[str, tuple[bytes, ...]] = {}
    for user in users:
        page = await inbox.page(user, None, 100)
        length = await redis.llen(keys.changelog(user))
        out[user] = (*page.groups, str(page.unread).encode(), page.cursor.encode(), str(length).encode())
    return out


async def logged_changes(redis: Redis, user: str) -> list[dict[str, Any]]:
    """Every change the user's log holds, as a resuming client would get them."""
    start = cursor.START
    replay = await changelog.read_after(redis, user, start, 10_000)
    assert isinstance(replay, changelog.Replay)
    return [orjson.loads(change.payload) for change in replay.changes]


async def pending_total(redis: Redis, partitions: int) -> int:
    total = 0
    for p in range(partitions):
        summary = await redis.xpending(keys.events(p), keys.FANOUT_GROUP)
        total += int(summary["pending"])
    return total
