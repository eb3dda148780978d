"""The home feed over real HTTP and a real worker: pushed posts and a celebrity's read-merged ones
in one feed, paged; a deletion and an unfollow hide posts at once; bad cursors refused."""

from __future__ import annotations

import msgspec
import pytest
from redis.asyncio import Redis

from schemas import http, keys, layouts
from tests.conftest import SettingsFactory

from .harness import App, Json, at, follow, like, push_client, running_app

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def post(eid: str, author: str, post_id: str, t: float, text: str = "") -> Json:
    return {
        "type": "post_created",
        "id": eid,
        "actor": author,
        "occurred_at": at(t),
        "post": post_id,
        "text": text,
    }


async def whole_feed(app: App, user: str) -> list[Json]:
    items: list[Json] = []
    query = "?limit=2"
    while True:
        page = await app.me(user, "/v1/me/feed" + query)
        msgspec.convert(page, http.FeedPage)  # as the OpenAPI document says, posts and all
        items += page["items"]
        if page["next"] is None:
            return items
        query = f"?limit=2&before={page['next']}"


async def test_pushed_and_merged_posts_in_one_feed(redis: Redis, settings_factory: SettingsFactory) -> None:
    settings = settings_factory({"NOTIFIER_FEEDS_CELEBRITY_FOLLOWERS": "3"})
    async with running_app(settings, redis) as app:
        fans = ["ann", "bob", "cid"]
        await app.accept(
            *[follow(f"f-{f}", f, "star", t=0) for f in fans], follow("f-ann-joe", "ann", "joe", t=0)
        )
        await app.worker.drain()
        await app.accept(
            post("p-1", "star", "s1", 1, "hello"),
            post("p-2", "joe", "j1", 2),
            post("p-3", "joe", "j2", 3),
            post("p-4", "star", "s2", 4),
        )
        await app.worker.drain()
        assert await redis.sismember(keys.pulled_authors("star"), "star")  # 3 followers: read-merged

        feed = await whole_feed(app, "ann")
        assert [(i["author"], i["id"]) for i in feed] == [
            ("star", "s2"),
            ("joe", "j2"),
            ("joe", "j1"),
            ("star", "s1"),
        ]
        assert feed[-1]["text"] == "hello"
        assert [i["id"] for i in await whole_feed(app, "bob")] == ["s2", "s1"]

        gone = {"type": "post_deleted", "id": "d-1", "actor": "star", "occurred_at": at(9), "post": "s2"}
        unfollow = {"type": "unfollow", "id": "u-1", "actor": "ann", "occurred_at": at(9), "user": "joe"}
        await app.accept(gone, unfollow)
        await app.worker.drain()
        assert [i["id"] for i in await whole_feed(app, "ann")] == ["s1"]
        assert [i["id"] for i in await whole_feed(app, "dan")] == []


async def test_a_bad_feed_read_is_refused(redis: Redis, settings_factory: SettingsFactory) -> None:
    async with running_app(settings_factory(), redis) as app:
        response = await app.http.get(
            "/v1/me/feed?before=x", headers={"Authorization": f"Bearer {app.token('ann')}"}
        )
        assert (response.status_code, response.json()["pointer"]) == (422, "/before")
        assert (await app.http.get("/v1/me/feed")).status_code == 401


async def test_a_follows_back_fill_reaches_a_live_client_however_small_its_queue_or_log(
    redis: Redis, settings_factory: SettingsFactory
) -> None:
    """Following an author logs up to NOTIFIER_FEEDS_MAX_HOME feed changes at once: published
    one by one, that one read of the gateway's overflowed a send queue smaller than it and cut a
    prompt client off 4504. Past layouts.PUBLISHED_BURST they are told as one resync, and the
    session replays them from the log a batch at a time. Such a burst (and an unfollow's
    removals) can be longer than the log keeps (MAX_HOME 500 against MAX_CHANGES 256 by
    default): the log keeps a burst whole until that many changes came after it, so the client
    re-reads it instead of being told to refetch everything."""
    settings = settings_factory(
        {"NOTIFIER_FEEDS_MAX_CHANGES": "32", "NOTIFIER_GATEWAY_SEND_QUEUE_FRAMES": "16"}
    )
    async with running_app(settings, redis) as app:
        await app.accept(*[post(f"p-{n}", "joe", f"j{n}", n) for n in range(100)])
        await app.worker.drain()
        async with push_client(app, "ann") as client:
            await app.accept(follow("f-ann-joe", "ann", "joe", t=200))
            await app.worker.drain()
            frames = [await client.frame() for _ in range(100)]
            assert [f["type"] for f in frames] == ["feed"] * 100, frames[-1]
            assert {f["change"]["post"]["id"] for f in frames} == {f"j{n}" for n in range(100)}
            numbers = [int(f["cursor"].split(".")[1].split("-")[0]) for f in frames]
            assert numbers == sorted(numbers) and len(set(numbers)) == 100  # in order, none twice
            unfollow = {**follow("u-ann-joe", "ann", "joe", t=300), "type": "unfollow"}
            await app.accept(unfollow)
            await app.worker.drain()
            frames = [await client.frame() for _ in range(100)]
            assert [f["type"] for f in frames] == ["feed"] * 100, frames[-1]
            removed = {(f["change"]["op"], f["change"]["id"]) for f in frames}
            assert removed == {("remove", f"j{n}") for n in range(100)}
        assert await redis.llen(keys.changelog("ann")) == 200  # no change came after them: all kept
        # the latest burst: the unfollow's 100 removals, numbered after the follow's 100 adds
        assert layouts.decode_burst(await redis.hget(keys.toggles("ann"), layouts.BURST_FIELD)) == (101, 200)
        # once as many changes as the log keeps came after the burst, it is trimmed as ever
        await app.accept(*[like(f"l-{n}", f"fan{n}", f"a{n}", "ann", t=400 + n) for n in range(33)])
        await app.worker.drain()
        assert await redis.llen(keys.changelog("ann")) <= layouts.trim_past(32)
        assert await redis.hget(keys.toggles("ann"), layouts.BURST_FIELD) is None
