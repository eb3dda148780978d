"""Ingest's backpressure sampler on the session's Redis Cluster: a partition whose slot has no
master (a failover, a reshard) is unknown, never an empty backlog, so the last verdict stands;
memory is every master's."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from feeds.cluster import CLUSTER_UNAVAILABLE, Cluster
from loadtest.cluster import ClusterLab
from notifier.api.pressure import Pressure
from schemas import keys
from schemas.events import Like
from tests.conftest import SettingsFactory

from ..fanout.test_consumer import append
from ..views import at

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@contextlib.contextmanager
def unserved(lab: ClusterLab, key: str) -> Iterator[None]:
    """`key`'s slot served by no master: its owner forgets it while the others still route it
    there (it answers CLUSTERDOWN), as a master does while it fails over or loses its slots;
    given back after."""
    slot = key_slot(key.encode())
    owner = lab.node_of_slot(slot)
    owner.ask("CLUSTER", "DELSLOTS", slot)
    try:
        yield
    finally:
        owner.ask("CLUSTER", "ADDSLOTS", slot)
        lab.wait_ok()


async def test_a_partition_without_a_master_is_unknown_not_empty(
    cluster: Cluster, redis_cluster: ClusterLab, cluster_settings: SettingsFactory
) -> None:
    settings = cluster_settings({"NOTIFIER_INGEST_MAX_BACKLOG": "2", "NOTIFIER_INGEST_PARTITIONS": "1"})
    likes = [Like(id=f"l-{i}", actor=f"fan{i}", occurred_at=at(i), post="p", owner="eve") for i in range(3)]
    await append(cluster, settings, likes)  # no consumer yet: a backlog of 3 > 2
    pressure = Pressure(cluster, settings.ingest)
    refusal = await pressure.sample()
    assert refusal is not None and "3 events behind" in refusal.detail
    pressure._update(refusal)

    with unserved(redis_cluster, keys.events(0)):
        with pytest.raises(CLUSTER_UNAVAILABLE):  # CLUSTERDOWN: run() backs off, keeps the verdict
            await pressure.sample()
    with pytest.raises(type(refusal)):
        pressure.check()
    assert await pressure.sample() is not None  # the slot is back: measured again


async def test_memory_is_every_masters(cluster: Cluster, cluster_settings: SettingsFactory) -> None:
    settings = cluster_settings({"NOTIFIER_INGEST_MAX_MEMORY_RATIO": "0.5"})
    pressure = Pressure(cluster, settings.ingest)
    assert await pressure.sample() is None
    masters = await cluster.masters()
    full = cluster.node_client(masters[-1])  # one master nearly full, whichever INFO's default node is
    used = int((await full.info("memory"))["used_memory"])
    await full.config_set("maxmemory", used + 1024 * 1024)
    try:
        refusal = await pressure.sample()
        assert refusal is not None and "memory" in refusal.detail
    finally:
        await full.config_set("maxmemory", 0)
