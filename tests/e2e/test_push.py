"""Live push, aggregation and resume over a real WebSocket against the whole running product."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis, RedisCluster

from feeds import changelog
from feeds.changelog import Replay
from feeds.scripts import STATE
from notifier.runtime import metrics
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.cursor import Cursor
from tests.conftest import SettingsFactory

from .harness import follow, like, push_client, running_app

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_likes_reach_the_owner_live_and_aggregate_into_one_group(
    redis: Redis, settings: Settings
) -> None:
    async with (
        running_app(settings, redis) as app,
        push_client(app, "olive") as owner,
        push_client(app, "liker0") as liker,
    ):
        await app.accept(like("like-0", "liker0", "post-1", "olive", t=0))
        first = (await owner.change())["change"]
        assert first["op"] == "upsert"
        assert first["group"]["verb"] == "like"
        assert first["group"]["count"] == 1
        assert first["group"]["actors"] == ["liker0"]
        assert first["unread"] == 1

        await app.accept(*(like(f"like-{i}", f"liker{i}", "post-1", "olive", t=i) for i in range(1, 5)))
        updates = [frame["change"] for frame in await owner.changes(4)]
        assert [u["op"] for u in updates] == ["upsert"] * 4
        assert {u["group"]["id"] for u in updates} == {first["group"]["id"]}
        assert [u["group"]["count"] for u in updates] == [2, 3, 4, 5]
        assert updates[-1]["group"]["actors"] == ["liker4", "liker3", "liker2"]  # latest first
        assert [u["unread"] for u in updates] == [1, 1, 1, 1]  # still one unread group

        page = await app.me("olive")
        assert [(g["id"], g["count"]) for g in page["groups"]] == [(first["group"]["id"], 5)]

        # The liker got nothing for their own like: the first frame they see is this follow.
        await app.accept(follow("follow-1", "olive", "liker0", t=10))
        barrier = (await liker.change())["change"]
        assert barrier["group"]["verb"] == "follow"
        assert barrier["group"]["actors"] == ["olive"]


async def test_resume_replays_exactly_the_missed_changes_then_goes_live(
    redis: Redis, settings: Settings
) -> None:
    async with running_app(settings, redis) as app:
        async with push_client(app, "rita") as client:
            await app.accept(like("r-0", "fan", "p-0", "rita", t=0))
            last = (await client.change())["cursor"]

        # offline: ten changes for rita, all from one actor, so one partition keeps their order
        await app.accept(*(like(f"r-{i}", "fan", f"p-{i}", "rita", t=i) for i in range(1, 11)))
        await app.worker.drain()
        logged = await changelog.read_after(redis, "rita", Cursor.parse(last), 100)
        assert isinstance(logged, Replay)
        assert len(logged.changes) == 10

        async with push_client(app, "rita", cursor=last) as client:
            replay = client.before_ready
            assert [f["type"] for f in replay] == ["change"] * 10
            assert [f["cursor"] for f in replay] == [str(c.cursor) for c in logged.changes]
            assert [f["change"]["group"]["post"] for f in replay] == [f"p-{i}" for i in range(1, 11)]
            assert [f["change"]["group"]["count"] for f in replay] == [1] * 10
            assert [f["change"]["unread"] for f in replay] == list(range(2, 12))
            assert client.ready["replayed"] == 10
            assert client.ready["cursor"] == replay[-1]["cursor"]

            await app.accept(like("r-11", "fan", "p-11", "rita", t=11))
            live = await client.change()
            assert live["change"]["group"]["post"] == "p-11"
            assert Cursor.parse(live["cursor"]).number > Cursor.parse(replay[-1]["cursor"]).number


async def test_a_cursor_out_of_retention_gets_refetch(
    redis: Redis, settings_factory: SettingsFactory
) -> None:
    settings = settings_factory({"NOTIFIER_FEEDS_MAX_CHANGES": "8"})
    async with running_app(settings, redis) as app:
        async with push_client(app, "tess") as client:
            await app.accept(like("t-0", "fan", "p-0", "tess", t=0))
            stale = (await client.change())["cursor"]

        await app.accept(*(like(f"t-{i}", "fan", f"p-{i}", "tess", t=i) for i in range(1, 13)))
        await app.worker.drain()
        assert await redis.llen(keys.changelog("tess")) == 8  # trimmed: the stale cursor's successor is gone
        tail = await changelog.tail(redis, "tess")

        async with push_client(app, "tess", cursor=stale) as client:
            assert client.before_ready == [
                {"type": "refetch", "reason": "cursor_expired", "cursor": str(tail)}
            ]
            assert client.ready["replayed"] == 0
            assert client.ready["cursor"] == str(tail)
            await app.accept(like("t-13", "fan", "p-13", "tess", t=13))
            assert (await client.change())["change"]["group"]["post"] == "p-13"


async def test_a_cursor_from_another_epoch_gets_refetch(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        async with push_client(app, "uma") as client:
            await app.accept(like("u-0", "fan", "p-0", "uma", t=0))
            old = (await client.change())["cursor"]

        # the user's change log is lost (e.g. a Redis restored from an older snapshot): a new epoch
        await redis.delete(keys.changelog("uma"))
        await redis.hdel(keys.toggles("uma"), STATE)
        await app.accept(like("u-1", "fan", "p-1", "uma", t=1))
        await app.worker.drain()
        tail = await changelog.tail(redis, "uma")
        assert tail.epoch != Cursor.parse(old).epoch

        for cursor in (old, "someotherepoch.1-0"):
            async with push_client(app, "uma", cursor=cursor) as client:
                assert client.before_ready == [
                    {"type": "refetch", "reason": "cursor_expired", "cursor": str(tail)}
                ]
                assert client.ready["cursor"] == str(tail)


async def test_a_burst_to_a_lagging_client_arrives_whole_in_order_and_counted(
    redis: Redis, settings: Settings
) -> None:
    """The session's writer sends what queued up in batches (one write each), and waits while
    the socket's buffer is full (12.8 MB here, past loopback's buffers): the client still gets
    each change once, in order, and each is counted with its push latency."""
    burst, pad = 200, "x" * 64_000
    counted = metrics.Metrics()
    metrics.use(counted)  # this test's context: the gateway started below reads it
    async with running_app(settings, redis) as app, push_client(app, "lena") as client:
        publish = "SPUBLISH" if isinstance(redis, RedisCluster) else "PUBLISH"  # as the apply does
        change = f'{{"op":"read","all":true,"unread":0,"pad":"{pad}"}}'
        for n in range(1, burst + 1):
            message = f"e {n} 1@{int(time.time() * 1000)} {change}"  # as lua/common.lua publishes
            await redis.execute_command(publish, keys.user_channel("lena"), message)
        frames = await client.changes(burst)
        assert [f["cursor"] for f in frames] == [f"e.{n}-1" for n in range(1, burst + 1)]
        assert all(f["change"]["pad"] == pad for f in frames)
        registry = counted.registry
        assert registry.get_sample_value("notifier_gateway_frames_sent_total", {"kind": "live"}) == burst
        assert registry.get_sample_value("notifier_gateway_push_latency_seconds_count") == burst


async def test_a_cursor_ahead_of_the_log_gets_refetch_and_then_every_live_change(
    redis: Redis, settings: Settings
) -> None:
    """A cursor past the log's end (tampered, or kept by a client across a Redis that lost the
    log's end) names nothing: refetch, not `ready` with nothing replayed and then every live
    change up to its number skipped as already sent."""
    async with running_app(settings, redis) as app:
        async with push_client(app, "vera") as client:
            await app.accept(like("v-0", "fan", "p-0", "vera", t=0))
            seen = Cursor.parse((await client.change())["cursor"])
        tail = await changelog.tail(redis, "vera")
        ahead = Cursor(seen.epoch, seen.number + 5, seen.check)
        async with push_client(app, "vera", cursor=str(ahead)) as client:
            assert client.before_ready == [
                {"type": "refetch", "reason": "cursor_expired", "cursor": str(tail)}
            ]
            assert client.ready["cursor"] == str(tail)
            await app.accept(*(like(f"v-{i}", "fan", f"p-{i}", "vera", t=i) for i in range(1, 4)))
            live = [frame["change"]["group"]["post"] for frame in await client.changes(3)]
            assert live == ["p-1", "p-2", "p-3"]


async def test_a_live_change_reusing_the_number_the_client_saw_gets_refetch(
    redis: Redis, settings: Settings
) -> None:
    """Connected, the client saw change N; Redis loses it (an AOF with its tail cut, simulated
    here without the restart, so the hub has no reason to resync) and the next change reuses N.
    The session must not take it for the one it sent."""
    async with running_app(settings, redis) as app, push_client(app, "wren") as client:
        await app.accept(like("w-0", "fan", "p-0", "wren", t=0))
        await client.change()
        before = await redis.hget(keys.toggles("wren"), STATE)
        await app.accept(like("w-1", "fan", "p-1", "wren", t=1))
        lost = Cursor.parse((await client.change())["cursor"])
        await redis.rpop(keys.changelog("wren"))
        await redis.hset(keys.toggles("wren"), STATE, before)
        await app.accept(like("w-2", "fan", "p-2", "wren", t=2))
        tail = await changelog.tail(redis, "wren")
        assert tail.number == lost.number and tail.check != lost.check
        assert await client.frame() == {"type": "refetch", "reason": "cursor_expired", "cursor": str(tail)}
        await app.accept(like("w-3", "fan", "p-3", "wren", t=3))
        assert (await client.change())["change"]["group"]["post"] == "p-3"


async def test_past_the_inbox_cap_a_new_group_arrives_as_one_frame_with_what_it_dropped(
    redis: Redis, settings_factory: SettingsFactory
) -> None:
    settings = settings_factory({"NOTIFIER_FEEDS_MAX_GROUPS": "2"})
    async with running_app(settings, redis) as app, push_client(app, "hana") as owner:
        await app.accept(*(like(f"like-{i}", "fan", f"post-{i}", "hana", t=i) for i in range(2)))
        kept = [frame["change"]["group"]["id"] for frame in await owner.changes(2)]
        await app.accept(like("like-2", "fan", "post-2", "hana", t=2))
        frame = await owner.change()
        assert frame["change"]["op"] == "upsert" and frame["change"]["dropped"] == [kept[0]]
        assert frame["change"]["unread"] == 2
        # the next frame is the next group's: the remove came on the upsert, under its cursor
        await app.accept(like("like-3", "fan", "post-3", "hana", t=3))
        following = await owner.change()
        assert following["change"]["dropped"] == [kept[1]]
        assert Cursor.parse(following["cursor"]).number == Cursor.parse(frame["cursor"]).number + 2
        page = await app.me("hana")
        assert [g["id"] for g in page["groups"]] == [
            following["change"]["group"]["id"],
            frame["change"]["group"]["id"],
        ]
