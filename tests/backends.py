"""Fixtures that run a tier twice: on the suite's single redis-server and on its Redis Cluster
(3 masters, one replica each), through the same product code (the adapter picked at start-up).
A tier's conftest imports `backend` and `redis` and builds its settings with `backend_env`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from loadtest.cluster import ClusterLab
from tests.conftest import cluster_client


@pytest.fixture(params=["redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def redis(backend: str, redis_url: str, redis_cluster: ClusterLab) -> AsyncIterator[Redis]:
    """The suite's server, or a client of its cluster (every master flushed; the suite's server
    holds the cluster's job queue, flushed too)."""
    single = Redis.from_url(redis_url, decode_responses=False)
    await single.flushall()
    if backend != "cluster":
        try:
            yield single
        finally:
            await single.aclose()
        return
    await single.aclose()
    cluster = cluster_client(redis_cluster, redis_url)
    try:
        yield cluster
    finally:
        await cluster.shutdown()


def backend_env(env: dict[str, str], backend: str, lab: ClusterLab, redis_url: str) -> dict[str, str]:
    """`env` (built for the single server) pointed at the cluster when `backend` says so."""
    if backend != "cluster":
        return env
    return {
        **env,
        "NOTIFIER_REDIS_URL": lab.url,
        "NOTIFIER_REDIS_CLUSTER": "1",
        "NOTIFIER_JOBS_REDIS_URL": redis_url,
    }
