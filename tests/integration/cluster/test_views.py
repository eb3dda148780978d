"""The views on a 3-master Redis Cluster: the same events give the same inboxes as on one Redis,
with apply calls grouped by slot (no CROSSSLOT) and ingest's appends split per master."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import ClusterDownError

from feeds.cluster import Cluster
from feeds.horizon import BeyondHorizon
from feeds.inbox import Inbox
from feeds.items import plan
from feeds.scripts import SCRIPTS, SHARDED_SCRIPTS
from loadtest.cluster import ClusterLab
from notifier.api.append import EventLog
from notifier.fanout.consumer import FanoutWorker
from notifier.fanout.sweeper import Sweeper
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.events import Comment, CommentDeleted, Event, Follow, Like, Unlike
from tests.conftest import SettingsFactory

from ..views import at, pending_total

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

USERS = [f"user{i}" for i in range(40)]


def traffic() -> list[Event]:
    events: list[Event] = []
    for i, owner in enumerate(USERS):
        for j in range(3):
            fan = USERS[(i + j + 1) % len(USERS)]
            events.append(
                Like(id=f"like-{i}-{j}", actor=fan, occurred_at=at(i + j), post=f"p{i}", owner=owner)
            )
        events.append(
            Follow(id=f"follow-{i}", actor=USERS[(i + 7) % len(USERS)], occurred_at=at(50 + i), user=owner)
        )
        events.append(
            Comment(
                id=f"comment-{i}",
                actor=USERS[(i + 3) % len(USERS)],
                occurred_at=at(80 + i),
                post=f"p{i}",
                owner=owner,
                comment=f"c{i}",
                text="nice post",
            )
        )
    return events


async def run(redis: Redis, settings: Settings, events: Sequence[Event]) -> dict[str, tuple[object, ...]]:
    appended = await EventLog(redis, settings.ingest).append(events, "posts")
    assert {a.status for a in appended} == {"accepted"}
    worker = FanoutWorker(
        redis, settings.fanout, partitions=settings.ingest.partitions, limits=settings.feeds, consumer="w1"
    )
    assert await worker.drain() == len(events)
    assert worker.stats.dead_lettered == 0
    assert await pending_total(redis, settings.ingest.partitions) == 0
    inbox = Inbox(redis, settings.feeds)
    out: dict[str, tuple[object, ...]] = {}
    for user in USERS:
        page = await inbox.page(user, None, 100)
        out[user] = (page.groups, page.unread, await redis.llen(keys.changelog(user)))
    return out


async def test_the_cluster_builds_the_same_views_as_one_redis(
    cluster: Cluster, redis: Redis, cluster_settings: SettingsFactory, settings: Settings
) -> None:
    on_cluster = await run(cluster, cluster_settings({"NOTIFIER_INGEST_PARTITIONS": "6"}), traffic())
    alone = await run(redis, settings, traffic())
    assert on_cluster == alone
    assert all(groups for groups, _, _ in on_cluster.values())
    # the users really are spread: the apply calls had to be split by slot and master
    masters = {cluster.get_node_from_key(keys.toggles(u)).name for u in USERS}
    assert len(masters) == 3
    assert len({key_slot(keys.toggles(u).encode()) for u in USERS}) == len(USERS)


async def test_partition_streams_spread_over_the_masters(
    cluster: Cluster, cluster_settings: SettingsFactory
) -> None:
    settings = cluster_settings({"NOTIFIER_INGEST_PARTITIONS": "16"})
    assert len(await cluster.masters()) == 3
    owners = [cluster.get_node_from_key(keys.events(p)).name for p in range(settings.ingest.partitions)]
    counts = sorted(owners.count(name) for name in set(owners))
    assert len(counts) == 3 and counts[-1] - counts[0] <= 1, counts


async def test_an_append_waits_for_a_replica_on_every_master(
    cluster: Cluster, cluster_settings: SettingsFactory
) -> None:
    settings = cluster_settings(
        {"NOTIFIER_INGEST_WAIT_REPLICAS": "1", "NOTIFIER_INGEST_WAIT_TIMEOUT_MS": "2000"}
    )
    events = traffic()[:30]
    appended = await EventLog(cluster, settings.ingest).append(events, "posts")
    assert {a.status for a in appended} == {"accepted"}
    again = await EventLog(cluster, settings.ingest).append(events, "posts")
    assert {a.status for a in again} == {"duplicate"}


def test_the_cluster_scripts_publish_sharded() -> None:
    for script in (SHARDED_SCRIPTS.apply, SHARDED_SCRIPTS.mark_read):
        assert "call('SPUBLISH'," in script.source and "call('PUBLISH'," not in script.source
        assert "'SHARDNUMSUB'" in script.source and "'NUMSUB'" not in script.source
    for script in (SCRIPTS.apply, SCRIPTS.mark_read):
        assert "call('PUBLISH'," in script.source and "SPUBLISH" not in script.source
        assert "'NUMSUB'" in script.source and "SHARDNUMSUB" not in script.source


async def test_the_register_sweep_reaches_every_master(
    cluster: Cluster, cluster_settings: SettingsFactory
) -> None:
    """Each user's trim is one script on its slot (the actor sets it reads share the tag); the
    sweep scans every master."""
    settings = cluster_settings(
        {"NOTIFIER_INGEST_MAX_LATENESS_S": "86400", "NOTIFIER_FANOUT_SWEEP_USERS": "100"}
    )
    likes = [Like(id=f"l-{u}", actor="fan", occurred_at=at(0), post=f"p-{u}", owner=u) for u in USERS]
    undone = [Unlike(id=f"u-{u}", actor="fan", occurred_at=at(5), post=f"p-{u}", owner=u) for u in USERS]
    shown = [Like(id=f"s-{u}", actor="star", occurred_at=at(9), post=f"p-{u}", owner=u) for u in USERS]
    await run(cluster, settings, [*likes, *undone, *shown])
    assert settings.register_horizon_ms is not None
    now_ms = shown[0].at_ms + settings.register_horizon_ms + 1
    sweeper = Sweeper(
        cluster, settings.feeds, horizon_ms=settings.register_horizon_ms, users_per_round=100,
        interval_ms=1_000, clock=lambda: now_ms,
    )  # fmt: skip
    done = await sweeper.sweep_round()
    assert (done.users, done.registers) == (len(USERS), len(USERS))  # every undone like, nothing shown
    for user in USERS:
        assert not await cluster.hexists(keys.toggles(user), f"l|p-{user}|fan")
        assert await cluster.hexists(keys.toggles(user), f"l|p-{user}|star")
    late = Like(id="late", actor="fan", occurred_at=at(1), post=f"p-{USERS[0]}", owner=USERS[0])
    [refused] = await Inbox(cluster, settings.feeds).apply(plan(late, settings.feeds))
    assert isinstance(refused, BeyondHorizon)


async def test_an_apply_waits_for_a_slot_whose_keys_move_in_batches(
    cluster: Cluster, redis_cluster: ClusterLab, cluster_settings: SettingsFactory
) -> None:
    """A reshard moving a slot's keys in several MIGRATEs moved the user's register before their
    inbox: an apply following ASK ran on the new master, found no inbox there and wrote one (the
    undo lost, the keys on two masters). It waits for the slot to finish moving instead."""
    settings = cluster_settings()
    inbox = Inbox(cluster, settings.feeds)
    comment = Comment(
        id="c-1", actor="ann", occurred_at=at(1), post="p", owner="olga", comment="c1", text="hi"
    )
    assert await inbox.apply(plan(comment, settings.feeds)) == [None]
    slot = key_slot(keys.toggles("olga").encode())
    source = redis_cluster.node_of_slot(slot)
    target = next(m for m in redis_cluster.masters() if m is not source)
    target.ask("CLUSTER", "SETSLOT", slot, "IMPORTING", redis_cluster.node_id(source))
    source.ask("CLUSTER", "SETSLOT", slot, "MIGRATING", redis_cluster.node_id(target))
    source.ask(
        "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", keys.toggles("olga")
    )  # the register only
    deleted = CommentDeleted(id="d-1", actor="ann", occurred_at=at(2), post="p", owner="olga", comment="c1")
    waiting = Cluster(
        [("127.0.0.1", n.port) for n in redis_cluster.live()], retry_budget_s=0.5, socket_timeout=5
    )
    try:
        with pytest.raises(ClusterDownError):  # the slot did not settle within the budget
            await Inbox(waiting, settings.feeds).apply(plan(deleted, settings.feeds))
    finally:
        await waiting.shutdown()
    rest = source.ask("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    # BUSYKEY here if the apply had written an inbox or change log on the target
    source.ask("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *rest)
    for node in redis_cluster.masters():
        node.ask("CLUSTER", "SETSLOT", slot, "NODE", redis_cluster.node_id(target))
    assert await inbox.apply(plan(deleted, settings.feeds)) == [None]
    page = await inbox.page("olga", None, 10)
    assert (page.groups, page.unread) == ([], 0)
