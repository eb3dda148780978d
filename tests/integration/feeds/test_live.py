"""Live push against the views: a client that follows a user's channel from the start and
applies every published change (upserts with what the inbox cap dropped, removes, reads) ends
with the inbox a page read shows, for the differential test's random histories (the oracle
publishes its own way, so live push is checked against the product's own pages)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from redis.asyncio import Redis

from feeds import changelog
from feeds.inbox import Inbox
from feeds.limits import FeedLimits
from notifier.client import Inbox as ClientInbox
from schemas import keys

from .test_differential import USERS, Apply, Step, histories

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

DONE = "test-live:done"  # published after the history: every change before it has arrived


async def page_view(inbox: Inbox, user: str) -> tuple[dict[str, Any], int]:
    groups: dict[str, Any] = {}
    before, unread = None, 0
    while True:
        page = await inbox.page(user, before, 50)
        unread = page.unread if before is None else unread
        groups.update({g["id"]: g for g in map(orjson.loads, page.groups)})
        before = page.next_before
        if before is None:
            return groups, unread


@settings(max_examples=60, deadline=None)
@given(histories())
async def test_a_client_following_live_from_the_start_ends_with_the_inbox_pages_show(
    redis_url: str, history: tuple[FeedLimits, list[Step]]
) -> None:
    limits, steps = history
    redis = Redis.from_url(redis_url.replace("/0", "/3"))
    pubsub = redis.pubsub()
    try:
        await redis.flushdb()
        inbox = Inbox(redis, limits)
        channels = {keys.user_channel(u).encode(): u for u in USERS}
        await pubsub.subscribe(*channels, DONE)
        for _ in range(len(channels) + 1):  # the subscriptions' confirmations
            assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
        for step in steps:
            if isinstance(step, Apply):
                assert await inbox.apply(step.ops) == [None] * len(step.ops)
            else:
                await inbox.mark_read(step.user, step.groups)
        await redis.publish(DONE, "")
        clients = {u: ClientInbox() for u in USERS}
        while (message := await pubsub.get_message(timeout=5)) is not None and message[
            "channel"
        ] != DONE.encode():
            live = changelog.published(message["data"].decode())
            clients[channels[message["channel"]]].apply(orjson.loads(live.payload))
        assert message is not None, "the history's changes did not all arrive"
        for user, client in clients.items():
            assert (client.groups, client.unread) == await page_view(inbox, user), user
    finally:
        await pubsub.aclose()
        await redis.aclose()
