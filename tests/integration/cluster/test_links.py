"""A link lost under the cluster client is a lost connection, whichever redis-py path met it."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import ConnectionError as RedisConnectionError

from feeds.cluster import Cluster
from schemas import keys

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_a_pipeline_on_a_transport_closed_by_a_map_reset_raises_a_lost_connection(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what redis-py 5 raises when its retry closed the connection another task's pipeline was
    # writing on (seen killing a worker in the failover test)
    async def closed_transport(*args: Any, **kwargs: Any) -> Any:
        raise AttributeError("'NoneType' object has no attribute 'writelines'")

    async with cluster.pipeline(transaction=False) as pipe:
        pipe.hget(keys.idempotency(0, "e1"), "e1")
        assert await pipe.execute() == [None]  # the real thing works
    monkeypatch.setattr(ClusterPipeline, "_execute", closed_transport)
    async with cluster.pipeline(transaction=False) as pipe:
        pipe.hget(keys.idempotency(0, "e1"), "e1")
        with pytest.raises(RedisConnectionError, match="cluster map refresh"):
            await pipe.execute()
