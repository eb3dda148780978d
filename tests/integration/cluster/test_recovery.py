"""Ingest's restart watch on the session's Redis Cluster: it watches the master of every
partition, and when one is replaced (a replica promoted: a new run id for that master's slots)
it appends again what it accepted lately on those partitions only, so an append the promotion
lost is back in the log."""

from __future__ import annotations

import logging
import time

import anyio
import pytest

from feeds.cluster import REDIS_UNAVAILABLE, REFRESH_GAP_S, Cluster
from loadtest.cluster import ClusterLab, Node
from notifier.api.append import EventLog
from notifier.api.recent import RecentAppends
from notifier.api.recovery import RestartWatch
from notifier.runtime.eventlog import decode_entry
from schemas import keys
from schemas.events import Like
from tests.conftest import SettingsFactory

from ..views import at

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def promote_replica_of(lab: ClusterLab, master: Node) -> Node:
    """A manual failover (`CLUSTER FAILOVER` on the master's replica): the replica is master."""
    [replica] = [
        n
        for n in lab.live()
        if (info := n.ask("INFO", "replication"))["role"] == "slave" and info["master_port"] == master.port
    ]
    replica.ask("CLUSTER", "FAILOVER")
    deadline = time.monotonic() + 10
    while replica.ask("INFO", "replication")["role"] != "master" or master in lab.masters():
        assert time.monotonic() < deadline, "the manual failover did not finish"
        time.sleep(0.02)  # external processes: polling is the only readiness signal
    lab.wait_ok()
    return replica


async def check(watch: RestartWatch) -> None:
    """One look, retried as the api's loop does while the client still has the old slot map (a
    miss refreshes it; refreshes closer than REFRESH_GAP_S are one)."""
    for _ in range(20):
        try:
            await watch.check()
            return
        except REDIS_UNAVAILABLE:
            await anyio.sleep(REFRESH_GAP_S)  # the api's Backoff, shortened
    raise AssertionError("the watch never completed a look")


async def test_a_promoted_replica_gets_its_partitions_appends_again(
    cluster: Cluster,
    redis_cluster: ClusterLab,
    cluster_settings: SettingsFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = cluster_settings({"NOTIFIER_INGEST_PARTITIONS": "6"})
    recent = RecentAppends(keep_s=600, keep_events=1000)
    watch = RestartWatch(cluster, settings.ingest, recent)
    await check(watch)  # the runs as they are, nothing kept yet
    likes = [Like(id=f"l-{i}", actor=f"fan{i}", occurred_at=at(i), post="p", owner="eve") for i in range(24)]
    appended = await EventLog(cluster, settings.ingest, recent).append(likes, "posts")
    assert {a.status for a in appended} == {"accepted"}

    lost_like, position = likes[0], appended[0].position
    partition, entry_id = int(position.split("/")[0]), position.split("/")[1]
    owner = redis_cluster.node_of_slot(cluster.keyslot(keys.events(partition)))
    owned = {p for p in range(6) if redis_cluster.node_of_slot(cluster.keyslot(keys.events(p))) is owner}
    assert len(owned) < 6
    promoted = promote_replica_of(redis_cluster, owner)
    # what asynchronous replication can lose at a failover: the last append, entry and record
    promoted.ask("XDEL", keys.events(partition), entry_id)
    promoted.ask("HDEL", keys.idempotency(partition, lost_like.id), lost_like.id)

    with caplog.at_level(logging.WARNING, logger="notifier.api.recovery"):
        await check(watch)
    assert (watch.restarts, watch.reappended) == (1, 1)
    kept_there = sum(1 for a in appended if int(a.position.split("/")[0]) in owned)
    [line] = [r.getMessage() for r in caplog.records if "redis restarted" in r.getMessage()]
    assert f"partitions {','.join(map(str, sorted(owned)))})" in line and f"of {kept_there} events" in line
    entries = await cluster.xrange(keys.events(partition))
    assert [decode_entry(i, f).event.id for i, f in entries].count(lost_like.id) == 1  # back, once
    await check(watch)
    assert watch.restarts == 1  # nothing changed since


async def test_a_partition_moved_to_another_live_master_is_no_restart(
    cluster: Cluster, redis_cluster: ClusterLab, cluster_settings: SettingsFactory
) -> None:
    """A reshard moves a partition's slot, keys and all (MIGRATE), between masters that both
    live on: its run changes, yet nothing was lost, so nothing is appended again (the watch took
    every move for a restart and appended everything it kept, up to 100,000 events)."""
    settings = cluster_settings({"NOTIFIER_INGEST_PARTITIONS": "6"})
    recent = RecentAppends(keep_s=600, keep_events=1000)
    watch = RestartWatch(cluster, settings.ingest, recent)
    await check(watch)
    likes = [Like(id=f"m-{i}", actor=f"fan{i}", occurred_at=at(i), post="p", owner="eve") for i in range(12)]
    assert {a.status for a in await EventLog(cluster, settings.ingest, recent).append(likes, "posts")} == {
        "accepted"
    }
    slot = cluster.keyslot(keys.events(0))
    owner = redis_cluster.node_of_slot(slot)
    [target, *_] = [m for m in redis_cluster.masters() if m is not owner]
    redis_cluster.move_slot(slot, target)
    try:
        await anyio.sleep(REFRESH_GAP_S)  # a refresh right after the last is taken for it
        await cluster.refresh()
        assert cluster.get_node_from_key(keys.events(0)).port == target.port  # the watch sees the move
        await check(watch)
        assert (watch.restarts, watch.reappended) == (0, 0)
    finally:
        redis_cluster.move_slot(slot, owner)
        await anyio.sleep(REFRESH_GAP_S)
        await cluster.refresh()
