"""What feeds/cluster.py takes from redis-py's private `RedisCluster` internals, pinned without a
server: `_initialize` (set → the next call re-reads the slot map) and the nodes manager's
`_moved_exception` (set → the next slot lookup patches that slot's owner, redis-py's own way
after a MOVED). An upgrade that renames or reworks either fails here by name, not as a cluster
test that merely stops following MOVED."""

from __future__ import annotations

from redis.asyncio.cluster import ClusterNode
from redis.cluster import PRIMARY
from redis.exceptions import MovedError

from feeds.cluster import Cluster


def _cluster() -> Cluster:
    # never connects: nothing here awaits
    return Cluster([("127.0.0.1", 7000)], retry_budget_s=1.0)


def test_a_new_client_reads_the_slot_map_on_first_use() -> None:
    cluster = _cluster()
    assert cluster._initialize is True  # what client_for/masters/pipelined check before use


def test_a_moved_reply_patches_one_slots_owner_on_the_next_lookup() -> None:
    cluster = _cluster()
    nodes = cluster.nodes_manager
    old = ClusterNode("127.0.0.1", 7000, PRIMARY)
    nodes.nodes_cache = {old.name: old}
    nodes.slots_cache = {slot: [old] for slot in (12, 13)}

    cluster.moved(MovedError("12 127.0.0.1:7001"))

    assert nodes.get_node_from_slot(12).name == "127.0.0.1:7001"
    assert nodes.get_node_from_slot(13) is old  # only the moved slot changed owner
    assert nodes._moved_exception is None  # applied once
