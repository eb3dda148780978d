"""The apply-cost harness on real redis-servers: it counts what the scripts ran, per item, on one
Redis and on Redis Cluster through the product's cluster client."""

from __future__ import annotations

import pytest

from loadtest.applycost import measure, measure_native

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_it_counts_the_scripts_commands_per_applied_item() -> None:
    offline = await measure("single", 200, 0, callgrind=False, profiles=None)
    online = await measure("single", 200, 100, callgrind=False, profiles=None)

    assert offline["items"] == online["items"] == 200  # one recipient per event
    # every item reads its register and state, checks the log, appends a change, writes back
    assert 5 < offline["commands_per_item"] < 20
    # online, every change is also published
    assert online["commands_per_item"] >= offline["commands_per_item"] + 1
    assert online["commands"]["publish"] > 0


async def test_a_cluster_runs_the_same_items_sharded() -> None:
    single = await measure("single", 200, 100, callgrind=False, profiles=None)
    cluster = await measure("cluster", 200, 100, callgrind=False, profiles=None)

    assert cluster["masters"] == 3
    assert cluster["items"] == single["items"]
    # the same changes, published on each user's master (SPUBLISH) instead of broadcast
    assert cluster["commands"]["spublish"] == single["commands"]["publish"]
    assert "publish" not in cluster["commands"]
    assert cluster["commands"]["hset"] == single["commands"]["hset"]


async def test_the_native_floor_sends_each_items_commands_without_a_script() -> None:
    native = await measure_native(200, callgrind=False)
    assert native["items"] == 200 and native["commands_per_item"] == 7
    assert "evalsha" not in native["commands"]
    assert native["commands"]["hmget"] == native["commands"]["hset"] == 200
