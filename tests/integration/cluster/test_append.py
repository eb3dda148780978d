"""Ingest's group commit on the session's Redis Cluster: each master has its own lane, so a
stalled master holds up only the appends to its own partitions."""

from __future__ import annotations

import signal

import anyio
import pytest
from redis.crc import key_slot

from feeds.cluster import Cluster
from loadtest.cluster import ClusterLab, Node
from notifier.api.append import Appended, EventLog
from notifier.runtime.eventlog import partition_of
from schemas import keys
from schemas.events import Like
from tests.conftest import SettingsFactory

from ..views import at

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def like(i: int) -> Like:
    return Like(id=f"l-{i}", actor=f"fan{i}", occurred_at=at(i), post="p", owner="eve")


async def test_a_frozen_master_holds_up_only_its_own_partitions(
    cluster: Cluster, redis_cluster: ClusterLab, cluster_settings: SettingsFactory
) -> None:
    settings = cluster_settings({"NOTIFIER_INGEST_PARTITIONS": "6"})
    log = EventLog(cluster, settings.ingest)
    await log.append([like(0)], "posts")  # the map is known
    partitions = settings.ingest.partitions

    def owner(i: int) -> Node:
        return redis_cluster.node_of_slot(key_slot(keys.events(partition_of(f"fan{i}", partitions)).encode()))

    frozen = owner(1)
    other = next(i for i in range(2, 100) if owner(i) is not frozen)
    proc = frozen.proc
    assert proc is not None
    stalled: list[Appended] = []
    proc.send_signal(signal.SIGSTOP)
    try:
        async with anyio.create_task_group() as tg:

            async def first() -> None:
                stalled.extend(await log.append([like(1)], "posts"))

            tg.start_soon(first)
            await anyio.wait_all_tasks_blocked()  # its round trip is in flight, on the frozen master
            with anyio.fail_after(5):
                [done] = await log.append([like(other)], "posts")  # another master's lane
            assert done.status == "accepted" and not stalled
            proc.send_signal(signal.SIGCONT)
    finally:
        proc.send_signal(signal.SIGCONT)
    assert [a.status for a in stalled] == ["accepted"]
