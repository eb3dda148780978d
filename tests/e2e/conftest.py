"""The e2e tier runs twice: on the suite's single redis-server and on its Redis Cluster (3
masters, one replica each), through the same product code (the adapter picked at start-up)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest
from redis.asyncio import Redis

from loadtest.cluster import ClusterLab
from notifier.runtime.settings import Settings
from tests.conftest import SettingsFactory, base_env, cluster_client, cluster_env


@pytest.fixture(params=["redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def redis(backend: str, redis_url: str, redis_cluster: ClusterLab) -> AsyncIterator[Redis]:
    """The suite's server, or a client of its cluster (every master flushed; the suite's server
    holds its job queue)."""
    single = Redis.from_url(redis_url, decode_responses=False)
    await single.flushall()
    client = single
    if backend == "cluster":
        await single.aclose()
        client = cluster_client(redis_cluster, redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def settings_factory(backend: str, redis_url: str, redis_cluster: ClusterLab) -> SettingsFactory:
    env = cluster_env(redis_cluster, redis_url) if backend == "cluster" else base_env(redis_url)

    def make(overrides: Mapping[str, str] | None = None, /) -> Settings:
        return Settings.from_env({**env, **(overrides or {})})

    return make
