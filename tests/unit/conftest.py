"""Unit-tier fixtures: `redis` is an in-memory fakeredis (Lua through lupa), fresh for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.unit.memory_redis import fake_redis


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """Shadows the suite's real-server `redis` fixture: the unit tier never needs redis-server."""
    client = fake_redis()
    try:
        yield client
    finally:
        await client.aclose()
