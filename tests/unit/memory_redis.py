"""An in-memory Redis for the unit tier: fakeredis with Lua (lupa), one private server per client."""

from __future__ import annotations

import fakeredis
from redis.asyncio import Redis


def fake_redis() -> Redis:
    """A client of a new, empty in-memory server speaking Redis 7.0; the caller closes it."""
    client: Redis = fakeredis.aioredis.FakeRedis(server=fakeredis.FakeServer(version=(7, 0)))
    return client
