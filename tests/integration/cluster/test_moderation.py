"""Moderation's reads on the session's Redis Cluster while its `{mod}` slot migrates: a key
already moved answers ASK, which the review queue follows (redis-py's cluster pipeline gave up
with "TTL exhausted" and stalled every screened batch until the migration ended)."""

from __future__ import annotations

import pytest

from feeds.cluster import Cluster
from loadtest.cluster import ClusterLab
from notifier.moderation.components import Components
from schemas import keys
from tests.conftest import SettingsFactory

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_an_actors_context_is_read_while_the_mod_slot_migrates(
    cluster: Cluster, redis_cluster: ClusterLab, cluster_settings: SettingsFactory
) -> None:
    queue = Components.build(cluster, cluster_settings()).queue
    await cluster.zadd(keys.mod_actor("bob"), {"e1": 1, "e2": 2})
    await cluster.hset(keys.mod_bans(), "carl", "{}")
    slot = cluster.keyslot(keys.mod_bans())
    source = redis_cluster.node_of_slot(slot)
    [target, *_] = [m for m in redis_cluster.masters() if m is not source]
    source_id, target_id = redis_cluster.node_id(source), redis_cluster.node_id(target)
    target.ask("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    source.ask("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    try:  # halfway: the actor's index has moved, the bans have not
        source.ask("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", keys.mod_actor("bob"))
        context = await queue._context("bob")
        assert (context.earlier_items, context.banned) == (2, False)
        assert (await queue._context("carl")).banned
    finally:  # finish the move as a reshard would, then move the slot back
        while batch := source.ask("CLUSTER", "GETKEYSINSLOT", slot, 50):
            source.ask("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *batch)
        for node in [target, source, *redis_cluster.masters()]:
            node.ask("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        redis_cluster.move_slot(slot, source)
        redis_cluster.wait_ok()
