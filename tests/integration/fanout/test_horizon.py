"""The worker role's register sweep and the fan-out's verdict on what arrives past the horizon,
on a real redis-server: trimmed registers stay trimmed, and an event they might have outranked
(a late one, a replay of the log) is refused, logged and acknowledged, never applied blindly."""

from __future__ import annotations

import logging

import pytest
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from feeds.inbox import Inbox
from notifier.fanout.deadletter import DeadLetters
from notifier.fanout.replay import replay
from notifier.fanout.sweeper import Sweeper
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.events import Like, Unlike

from ...conftest import SettingsFactory
from ..views import at, inbox_view, pending_total
from .test_consumer import append, make_worker

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

DAY_MS = 86_400_000


@pytest.fixture
def bounded(settings_factory: SettingsFactory) -> Settings:
    return settings_factory({"NOTIFIER_INGEST_MAX_LATENESS_S": "86400", "NOTIFIER_FANOUT_SWEEP_USERS": "1"})


def sweeper(redis: Redis, settings: Settings, now_ms: int) -> Sweeper:
    return Sweeper(
        redis,
        settings.feeds,
        horizon_ms=settings.register_horizon_ms,
        users_per_round=settings.fanout.sweep_users,
        interval_ms=settings.fanout.maintenance_interval_ms,
        clock=lambda: now_ms,
    )


async def test_a_sweep_trims_and_the_fanout_refuses_what_it_could_not_judge(
    redis: Redis, bounded: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    liked = Like(id="l1", actor="fan1", occurred_at=at(0), post="p1", owner="bob")
    kept = Like(id="l2", actor="fan2", occurred_at=at(1), post="p1", owner="bob")
    undone = Unlike(id="u1", actor="fan1", occurred_at=at(10), post="p1", owner="bob")
    other = Like(id="l3", actor="fan3", occurred_at=at(2), post="p9", owner="eve")
    await append(redis, bounded, [liked, kept, undone, other])
    worker = make_worker(redis, bounded, "w")
    await worker.drain()
    inbox = Inbox(redis, bounded.feeds)
    before = await inbox_view(inbox, "bob")

    assert bounded.register_horizon_ms == 8 * DAY_MS + 300_000  # retention + lateness + skew
    late_ms = liked.at_ms + bounded.register_horizon_ms + DAY_MS  # a day past the horizon
    await redis.set(keys.toggles("zed"), "not a hash")  # logged and passed over
    sweep = sweeper(redis, bounded, late_ms)
    rounds = [await sweep.sweep_round() for _ in range(4)]
    assert [r.users for r in rounds] == [1, 1, 1, 0]  # one user a round, then a new pass
    assert sum(r.registers for r in rounds) == 1  # fan1's undone like; the shown likes stay
    assert not await redis.hexists(keys.toggles("bob"), "l|p1|fan1")
    assert await inbox_view(inbox, "bob") == before

    # a replay of the log, and a late like from before the horizon, reach the worker
    stats = await replay(redis, partitions=bounded.ingest.partitions, limits=bounded.feeds, fresh=False)
    assert (stats.events, stats.failed) == (4, 0)
    beyond = Like(id="l4", actor="fan4", occurred_at=at(5), post="p1", owner="bob")
    await append(redis, bounded, [beyond])
    with caplog.at_level(logging.WARNING, logger="notifier.fanout.consumer"):
        assert await worker.drain() == 1
    assert await inbox_view(inbox, "bob") == before  # fan1 is not back, fan4 not in
    assert (
        await pending_total(redis, bounded.ingest.partitions) == 0
    )  # acknowledged: a verdict, not a failure
    assert await DeadLetters(redis).entries(bounded.ingest.partitions) == []
    assert "refused items=1" in caplog.text and "l4>bob" in caplog.text

    newer = Like(id="l5", actor="fan1", occurred_at=at(late_ms / 1000), post="p1", owner="bob")
    await append(redis, bounded, [newer])  # newer than the horizon: applies as ever
    await worker.drain()
    groups, _, _ = await inbox_view(inbox, "bob")
    assert groups[0]["actors"] == ["fan1"]


async def test_no_lateness_bound_means_no_trimming(redis: Redis, settings: Settings) -> None:
    assert settings.ingest.max_lateness_s == 0 and settings.register_horizon_ms is None
    undone = Unlike(id="u1", actor="fan1", occurred_at=at(10), post="p1", owner="bob")
    await append(redis, settings, [undone])
    await make_worker(redis, settings, "w").drain()
    assert (await sweeper(redis, settings, 2**45).sweep_round()).users == 0
    assert await redis.hexists(keys.toggles("bob"), "l|p1|fan1")


async def test_a_sweep_at_maxmemory_backs_off_instead_of_failing_each_user(
    redis: Redis, bounded: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis at maxmemory refuses the trim's first write for every user alike: one refusal ends
    the round (the loop backs off and counts it), not an ERROR line per user taken for a key of
    another type."""
    liked = Like(id="l1", actor="fan1", occurred_at=at(0), post="p1", owner="bob")
    other = Like(id="l3", actor="fan3", occurred_at=at(2), post="p9", owner="eve")
    await append(redis, bounded, [liked, other])
    await make_worker(redis, bounded, "w").drain()
    assert bounded.register_horizon_ms is not None
    sweep = sweeper(redis, bounded, liked.at_ms + bounded.register_horizon_ms + DAY_MS)
    used = (await redis.info("memory"))["used_memory"]
    await redis.config_set("maxmemory", used // 2)
    try:
        with pytest.raises(OutOfMemoryError):
            await sweep.sweep_round()
    finally:
        await redis.config_set("maxmemory", 0)
    assert "register trim failed" not in caplog.text
