"""Write-time home-feed fan-out in resumable slices on a real redis-server: a worker that dies
mid-push (halfway through a chunk) leaves its position stored, and the worker that reclaims the
event continues from there, logging no change twice; a push in slices lets the partition's new
events through between its slices."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from feeds.home import Change, HomeFeeds, Post
from feeds.inbox import Inbox
from feeds.items import ItemOp
from notifier.runtime.eventlog import partition_of
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.events import Event, Follow, Like, PostCreated

from ..views import at, logged_changes, pending_total
from .test_consumer import append, make_worker

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FANS = [f"fan{i:02}" for i in range(95)]  # 10 chunks of 10 (the last one of 5)


def sliced(settings: Settings, **fanout: Any) -> Settings:
    """One chunk of 10 followers per slice."""
    feeds = dataclasses.replace(settings.feeds, push_chunk=10, push_slice=1)
    return dataclasses.replace(settings, feeds=feeds, fanout=dataclasses.replace(settings.fanout, **fanout))


def follows() -> list[Event]:
    return [Follow(id=f"f-{f}", actor=f, occurred_at=at(i), user="star") for i, f in enumerate(FANS)]


async def test_a_push_cut_mid_chunk_is_continued_where_it_stopped_without_duplicates(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sliced(settings)
    await append(redis, settings, follows())
    await make_worker(redis, settings, "setup").drain()
    created = PostCreated(id="pc", actor="star", occurred_at=at(500), post="s1")
    await append(redis, settings, [created])

    real = HomeFeeds._change
    chunks: list[int] = []  # the size of each chunk written, in order
    dying = True

    async def dies_in_the_fourth_chunk(
        self: HomeFeeds, changes: Sequence[Change], tag: str = "", post: Post | None = None
    ) -> bool:
        chunks.append(len(changes))
        if dying and len(chunks) == 4:  # half of the chunk is written, then the link dies
            await real(self, changes[:5], tag, post)
            raise RedisConnectionError("killed mid-push")
        return await real(self, changes, tag, post)

    monkeypatch.setattr(HomeFeeds, "_change", dies_in_the_fourth_chunk)
    with pytest.raises(RedisConnectionError):
        await make_worker(redis, settings, "worker-a").drain()
    assert await pending_total(redis, settings.ingest.partitions) == 1
    assert await redis.hget(keys.feed_pushes("star"), "ps1") is not None  # the stored position

    chunks.clear()
    dying = False
    partition = partition_of("star", settings.ingest.partitions)
    assert await make_worker(redis, settings, "worker-b").reclaim(partition, min_idle_ms=0) == 1

    assert chunks == [10] * 6 + [5]  # from the fourth chunk on (three were done), not from the start
    assert await pending_total(redis, settings.ingest.partitions) == 0
    assert not await redis.exists(keys.feed_pushes("star"))
    for fan in FANS:  # each follower has the post, and its log holds its push exactly once
        assert await redis.zscore(keys.home(fan), "star|s1") == created.at_ms
        feed = [c for c in await logged_changes(redis, fan) if "post" in c]
        assert [c["post"]["id"] for c in feed] == ["s1"], fan


async def test_the_partitions_new_events_go_between_the_slices_of_a_push(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sliced(settings, min_idle_ms=60_000)  # no reclaim of our own slow entries here
    await append(redis, settings, follows())
    await make_worker(redis, settings, "setup").drain()
    # a like by the author: the same partition as the post (partitioned by actor)
    like = Like(id="like", actor="star", occurred_at=at(600), post="x", owner="olive")
    order: list[str] = []
    last_chunk = anyio.Event()
    real_change, real_apply = HomeFeeds._change, Inbox.apply

    async def chunk(
        self: HomeFeeds, changes: Sequence[Change], tag: str = "", post: Post | None = None
    ) -> bool:
        order.append("chunk")
        if order.count("chunk") == 2:  # the push is under way: a new event arrives
            await append(redis, settings, [like])
        live = await real_change(self, changes, tag, post)
        if order.count("chunk") == 10:
            last_chunk.set()
        return live

    async def inbox_apply(
        self: Inbox, ops: Sequence[ItemOp], tags: Sequence[str] = ()
    ) -> list[BaseException | None]:
        if ops:
            order.append("inbox")
        return await real_apply(self, ops, tags)

    monkeypatch.setattr(HomeFeeds, "_change", chunk)
    monkeypatch.setattr(Inbox, "apply", inbox_apply)
    worker = make_worker(redis, settings, "live")
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        await append(redis, settings, [PostCreated(id="pc", actor="star", occurred_at=at(500), post="s1")])
        with anyio.fail_after(30):
            await last_chunk.wait()
        worker.stop()
    assert "inbox" in order and order.index("inbox") < len(order) - 1, order  # before the last chunk
    assert await pending_total(redis, settings.ingest.partitions) == 0
