"""Live push of the home feed over a real WebSocket against the whole running product (on one
Redis and on the cluster): pushed posts and deletions reach followers' open sockets as `feed`
frames numbered in the same log as the inbox's, once each, and a reconnect resumes them."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from schemas.cursor import Cursor
from tests.conftest import SettingsFactory

from .harness import Json, at, follow, like, push_client, running_app
from .test_feed import post

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

# small chunks and one chunk per slice: a push to a few followers goes in several resumed slices
SLICED = {"NOTIFIER_FEEDS_PUSH_CHUNK": "2", "NOTIFIER_FEEDS_PUSH_SLICE": "1"}


def deleted(eid: str, author: str, post_id: str, t: float) -> Json:
    return {"type": "post_deleted", "id": eid, "actor": author, "occurred_at": at(t), "post": post_id}


def numbers(frames: list[Json]) -> list[int]:
    return [Cursor.parse(f["cursor"]).number for f in frames]


async def test_feed_changes_reach_every_follower_live_once_and_resume(
    redis: Redis, settings_factory: SettingsFactory
) -> None:
    fans = [f"fan{i}" for i in range(5)]
    async with running_app(settings_factory(SLICED), redis) as app:
        await app.accept(*(follow(f"f-{f}", f, "star", t=i) for i, f in enumerate(fans)))
        await app.worker.drain()
        async with push_client(app, "fan0") as first, push_client(app, "fan4") as last:
            await app.accept(post("p-1", "star", "s1", 10, "hello"))
            for client in (first, last):
                frame = await client.frame()
                assert frame["type"] == "feed", frame
                assert frame["change"]["op"] == "add"
                assert {k: frame["change"]["post"][k] for k in ("id", "author", "text")} == {
                    "id": "s1",
                    "author": "star",
                    "text": "hello",
                }
            await app.accept(deleted("d-1", "star", "s1", 11))
            removal = await first.frame()
            assert removal["change"] == {"op": "remove", "author": "star", "id": "s1"}
            await app.accept(like("l-1", "joe", "mine", "fan0", t=12))  # an inbox change, same log
            inbox = await first.frame()
            assert inbox["type"] == "change"
            assert numbers([removal, inbox]) == [numbers([removal])[0], numbers([removal])[0] + 1]
            cursor = inbox["cursor"]

        # offline: two posts and a deletion; the replay renders each push as the post is now
        await app.accept(post("p-2", "star", "s2", 20), post("p-3", "star", "s3", 21))
        await app.accept(deleted("d-3", "star", "s3", 22))
        await app.worker.drain()
        async with push_client(app, "fan0", cursor=cursor) as again:
            replay = again.before_ready
            assert [f["type"] for f in replay] == ["feed"] * 3
            assert [(f["change"]["op"], f["change"].get("post", f["change"])["id"]) for f in replay] == [
                ("add", "s2"),
                ("remove", "s3"),  # pushed, deleted since
                ("remove", "s3"),
            ]
            assert numbers(replay) == [numbers([inbox])[0] + n for n in (1, 2, 3)]
            assert again.ready["replayed"] == 3
            await app.accept(post("p-4", "star", "s4", 30))
            live = await again.frame()
            assert (live["type"], live["change"]["post"]["id"]) == ("feed", "s4")
            assert numbers([live]) == [numbers(replay)[-1] + 1]

        # every follower's log holds each feed change once, sliced push or not: a replay of
        # the whole log (from the start cursor) renders s1's push and s3's as removals (both
        # deleted since), then their removals, s2 and s4
        for fan in fans:
            async with push_client(app, fan, cursor="-.0") as whole:
                feed = [f["change"]["op"] for f in whole.before_ready if f["type"] == "feed"]
            assert feed == ["remove", "remove", "add", "remove", "remove", "add"], fan


async def test_a_follow_pushes_the_authors_recent_posts_and_an_unfollow_takes_them_out(
    redis: Redis, settings_factory: SettingsFactory
) -> None:
    async with running_app(settings_factory(), redis) as app:
        await app.accept(post("p-1", "star", "s1", 1), post("p-2", "star", "s2", 2))
        await app.worker.drain()
        async with push_client(app, "ann") as ann:
            await app.accept(follow("f-1", "ann", "star", t=3))
            added = [await ann.frame() for _ in range(2)]
            assert [(f["type"], f["change"]["post"]["id"]) for f in added] == [("feed", "s1"), ("feed", "s2")]
            await app.accept(
                {"type": "unfollow", "id": "u-1", "actor": "ann", "occurred_at": at(4), "user": "star"}
            )
            removed = [await ann.frame() for _ in range(2)]
            assert sorted(f["change"]["id"] for f in removed) == ["s1", "s2"]
            assert {f["change"]["op"] for f in removed} == {"remove"}
